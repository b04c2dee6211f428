/* api: what the hub's front door hands to its HTTP handlers (the identity
 * provider and the ARM control plane), and helpers to answer in ARM's
 * shape. A request arrives whole: head plus a Content-Length body that is
 * already in memory (bounded by hub_opts.max_body), so handlers are plain
 * synchronous functions. */
#ifndef CK_API_H
#define CK_API_H
#include <stddef.h>

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
