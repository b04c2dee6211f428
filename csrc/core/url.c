/* url: request-target and URL slicing. See url.h. */
#include "url.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

void url_split_target(const char *t, size_t n, url_slice *path, url_slice *query)
{
    const char *q = memchr(t, '?', n);
    path->p = t;
    path->n = q ? (size_t)(q - t) : n;
    query->p = q ? q + 1 : t + n;
    query->n = q ? n - path->n - 1 : 0;
}

int url_query_get(url_slice query, const char *name, url_slice *raw)
{
    size_t nl = strlen(name), i = 0;
    while (i < query.n) {
        size_t s = i;
        while (i < query.n && query.p[i] != '&')
            i++;
        const char *kv = query.p + s;
        size_t kvl = i - s;
        if (kvl >= nl && memcmp(kv, name, nl) == 0 && (kvl == nl || kv[nl] == '=')) {
            raw->p = kvl == nl ? kv + nl : kv + nl + 1;
            raw->n = kvl == nl ? 0 : kvl - nl - 1;
            return 1;
        }
        i++;
    }
    return 0;
}

long url_host(const char *hv, size_t n, char *out, size_t cap)
{
    size_t e = n;
    if (n && hv[0] == '[') {
        const char *rb = memchr(hv, ']', n);
        if (!rb)
            return -1;
        e = (size_t)(rb - hv) + 1;
    } else {
        const char *c = memchr(hv, ':', n);
        if (c)
            e = (size_t)(c - hv);
    }
    if (e == 0 || e + 1 > cap)
        return -1;
    for (size_t i = 0; i < e; i++)
        out[i] = (char)tolower((unsigned char)hv[i]);
    out[e] = '\0';
    return (long)e;
}

int url_parse(const char *u, size_t n, url_parts *out)
{
    memset(out, 0, sizeof *out);
    const char *sep = NULL;
    for (size_t i = 0; i + 2 < n; i++) {
        if (u[i] == ':' && u[i + 1] == '/' && u[i + 2] == '/') {
            sep = u + i;
            break;
        }
    }
    if (!sep || sep == u)
        return -1;
    out->scheme.p = u;
    out->scheme.n = (size_t)(sep - u);
    const char *h = sep + 3, *end = u + n, *p = h;
    if (p < end && *p == '[') {
        while (p < end && *p != ']')
            p++;
        if (p == end)
            return -1;
        p++;
    } else {
        while (p < end && *p != ':' && *p != '/' && *p != '?')
            p++;
    }
    out->host.p = h;
    out->host.n = (size_t)(p - h);
    if (out->host.n == 0)
        return -1;
    int port = -1;
    if (p < end && *p == ':') {
        port = 0;
        p++;
        const char *ds = p;
        while (p < end && *p >= '0' && *p <= '9') {
            port = port * 10 + (*p - '0');
            if (port > 65535)
                return -1;
            p++;
        }
        if (p == ds)
            return -1;
    }
    if (p < end && *p != '/' && *p != '?')
        return -1;
    if (port < 0) {
        int secure = (out->scheme.n == 3 && strncasecmp(u, "wss", 3) == 0) ||
                     (out->scheme.n == 5 && strncasecmp(u, "https", 5) == 0);
        port = secure ? 443 : 80;
    }
    out->port = port;
    out->path_query.p = p;
    out->path_query.n = (size_t)(end - p);
    return 0;
}
