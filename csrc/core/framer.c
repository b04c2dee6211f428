/* framer: request and response framing of one relayed HTTP/1.1
 * connection. See framer.h for the invariant and the calling contract. */
#include "framer.h"

#include <stdlib.h>
#include <string.h>

enum { RQ_HEAD, RQ_LEN, RQ_CHUNKED, RQ_UPGRADING, RQ_PIPE, RQ_DONE };
enum { RS_HEAD, RS_LEN, RS_CHUNKED, RS_UNTIL_CLOSE, RS_PIPE, RS_DONE };

/* Responses come from the server we trust; their heads may be larger
 * than a client's (long Warning or Location headers), but stay within one
 * connection input buffer (64 KiB, conn.h). */
static const http_limits response_limits = {49152, 16384, HTTP_MAX_HEADERS};

#define QCAP (sizeof((framer *)0)->q / sizeof((framer *)0)->q[0])

void framer_init(framer *f)
{
    memset(f, 0, sizeof *f);
}

void framer_free(framer *f)
{
    while (f->q_len) {
        free(f->q[f->q_head].answer);
        f->q_head = (f->q_head + 1) % QCAP;
        f->q_len--;
    }
    free(f->sent);
    f->sent = NULL;
}

static framer_entry *front(framer *f)
{
    return f->q_len ? &f->q[f->q_head] : NULL;
}

static framer_entry *push(framer *f)
{
    if (f->q_len >= QCAP)
        return NULL;
    framer_entry *e = &f->q[(f->q_head + f->q_len) % QCAP];
    memset(e, 0, sizeof *e);
    f->q_len++;
    return e;
}

/* Drops the front entry; its answer (if any) is the caller's now. */
static void pop(framer *f)
{
    f->q_head = (f->q_head + 1) % QCAP;
    f->q_len--;
}

unsigned framer_inflight(const framer *f)
{
    return f->q_len;
}

int framer_piped(const framer *f)
{
    return f->rq == RQ_PIPE && f->rs == RS_PIPE;
}

static framer_ev bad(int *status, const char **why, int st, const char *reason)
{
    *status = st;
    *why = reason;
    return FRAMER_BAD;
}

/* Feeds a chunked body through the decoder. Returns the bytes of d that
 * belong to the body (all of d, or up to the end of the last chunk), or
 * -1 when the coding is malformed. */
static long chunked_span(http_chunked *ch, const uint8_t *d, size_t len)
{
    size_t used = 0;
    while (used < len && !ch->done) {
        const char *data;
        size_t dl;
        long r = http_chunked_step(ch, (const char *)d + used, len - used, &data, &dl);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        used += (size_t)r;
    }
    return (long)used;
}

static framer_ev parse_head(framer *f, const uint8_t *d, size_t len, http_request *req, size_t *n,
                            int *status, const char **why)
{
    /* Too many answers outstanding: the client waits for some first. */
    if (f->q_len >= FRAMER_MAX_INFLIGHT)
        return FRAMER_HOLD;
    if (!len)
        return FRAMER_MORE;
    int rc = http_parse_request((const char *)d, len, f->rq_last, NULL, req);
    if (rc == HTTP_INCOMPLETE) {
        f->rq_last = len;
        return FRAMER_MORE;
    }
    f->rq_last = 0;
    if (rc == HTTP_TOO_LARGE)
        return bad(status, why, 431, "request head too large");
    if (rc < 0)
        return bad(status, why, 400, "malformed request head");
    /* Origin-form only: an absolute or authority target may be read by
     * the server as naming another host, and CONNECT would turn the
     * stream into a tunnel that no head governs. */
    if (req->target_len == 0 || req->target[0] != '/')
        return bad(status, why, 400, "the request target must be a path");
    if (http_eq(req->method, req->method_len, "CONNECT"))
        return bad(status, why, 400, "CONNECT is not relayed");
    uint64_t blen = 0;
    int kind = http_request_body(req, &blen);
    if (kind == HTTP_BAD)
        return bad(status, why, 400, "conflicting or invalid body framing");
    int upgrade = http_find(req->headers, req->nheaders, "Upgrade") != NULL;
    /* What follows an upgrade request is held until its answer; a body in
     * between would blur where the request ends and the new protocol
     * starts. */
    if (upgrade && kind != HTTP_BODY_NONE)
        return bad(status, why, 400, "an upgrade request cannot carry a body");
    f->pend_len = (size_t)rc;
    f->pend_kind = kind;
    f->pend_blen = blen;
    f->pend_head = http_eq(req->method, req->method_len, "HEAD");
    f->pend_upgrade = upgrade;
    *n = (size_t)rc;
    return FRAMER_HEAD;
}

framer_ev framer_request(framer *f, const uint8_t *d, size_t len, http_request *req, size_t *n, int *status,
                         const char **why)
{
    *n = 0;
    *status = 0;
    *why = "";
    f->pend_len = 0;
    switch (f->rq) {
    case RQ_HEAD: return parse_head(f, d, len, req, n, status, why);
    case RQ_LEN: {
        if (!len)
            return FRAMER_MORE;
        size_t take = len < f->rq_left ? len : (size_t)f->rq_left;
        f->rq_left -= take;
        if (!f->rq_left)
            f->rq = RQ_HEAD;
        *n = take;
        return f->rq_discard ? FRAMER_DISCARD : FRAMER_BODY;
    }
    case RQ_CHUNKED: {
        if (!len)
            return FRAMER_MORE;
        long span = chunked_span(&f->rq_ch, d, len);
        /* Inside a forwarded body the server already holds part of the
         * request and will never answer it: no answer can come in turn. */
        if (span < 0)
            return bad(status, why, f->rq_discard ? 400 : 0, "malformed chunked body");
        if (f->rq_ch.done)
            f->rq = RQ_HEAD;
        if (span == 0)
            return FRAMER_MORE;
        *n = (size_t)span;
        return f->rq_discard ? FRAMER_DISCARD : FRAMER_BODY;
    }
    case RQ_UPGRADING: return FRAMER_HOLD;
    case RQ_PIPE:
        if (!len)
            return FRAMER_MORE;
        *n = len;
        return FRAMER_PIPE;
    default: *n = len; return FRAMER_DONE;
    }
}

/* After a head is settled: where its body (if any) ends. */
static void enter_body(framer *f, int discard)
{
    f->rq_discard = discard;
    if (f->pend_kind == HTTP_BODY_LENGTH) {
        f->rq = RQ_LEN;
        f->rq_left = f->pend_blen;
    } else if (f->pend_kind == HTTP_BODY_CHUNKED) {
        f->rq = RQ_CHUNKED;
        http_chunked_init(&f->rq_ch);
    } else {
        f->rq = RQ_HEAD;
    }
}

int framer_forward(framer *f)
{
    if (!f->pend_len || f->rq != RQ_HEAD)
        return -1;
    framer_entry *e = push(f);
    if (!e)
        return -1;
    e->head_method = f->pend_head;
    e->upgrade = f->pend_upgrade;
    f->requests++;
    if (f->pend_upgrade)
        f->rq = RQ_UPGRADING; /* no body: parse_head refused one */
    else
        enter_body(f, 0);
    f->pend_len = 0;
    return 0;
}

int framer_refuse(framer *f, const char *answer, size_t len, int close)
{
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return -1;
    memcpy(copy, answer, len);
    framer_entry *e = push(f);
    if (!e) {
        free(copy);
        return -1;
    }
    e->local = 1;
    e->answer = copy;
    e->answer_len = len;
    /* Refusing anything but a well-framed head means the stream's framing
     * is lost: nothing after it can be trusted. */
    int settled_head = f->pend_len && f->rq == RQ_HEAD;
    e->close = close || !settled_head;
    if (settled_head)
        f->requests++;
    if (e->close)
        f->rq = RQ_DONE;
    else
        enter_body(f, 1);
    f->pend_len = 0;
    return 0;
}

/* The front request got its whole answer. */
static void response_done(framer *f)
{
    pop(f);
    f->rs = RS_HEAD;
}

static framer_ev response_head(framer *f, const uint8_t *d, size_t len, http_response *res, size_t *n)
{
    int rc = http_parse_response((const char *)d, len, 0, &response_limits, res);
    if (rc == HTTP_INCOMPLETE)
        return FRAMER_MORE;
    if (rc < 0)
        return FRAMER_BAD;
    framer_entry *e = front(f);
    *n = (size_t)rc;
    if (res->status == 101) {
        /* Only the request that asked may switch protocols; it is the last
         * one forwarded, since nothing was read after it. */
        if (!e->upgrade || f->rq != RQ_UPGRADING)
            return FRAMER_BAD;
        pop(f);
        f->rs = RS_PIPE;
        f->rq = RQ_PIPE;
        return FRAMER_HEAD;
    }
    if (res->status < 200)
        return FRAMER_HEAD; /* interim (100 Continue): the answer is still to come */
    uint64_t blen = 0;
    int kind = http_response_body(res, e->head_method ? "HEAD" : "GET", e->head_method ? 4 : 3, &blen);
    if (kind == HTTP_BAD)
        return FRAMER_BAD;
    if (e->upgrade && f->rq == RQ_UPGRADING)
        f->rq = RQ_HEAD; /* refused upgrade: what was held is requests again */
    if (kind == HTTP_BODY_LENGTH) {
        f->rs = RS_LEN;
        f->rs_left = blen;
    } else if (kind == HTTP_BODY_CHUNKED) {
        f->rs = RS_CHUNKED;
        http_chunked_init(&f->rs_ch);
    } else if (kind == HTTP_BODY_UNTIL_CLOSE) {
        pop(f);
        f->rs = RS_UNTIL_CLOSE;
    } else {
        response_done(f);
    }
    return FRAMER_HEAD;
}

framer_ev framer_response(framer *f, const uint8_t *d, size_t len, http_response *res, size_t *n,
                          const char **local)
{
    *n = 0;
    *local = NULL;
    free(f->sent);
    f->sent = NULL;
    switch (f->rs) {
    case RS_HEAD: {
        framer_entry *e = front(f);
        if (e && e->local) {
            f->sent = e->answer;
            *local = e->answer;
            *n = e->answer_len;
            if (e->close)
                f->rs = RS_DONE;
            pop(f);
            return FRAMER_LOCAL;
        }
        if (!len)
            return FRAMER_MORE;
        if (!e)
            return FRAMER_BAD; /* an answer to nothing */
        return response_head(f, d, len, res, n);
    }
    case RS_LEN: {
        if (!len)
            return FRAMER_MORE;
        size_t take = len < f->rs_left ? len : (size_t)f->rs_left;
        f->rs_left -= take;
        if (!f->rs_left)
            response_done(f);
        *n = take;
        return FRAMER_BODY;
    }
    case RS_CHUNKED: {
        if (!len)
            return FRAMER_MORE;
        long span = chunked_span(&f->rs_ch, d, len);
        if (span < 0)
            return FRAMER_BAD;
        if (f->rs_ch.done)
            response_done(f);
        if (span == 0)
            return FRAMER_MORE;
        *n = (size_t)span;
        return FRAMER_BODY;
    }
    case RS_UNTIL_CLOSE:
    case RS_PIPE:
        if (!len)
            return FRAMER_MORE;
        *n = len;
        return f->rs == RS_PIPE ? FRAMER_PIPE : FRAMER_BODY;
    default: return FRAMER_DONE;
    }
}

int framer_answer(framer *f, const uint8_t *d, size_t n, framer_write_fn write, void *ud, size_t *used,
                  int *progress)
{
    size_t off = 0, sent = 0;
    *progress = 0;
    for (;;) {
        http_response res;
        size_t k;
        const char *local;
        framer_ev ev = framer_response(f, d + off, n - off, &res, &k, &local);
        if (ev == FRAMER_HEAD || ev == FRAMER_BODY || ev == FRAMER_PIPE) {
            off += k; /* written below, in one piece with what follows */
            continue;
        }
        if (off > sent) {
            if (write(ud, d + sent, off - sent) < 0)
                return -1;
            sent = off;
            *progress = 1;
        }
        *used = off;
        if (ev != FRAMER_LOCAL)
            return ev; /* MORE, BAD or DONE */
        if (write(ud, local, k) < 0)
            return -1;
        *progress = 1;
    }
}
