/* url: splitting request targets and URLs into slices (no copies). */
#ifndef CK_URL_H
#define CK_URL_H
#include <stddef.h>

typedef struct url_slice {
    const char *p;
    size_t n;
} url_slice;

/* Splits a request target into path and query (query excludes the '?'). */
void url_split_target(const char *t, size_t n, url_slice *path, url_slice *query);

/* Finds parameter `name` in a query string; *raw receives the still
 * percent-encoded value. Returns 1 if found, 0 otherwise. */
int url_query_get(url_slice query, const char *name, url_slice *raw);

/* Host without port from a Host header value ("h:1" -> "h", "[::1]:2" ->
 * "[::1]"), lower-cased into out. Returns its length or -1. */
long url_host(const char *hv, size_t n, char *out, size_t cap);

/* Parsed absolute URL: scheme://host[:port]/path?query */
typedef struct url_parts {
    url_slice scheme, host, path_query;
    int port; /* explicit or the scheme's default (ws/http 80, wss/https 443) */
} url_parts;
/* Returns 0 or -1 for anything that is not scheme://host... */
int url_parse(const char *u, size_t n, url_parts *out);

#endif
