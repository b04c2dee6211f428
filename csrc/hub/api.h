/* api: the contract between the hub's front door (hub.c) and the parts
 * mounted behind it (relay, ARM, agent API, issuer), and helpers to answer
 * in ARM's shape. The front door depends on this file only, never on a
 * part, and a part never on the front door: main.c mounts each part's
 * handlers on a path prefix (hub_mount).
 *
 * An API request arrives whole: head plus a Content-Length body that is
 * already in memory (bounded by hub_opts.max_body), so API handlers are
 * plain synchronous functions. A takeover handler (the relay) gets the
 * connection itself right after its head. */
#ifndef CK_API_H
#define CK_API_H
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "http.h"
#include "url.h"

typedef struct api_req {
    const http_request *http; /* method, target and headers */
    url_slice path, query;    /* path still percent-encoded */
    const char *body;
    size_t body_len;
    const char *peer; /* "ip:port", for logs */
} api_req;

typedef struct api_resp {
    int status;
    const char *ctype;
    char *body;        /* malloc'd; the front door frees it */
    char headers[512]; /* extra header lines, each ending in CRLF */
} api_resp;

/* Returns 1 when the handler answered (resp filled), 0 when the route is
 * not its own. */
typedef int (*api_handler)(void *ud, const api_req *req, api_resp *resp);

/* Takes over `c`, whose head targets the route's prefix followed by
 * `rest` (still percent-encoded, never empty). The head's slices are only
 * read during the call; from then on the connection is the handler's. */
typedef void (*api_takeover)(void *ud, conn_t *c, const http_request *req, url_slice rest, url_slice query);

/* What a part asks of the front door besides routes; each may be NULL. */
typedef struct api_hooks {
    void (*tick)(void *ud, uint64_t now_ms);            /* about once a second */
    size_t (*metrics)(void *ud, char *out, size_t cap); /* Prometheus text for /metrics; length written */
    void (*shutdown)(void *ud);                         /* the hub stops: close every connection held */
} api_hooks;

/* Monotonic milliseconds: the one clock of the front door and its parts. */
uint64_t api_now_ms(void);

/* Writes a complete response (Connection: close) on a connection the
 * caller owns and closes it gracefully. `reason` replaces the standard
 * phrase when non-NULL (Azure Relay puts its error description there); it
 * is sanitised to printable ASCII. */
void api_reply_close(conn_t *c, int status, const char *reason, const char *ctype, const char *body);
/* Owner for a connection that is being answered and closed: whatever else
 * arrives is discarded. */
extern const conn_cbs api_answered_cbs;

/* resp := status with a JSON body (takes ownership of `json`, a malloc'd
 * string). */
void api_json(api_resp *resp, int status, char *json);
/* resp := ARM error {"error":{"code":code,"message":...}} */
void api_error(api_resp *resp, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Header value as a NUL-terminated copy in out (truncated to cap), or
 * NULL when absent. */
const char *api_header(const api_req *req, const char *name, char *out, size_t cap);
/* Decoded query parameter, or NULL when absent or undecodable. */
const char *api_query(const api_req *req, const char *name, char *out, size_t cap);
/* Decoded application/x-www-form-urlencoded field ('+' is a space), or
 * NULL. */
const char *api_form(const api_req *req, const char *name, char *out, size_t cap);
/* Whether the method is `m`. */
int api_method(const api_req *req, const char *m);

struct cJSON;
/* o[name] when it is a string, else NULL. */
const char *api_jstr(const struct cJSON *o, const char *name);
/* o[name] = str, replacing what was there. */
void api_set_str(struct cJSON *o, const char *name, const char *str);
/* 500 for a state store failure, with SQLite's sentence. */
void api_store_failed(api_resp *resp, const char *why);

#endif
