/* http: incremental, zero-copy HTTP/1.1 head parsing and chunked framing.
 *
 * The parsers never copy: every string they return is a {ptr,len} slice
 * into the caller's buffer, valid while that buffer is. A head parser is
 * called again with the whole buffer each time more bytes arrive; it
 * returns the head's length when complete, HTTP_INCOMPLETE when it needs
 * more, HTTP_BAD when the bytes cannot be HTTP/1.1, and HTTP_TOO_LARGE
 * when a limit is exceeded (so the caller can answer 431 rather than 400).
 * Line endings must be CRLF and obsolete line folding is refused: a proxy
 * that is laxer than the server behind it invites request smuggling. */
#ifndef CK_HTTP_H
#define CK_HTTP_H
#include <stddef.h>
#include <stdint.h>

#define HTTP_INCOMPLETE (-2)
#define HTTP_BAD (-1)
#define HTTP_TOO_LARGE (-3)

#define HTTP_MAX_HEADERS 100

typedef struct http_header {
    const char *name;
    size_t name_len;
    const char *value; /* leading/trailing spaces and tabs trimmed */
    size_t value_len;
} http_header;

typedef struct http_limits {
    size_t max_head;    /* whole head incl. final CRLFCRLF */
    size_t max_line;    /* any single line */
    size_t max_headers; /* <= HTTP_MAX_HEADERS */
} http_limits;

/* 16 KiB heads, 8 KiB lines, 100 headers: what nginx and kube-apiserver
 * comfortably accept (kubectl's heads are a few hundred bytes). */
extern const http_limits http_default_limits;

typedef struct http_request {
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    int minor_version;
    size_t nheaders;
    http_header headers[HTTP_MAX_HEADERS];
} http_request;

typedef struct http_response {
    int minor_version;
    int status;
    const char *reason;
    size_t reason_len;
    size_t nheaders;
    http_header headers[HTTP_MAX_HEADERS];
} http_response;

/* `last_len` is the buffer length at the previous call (0 at first); it
 * lets a repeated call skip scanning bytes it already searched for the end
 * of the head. Limits may be NULL for the defaults. */
int http_parse_request(const char *buf, size_t len, size_t last_len, const http_limits *lim,
                       http_request *req);
int http_parse_response(const char *buf, size_t len, size_t last_len, const http_limits *lim,
                        http_response *res);

/* First header named `name` (case-insensitive), or NULL. */
const http_header *http_find(const http_header *h, size_t n, const char *name);
/* Whether a comma-separated header value lists `token` (case-insensitive),
 * as in "Connection: keep-alive, Upgrade". */
int http_has_token(const char *value, size_t len, const char *token);
/* Case-insensitive comparison of a slice with a NUL-terminated string. */
int http_eq(const char *s, size_t n, const char *lit);

/* How a message body is delimited (RFC 9112 section 6). */
enum http_body_kind { HTTP_BODY_NONE, HTTP_BODY_LENGTH, HTTP_BODY_CHUNKED, HTTP_BODY_UNTIL_CLOSE };
/* For a request: chunked, Content-Length or none. Returns HTTP_BAD for a
 * Transfer-Encoding other than "chunked", any Transfer-Encoding on
 * HTTP/1.0, or conflicting or malformed lengths, which must be refused to
 * avoid smuggling. */
int http_request_body(const http_request *req, uint64_t *length);
/* For a response to `method`: also handles 1xx/204/304 and HEAD. */
int http_response_body(const http_response *res, const char *method, size_t method_len, uint64_t *length);

/* Incremental chunked-transfer-coding decoder. It reads framing bytes and
 * hands back slices of chunk data in place; the raw bytes stay untouched,
 * so a proxy may also forward them verbatim and use the decoder only to
 * find where the body ends. */
typedef struct http_chunked {
    int state;
    uint64_t remaining; /* data bytes left in the current chunk */
    size_t line_len;    /* bytes of the current size or trailer line */
    size_t trailer_len; /* total trailer bytes */
    int done;
} http_chunked;

void http_chunked_init(http_chunked *c);
/* Consumes bytes from buf[0..len). Returns bytes consumed (>= 0) or
 * HTTP_BAD / HTTP_TOO_LARGE. When the consumed range ends with chunk data,
 * *data and *data_len describe that data (otherwise *data_len is 0).
 * Call repeatedly until it returns 0 or c->done is set. */
long http_chunked_step(http_chunked *c, const char *buf, size_t len, const char **data, size_t *data_len);

/* The standard reason phrase for a status ("Not Found"), or "Unknown". */
const char *http_reason(int status);

#endif
