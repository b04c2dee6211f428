/* libFuzzer target: the framer between a hostile client and a server.
 *
 * The input is a script of records, each [tag][len][len bytes]: an even
 * tag feeds client bytes, an odd one server bytes. A driver plays the
 * agent: it forwards each head the framer shows as a rewritten head
 * carrying "X-Seq: N" (and refuses heads that already carry X-Seq, as the
 * agent refuses Impersonate-*, and heads whose target contains '~'),
 * forwards bodies and pipes, and sends local answers.
 *
 * The check is the framer's invariant, judged by an independent reading
 * of what went upstream, as the API server would read it: every request
 * head it finds must be one the driver wrote, in sequence, unless it
 * follows an upgrade request that the framer saw answered 101, in which
 * case the rest is the pipe. Any other head upstream is a smuggled
 * request: abort. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framer.h"

#define CAP 65536

typedef struct {
    framer f;
    uint8_t cli[CAP], srv[CAP];
    size_t cli_len, srv_len;
    uint8_t *up; /* what reached the "API server" */
    size_t up_len;
    unsigned seq;
    long pipe_at; /* upstream length when the framer reported a 101 (-1: never) */
    int dead;
} drv;

static void up_put(drv *d, const void *p, size_t n)
{
    if (d->up_len + n > 4 * CAP) {
        d->dead = 1;
        return;
    }
    memcpy(d->up + d->up_len, p, n);
    d->up_len += n;
}

static void consume(uint8_t *b, size_t *len, size_t n)
{
    if (n > *len)
        abort();
    memmove(b, b + n, *len - n);
    *len -= n;
}

static void forward_head(drv *d, const http_request *req)
{
    char line[64];
    up_put(d, req->method, req->method_len);
    up_put(d, " ", 1);
    up_put(d, req->target, req->target_len);
    int n = snprintf(line, sizeof line, " HTTP/1.1\r\nX-Seq: %u\r\n", d->seq++);
    up_put(d, line, (size_t)n);
    for (size_t i = 0; i < req->nheaders; i++) {
        up_put(d, req->headers[i].name, req->headers[i].name_len);
        up_put(d, ": ", 2);
        up_put(d, req->headers[i].value, req->headers[i].value_len);
        up_put(d, "\r\n", 2);
    }
    up_put(d, "\r\n", 2);
}

static void pump_requests(drv *d)
{
    for (int guard = 0; guard < 10000 && !d->dead; guard++) {
        http_request req;
        size_t n;
        int status;
        const char *why;
        framer_ev ev = framer_request(&d->f, d->cli, d->cli_len, &req, &n, &status, &why);
        if (n > d->cli_len)
            abort();
        if (ev == FRAMER_MORE || ev == FRAMER_HOLD)
            return;
        if (ev == FRAMER_HEAD) {
            /* refused: what the agent refuses (its own marker, like
             * Impersonate-*), some by chance, and heads too full to mark */
            if (http_find(req.headers, req.nheaders, "X-Seq") || memchr(req.target, '~', req.target_len) ||
                req.nheaders >= HTTP_MAX_HEADERS - 1) {
                char ans[32];
                int al = snprintf(ans, sizeof ans, "[R%u]", d->seq + 1000000);
                if (framer_refuse(&d->f, ans, (size_t)al, 0) < 0)
                    abort();
            } else {
                forward_head(d, &req);
                if (framer_forward(&d->f) < 0)
                    abort();
            }
        } else if (ev == FRAMER_BODY || ev == FRAMER_PIPE) {
            if (ev == FRAMER_PIPE && d->pipe_at < 0)
                abort(); /* a pipe that no 101 opened */
            up_put(d, d->cli, n);
        } else if (ev == FRAMER_BAD && status == 0) {
            d->dead = 1; /* the relay drops both sides */
            return;
        } else if (ev == FRAMER_BAD) {
            if (status != 400 && status != 431)
                abort();
            if (framer_refuse(&d->f, "[BAD]", 5, 1) < 0)
                abort();
            n = d->cli_len;
        } else if (ev == FRAMER_DONE) {
            if (!d->cli_len)
                return;
            n = d->cli_len;
        }
        consume(d->cli, &d->cli_len, n);
    }
}

static void pump_responses(drv *d)
{
    for (int guard = 0; guard < 10000 && !d->dead; guard++) {
        http_response res;
        size_t n;
        const char *local;
        framer_ev ev = framer_response(&d->f, d->srv, d->srv_len, &res, &n, &local);
        if (ev == FRAMER_LOCAL) {
            if (!local)
                abort();
            continue;
        }
        if (ev == FRAMER_HEAD || ev == FRAMER_BODY || ev == FRAMER_PIPE) {
            if (n == 0 || n > d->srv_len)
                abort();
            if (ev == FRAMER_HEAD && res.status == 101) {
                if (!framer_piped(&d->f))
                    abort();
                d->pipe_at = (long)d->up_len;
            }
            consume(d->srv, &d->srv_len, n);
            continue;
        }
        if (ev == FRAMER_BAD || ev == FRAMER_DONE)
            d->dead = 1;
        return;
    }
}

/* Reads the upstream bytes as the API server would and checks each head. */
static void judge(const drv *d)
{
    const char *p = (const char *)d->up;
    size_t len = d->up_len, off = 0;
    unsigned want = 0;
    /* The marked heads may exceed the client-side limits a little. */
    static const http_limits lim = {4 * CAP, CAP, HTTP_MAX_HEADERS};
    while (off < len) {
        http_request req;
        int rc = http_parse_request(p + off, len - off, 0, &lim, &req);
        if (rc == HTTP_INCOMPLETE)
            return; /* the driver writes heads whole: only a cut body ends like this */
        if (rc < 0)
            abort(); /* bytes no head of ours framed */
        const http_header *seq = http_find(req.headers, req.nheaders, "X-Seq");
        char want_s[16];
        int wl = snprintf(want_s, sizeof want_s, "%u", want++);
        if (!seq || seq->value_len != (size_t)wl || memcmp(seq->value, want_s, (size_t)wl) != 0)
            abort(); /* a head the driver did not write: smuggled */
        off += (size_t)rc;
        uint64_t blen = 0;
        int kind = http_request_body(&req, &blen);
        if (kind == HTTP_BAD)
            abort();
        if (http_find(req.headers, req.nheaders, "Upgrade")) {
            if (kind != HTTP_BODY_NONE)
                abort();
            if (d->pipe_at >= 0 && (size_t)d->pipe_at == off)
                return; /* answered 101 right here: the rest is the pipe */
            continue;
        }
        if (kind == HTTP_BODY_LENGTH) {
            if (blen > len - off)
                return;
            off += (size_t)blen;
        } else if (kind == HTTP_BODY_CHUNKED) {
            http_chunked ch;
            http_chunked_init(&ch);
            while (off < len && !ch.done) {
                const char *cd;
                size_t cl;
                long r = http_chunked_step(&ch, p + off, len - off, &cd, &cl);
                if (r <= 0)
                    abort(); /* a malformed body was forwarded */
                off += (size_t)r;
            }
            if (!ch.done)
                return;
        }
    }
    if (d->pipe_at >= 0 && (size_t)d->pipe_at > len)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static drv d;
    static uint8_t upbuf[4 * CAP];
    /* Static (the buffers are large), so every field is set afresh. */
    d.cli_len = d.srv_len = d.up_len = 0;
    d.up = upbuf;
    d.seq = 0;
    d.pipe_at = -1;
    d.dead = 0;
    framer_init(&d.f);
    size_t i = 0;
    while (i + 2 <= size && !d.dead) {
        int server = data[i] & 1;
        size_t n = data[i + 1];
        i += 2;
        if (n > size - i)
            n = size - i;
        uint8_t *b = server ? d.srv : d.cli;
        size_t *bl = server ? &d.srv_len : &d.cli_len;
        if (*bl + n > CAP)
            break;
        memcpy(b + *bl, data + i, n);
        *bl += n;
        i += n;
        if (server)
            pump_responses(&d);
        pump_requests(&d);
        pump_responses(&d); /* local answers now due */
    }
    judge(&d);
    framer_free(&d.f);
    return 0;
}
