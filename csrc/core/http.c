/* http: HTTP/1.1 head parser and chunked decoder. See http.h. */
#include "http.h"

#include <string.h>
#include <strings.h>

const http_limits http_default_limits = {16384, 8192, HTTP_MAX_HEADERS};

/* RFC 9110 tchar. */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Finds the CRLFCRLF that ends the head, starting near where the previous
 * call stopped looking. Returns the head length or 0. */
static size_t find_head_end(const char *buf, size_t len, size_t last_len)
{
    size_t start = last_len > 3 ? last_len - 3 : 0;
    for (size_t i = start; i + 3 < len; i++) {
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n')
            return i + 4;
    }
    return 0;
}

/* Returns the length of the line at p (without CRLF), or -1 if it contains
 * a bare CR or LF. The caller guarantees a CRLF follows within end. */
static long line_len(const char *p, const char *end)
{
    const char *q = p;
    while (q < end && *q != '\r' && *q != '\n')
        q++;
    if (q + 1 >= end || q[0] != '\r' || q[1] != '\n')
        return -1;
    return q - p;
}

/* Parses header lines from p up to the empty line; returns 0 or an error. */
static int parse_headers(const char *p, const char *end, const http_limits *lim, http_header *hs, size_t *nh)
{
    size_t n = 0;
    for (;;) {
        long ll = line_len(p, end);
        if (ll < 0)
            return HTTP_BAD;
        if ((size_t)ll > lim->max_line)
            return HTTP_TOO_LARGE;
        if (ll == 0)
            break;
        if (n >= lim->max_headers || n >= HTTP_MAX_HEADERS)
            return HTTP_TOO_LARGE;
        const char *line = p, *le = p + ll, *c = line;
        while (c < le && is_tchar((unsigned char)*c))
            c++;
        if (c == line || c == le || *c != ':') /* empty name, no colon, space before colon */
            return HTTP_BAD;
        hs[n].name = line;
        hs[n].name_len = (size_t)(c - line);
        const char *v = c + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        const char *ve = le;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *x = v; x < ve; x++) {
            unsigned char ch = (unsigned char)*x;
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return HTTP_BAD;
        }
        hs[n].value = v;
        hs[n].value_len = (size_t)(ve - v);
        n++;
        p = le + 2;
    }
    *nh = n;
    return 0;
}

/* "HTTP/1.x" -> minor version, or -1. */
static int parse_version(const char *p, size_t n)
{
    if (n != 8 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9')
        return -1;
    return p[7] - '0';
}

static int head_prelude(const char *buf, size_t len, size_t last_len, const http_limits **lim, size_t *head)
{
    if (!*lim)
        *lim = &http_default_limits;
    *head = find_head_end(buf, len, last_len);
    if (*head == 0) {
        if (len >= (*lim)->max_head)
            return HTTP_TOO_LARGE;
        /* A first line longer than the line limit fails early rather than
         * waiting for the whole head budget. */
        const void *nl = memchr(buf, '\n', len);
        if (!nl && len > (*lim)->max_line)
            return HTTP_TOO_LARGE;
        return HTTP_INCOMPLETE;
    }
    if (*head > (*lim)->max_head)
        return HTTP_TOO_LARGE;
    return 0;
}

int http_parse_request(const char *buf, size_t len, size_t last_len, const http_limits *lim,
                       http_request *req)
{
    size_t head;
    int rc = head_prelude(buf, len, last_len, &lim, &head);
    if (rc)
        return rc;
    const char *end = buf + head, *p = buf;
    long ll = line_len(p, end);
    if (ll <= 0)
        return HTTP_BAD;
    if ((size_t)ll > lim->max_line)
        return HTTP_TOO_LARGE;
    const char *le = p + ll, *sp1 = p;
    while (sp1 < le && is_tchar((unsigned char)*sp1))
        sp1++;
    if (sp1 == p || sp1 >= le || *sp1 != ' ')
        return HTTP_BAD;
    const char *t = sp1 + 1, *sp2 = t;
    while (sp2 < le && (unsigned char)*sp2 > 0x20 && *sp2 != 0x7f)
        sp2++;
    if (sp2 == t || sp2 >= le || *sp2 != ' ')
        return HTTP_BAD;
    int minor = parse_version(sp2 + 1, (size_t)(le - sp2 - 1));
    if (minor < 0)
        return HTTP_BAD;
    req->method = p;
    req->method_len = (size_t)(sp1 - p);
    req->target = t;
    req->target_len = (size_t)(sp2 - t);
    req->minor_version = minor;
    rc = parse_headers(le + 2, end, lim, req->headers, &req->nheaders);
    return rc ? rc : (int)head;
}

int http_parse_response(const char *buf, size_t len, size_t last_len, const http_limits *lim,
                        http_response *res)
{
    size_t head;
    int rc = head_prelude(buf, len, last_len, &lim, &head);
    if (rc)
        return rc;
    const char *end = buf + head, *p = buf;
    long ll = line_len(p, end);
    if (ll < 12)
        return HTTP_BAD;
    if ((size_t)ll > lim->max_line)
        return HTTP_TOO_LARGE;
    int minor = parse_version(p, 8);
    if (minor < 0 || p[8] != ' ')
        return HTTP_BAD;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return HTTP_BAD;
        st = st * 10 + (p[i] - '0');
    }
    if (st < 100)
        return HTTP_BAD;
    if (ll > 12 && p[12] != ' ')
        return HTTP_BAD;
    res->minor_version = minor;
    res->status = st;
    res->reason = ll > 12 ? p + 13 : p + 12;
    res->reason_len = ll > 12 ? (size_t)ll - 13 : 0;
    for (size_t i = 0; i < res->reason_len; i++) {
        unsigned char ch = (unsigned char)res->reason[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return HTTP_BAD;
    }
    rc = parse_headers(p + ll + 2, end, lim, res->headers, &res->nheaders);
    return rc ? rc : (int)head;
}

int http_eq(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

const http_header *http_find(const http_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (http_eq(h[i].name, h[i].name_len, name))
            return &h[i];
    return NULL;
}

int http_has_token(const char *v, size_t len, const char *token)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < len && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e > s && http_eq(v + s, e - s, token))
            return 1;
    }
    return 0;
}

/* Parses a Content-Length value: digits only, at most 18 of them. */
static int parse_length(const char *v, size_t n, uint64_t *out)
{
    if (n == 0 || n > 18)
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return 0;
}

/* Shared framing rules: Transfer-Encoding wins only if it is exactly
 * "chunked"; several Content-Length headers must agree. */
static int body_from_headers(const http_header *hs, size_t n, uint64_t *length, int is_request)
{
    int have_te = 0, have_cl = 0;
    uint64_t cl = 0;
    for (size_t i = 0; i < n; i++) {
        if (http_eq(hs[i].name, hs[i].name_len, "transfer-encoding")) {
            if (have_te || !http_eq(hs[i].value, hs[i].value_len, "chunked"))
                return HTTP_BAD;
            have_te = 1;
        } else if (http_eq(hs[i].name, hs[i].name_len, "content-length")) {
            uint64_t v;
            if (parse_length(hs[i].value, hs[i].value_len, &v) < 0)
                return HTTP_BAD;
            if (have_cl && v != cl)
                return HTTP_BAD;
            have_cl = 1;
            cl = v;
        }
    }
    if (have_te && have_cl)
        return HTTP_BAD;
    if (have_te)
        return HTTP_BODY_CHUNKED;
    if (have_cl) {
        *length = cl;
        return cl ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
    }
    return is_request ? HTTP_BODY_NONE : HTTP_BODY_UNTIL_CLOSE;
}

int http_request_body(const http_request *req, uint64_t *length)
{
    *length = 0;
    /* RFC 9112 section 6.1: Transfer-Encoding in an HTTP/1.0 message means
     * faulty framing (a 1.0 hop behind us may not decode it). */
    if (req->minor_version == 0 && http_find(req->headers, req->nheaders, "Transfer-Encoding"))
        return HTTP_BAD;
    return body_from_headers(req->headers, req->nheaders, length, 1);
}

int http_response_body(const http_response *res, const char *method, size_t method_len, uint64_t *length)
{
    *length = 0;
    if ((res->status >= 100 && res->status < 200) || res->status == 204 || res->status == 304)
        return HTTP_BODY_NONE;
    if (method && http_eq(method, method_len, "HEAD"))
        return HTTP_BODY_NONE;
    return body_from_headers(res->headers, res->nheaders, length, 0);
}

/* Chunked decoder states. */
enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER, CH_TRAILER_LF };

#define CH_MAX_LINE 1024
#define CH_MAX_TRAILERS 8192

void http_chunked_init(http_chunked *c)
{
    memset(c, 0, sizeof *c);
}

long http_chunked_step(http_chunked *c, const char *buf, size_t len, const char **data, size_t *data_len)
{
    size_t i = 0;
    *data = NULL;
    *data_len = 0;
    while (i < len && !c->done) {
        unsigned char ch = (unsigned char)buf[i];
        switch (c->state) {
        case CH_SIZE: {
            int v = -1;
            if (ch >= '0' && ch <= '9')
                v = ch - '0';
            else if (ch >= 'a' && ch <= 'f')
                v = ch - 'a' + 10;
            else if (ch >= 'A' && ch <= 'F')
                v = ch - 'A' + 10;
            if (v >= 0) {
                if (c->line_len >= 15) /* 15 hex digits: far beyond any real chunk */
                    return HTTP_TOO_LARGE;
                c->remaining = c->remaining * 16 + (uint64_t)v;
                c->line_len++;
                i++;
                break;
            }
            if (c->line_len == 0)
                return HTTP_BAD;
            if (ch == ';' || ch == ' ' || ch == '\t') {
                c->state = CH_EXT;
                break;
            }
            if (ch != '\r')
                return HTTP_BAD;
            c->state = CH_SIZE_LF;
            i++;
            break;
        }
        case CH_EXT:
            /* Chunk extensions are skipped, bounded by the line limit. */
            if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else if (ch == '\n' || (ch < 0x20 && ch != '\t') || ch == 0x7f) {
                return HTTP_BAD;
            } else if (++c->line_len > CH_MAX_LINE) {
                return HTTP_TOO_LARGE;
            }
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                return HTTP_BAD;
            i++;
            c->line_len = 0;
            c->state = c->remaining ? CH_DATA : CH_TRAILER;
            break;
        case CH_DATA: {
            size_t take = len - i;
            if (take > c->remaining)
                take = (size_t)c->remaining;
            *data = buf + i;
            *data_len = take;
            c->remaining -= take;
            i += take;
            if (c->remaining == 0)
                c->state = CH_DATA_CR;
            return (long)i; /* hand the data slice back before reading on */
        }
        case CH_DATA_CR:
            if (ch != '\r')
                return HTTP_BAD;
            c->state = CH_DATA_LF;
            i++;
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                return HTTP_BAD;
            c->state = CH_SIZE;
            c->line_len = 0;
            c->remaining = 0;
            i++;
            break;
        case CH_TRAILER:
            /* Trailer lines are skipped; an empty line ends the body. */
            if (ch == '\r') {
                c->state = CH_TRAILER_LF;
            } else if (ch == '\n') {
                return HTTP_BAD;
            } else {
                c->line_len++;
                if (++c->trailer_len > CH_MAX_TRAILERS)
                    return HTTP_TOO_LARGE;
            }
            i++;
            break;
        case CH_TRAILER_LF:
            if (ch != '\n')
                return HTTP_BAD;
            i++;
            if (c->line_len == 0)
                c->done = 1;
            c->line_len = 0;
            c->state = CH_TRAILER;
            break;
        }
    }
    return (long)i;
}

const char *http_reason(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    }
    return "Unknown";
}
