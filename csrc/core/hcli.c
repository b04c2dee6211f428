/* hcli: one-shot HTTP/1.1 client. See hcli.h. */
#include "hcli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "http.h"
#include "url.h"

struct hcli {
    conn_t *c;
    uv_timer_t timer;
    hcli_cb cb;
    void *ud;
    char *req;
    size_t req_len;
    hcli_opts o;
    int done, timer_closed, conn_closed;
    char *body; /* decoded body */
    size_t body_len;
    size_t last_len;
};

static void maybe_free(hcli_t *h)
{
    if (h->done && h->timer_closed && h->conn_closed) {
        free(h->req);
        free(h->body);
        free(h);
    }
}

static void on_timer_closed(uv_handle_t *t)
{
    hcli_t *h = t->data;
    h->timer_closed = 1;
    maybe_free(h);
}

static void finish(hcli_t *h, int status, const char *body, size_t len, const char *err)
{
    if (h->done)
        return;
    h->done = 1;
    if (h->cb)
        h->cb(h->ud, status, body ? body : "", len, err ? err : "");
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, on_timer_closed);
    if (h->c)
        conn_close(h->c, 0);
}

/* Parses a complete answer in buf; returns 1 done (finish() was called,
 * also when memory ran out), 0 more needed, -1 bad. */
static int try_parse(hcli_t *h, const char *buf, size_t len)
{
    http_response res;
    int hl = http_parse_response(buf, len, h->last_len, NULL, &res);
    if (hl == HTTP_INCOMPLETE) {
        h->last_len = len;
        return 0;
    }
    if (hl < 0)
        return -1;
    uint64_t clen = 0;
    int kind = http_response_body(&res, "POST", 4, &clen);
    const char *b = buf + hl;
    size_t avail = len - (size_t)hl;
    if (kind == HTTP_BAD)
        return -1;
    if (kind == HTTP_BODY_NONE) {
        finish(h, res.status, "", 0, NULL);
        return 1;
    }
    if (kind == HTTP_BODY_LENGTH) {
        if (avail < clen)
            return 0;
        char *copy = malloc((size_t)clen + 1);
        if (!copy) {
            finish(h, -1, NULL, 0, "out of memory for the answer");
            return 1;
        }
        memcpy(copy, b, (size_t)clen);
        copy[clen] = '\0';
        h->body = copy;
        finish(h, res.status, copy, (size_t)clen, NULL);
        return 1;
    }
    if (kind == HTTP_BODY_UNTIL_CLOSE)
        return -1; /* control-plane answers carry a length; refuse the rest */
    /* chunked: decode into a fresh buffer each time (answers are small) */
    http_chunked ch;
    http_chunked_init(&ch);
    char *out = malloc(avail + 1);
    size_t on = 0, off = 0;
    if (!out) {
        finish(h, -1, NULL, 0, "out of memory for the answer");
        return 1;
    }
    while (off < avail && !ch.done) {
        const char *d;
        size_t dl;
        long r = http_chunked_step(&ch, b + off, avail - off, &d, &dl);
        if (r < 0) {
            free(out);
            return -1;
        }
        if (r == 0)
            break;
        if (dl) {
            memcpy(out + on, d, dl);
            on += dl;
        }
        off += (size_t)r;
    }
    if (!ch.done) {
        free(out);
        return 0;
    }
    out[on] = '\0';
    h->body = out;
    finish(h, res.status, out, on, NULL);
    return 1;
}

static size_t on_data(conn_t *c, uint8_t *d, size_t n)
{
    hcli_t *h = conn_data(c);
    if (h->done)
        return n;
    if (n > h->o.max_response) {
        finish(h, -1, NULL, 0, "the answer is larger than allowed");
        return n;
    }
    if (try_parse(h, (const char *)d, n) < 0)
        finish(h, -1, NULL, 0, "malformed HTTP answer");
    return 0; /* keep everything buffered until the answer is complete */
}

static void on_eof(conn_t *c)
{
    /* An answer still incomplete at EOF is an error, reported in on_close. */
    conn_close(c, 0);
}

static void on_connect(conn_t *c, int status)
{
    hcli_t *h = conn_data(c);
    if (status < 0)
        return; /* on_close reports */
    int rc = conn_write(c, h->req, h->req_len);
    if (rc < 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot send the request: %s", conn_error(c, rc));
        finish(h, -1, NULL, 0, msg);
    }
}

static void on_close(conn_t *c, int err)
{
    hcli_t *h = conn_data(c);
    h->c = NULL;
    h->conn_closed = 1;
    if (!h->done) {
        char msg[300];
        snprintf(msg, sizeof msg, "connection failed: %s",
                 err ? conn_error(c, err) : "closed before an answer");
        finish(h, -1, NULL, 0, msg);
    }
    maybe_free(h);
}

static const conn_cbs cbs = {
    .on_data = on_data, .on_connect = on_connect, .on_eof = on_eof, .on_close = on_close};

static void on_timeout(uv_timer_t *t)
{
    hcli_t *h = t->data;
    finish(h, -1, NULL, 0, "no answer in time");
}

hcli_t *hcli_request(uv_loop_t *loop, const char *url, tls_ctx *tls, const char *method,
                     const char *const *headers, const char *body, size_t body_len, const hcli_opts *o,
                     hcli_cb cb, void *ud)
{
    url_parts u;
    if (url_parse(url, strlen(url), &u) < 0 || u.host.n >= 256)
        return NULL;
    int secure = u.scheme.n == 5 && strncmp(u.scheme.p, "https", 5) == 0;
    if (!secure && !(u.scheme.n == 4 && strncmp(u.scheme.p, "http", 4) == 0))
        return NULL;
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)u.host.n, u.host.p);
    char *hp = host;
    if (hp[0] == '[') { /* IPv6 literal */
        hp++;
        hp[strlen(hp) - 1] = '\0';
    }
    hcli_t *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->o.max_response = o && o->max_response ? o->max_response : (1u << 20);
    h->o.timeout_ms = o && o->timeout_ms ? o->timeout_ms : 15000;
    h->cb = cb;
    h->ud = ud;
    size_t hdr_len = 0;
    for (size_t i = 0; headers && headers[i]; i++)
        hdr_len += strlen(headers[i]) + 2;
    size_t cap = 512 + u.path_query.n + (size_t)(u.path_query.p - u.host.p) + hdr_len + body_len;
    h->req = malloc(cap);
    if (!h->req) {
        free(h);
        return NULL;
    }
    /* Host: everything between "//" and the path, port included. */
    size_t authority = (size_t)(u.path_query.p - u.host.p);
    size_t n = (size_t)snprintf(h->req, cap,
                                "%s %.*s HTTP/1.1\r\nHost: %.*s\r\nConnection: close\r\n"
                                "Content-Length: %zu\r\n",
                                method, (int)(u.path_query.n ? u.path_query.n : 1),
                                u.path_query.n ? u.path_query.p : "/", (int)authority, u.host.p, body_len);
    for (size_t i = 0; headers && headers[i]; i++)
        n += (size_t)snprintf(h->req + n, cap - n, "%s\r\n", headers[i]);
    n += (size_t)snprintf(h->req + n, cap - n, "\r\n");
    if (body_len) {
        memcpy(h->req + n, body, body_len);
        n += body_len;
    }
    h->req_len = n;
    conn_opts co = conn_default_opts;
    co.in_max = h->o.max_response + 16384;
    co.handshake_ms = h->o.timeout_ms;
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    uv_timer_start(&h->timer, on_timeout, h->o.timeout_ms, 0);
    h->c = conn_connect(loop, hp, u.port, secure ? tls : NULL, NULL, &cbs, h, &co);
    if (!h->c) {
        uv_timer_stop(&h->timer);
        h->done = 1;
        h->conn_closed = 1;
        uv_close((uv_handle_t *)&h->timer, on_timer_closed);
        return NULL;
    }
    return h;
}

void hcli_cancel(hcli_t *h)
{
    if (!h || h->done)
        return;
    h->cb = NULL;
    finish(h, -1, NULL, 0, "cancelled");
}
