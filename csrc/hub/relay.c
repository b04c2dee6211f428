/* relay: Hybrid Connections relay. See relay.h.
 *
 * Object lifetimes. Every accepted connection belongs to exactly one of
 * these at a time, named by its conn data pointer:
 *   listener  - a control channel; lives until its conn's on_close.
 *   pending   - a sender waiting for its rendezvous; the sender conn is
 *               paused, so any early frames stay in its input buffer.
 *   splice_end- one side of a spliced pair; the splice is freed when both
 *               conns have closed.
 * Pointers between them (a splice's listener, for load accounting) are
 * cleared when the target goes away. */
#include "relay.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "enc.h"
#include "api.h"
#include "json.h"
#include "list.h"
#include "log.h"
#include "ws.h"

const relay_opts relay_default_opts = {
    .ping_interval_ms = 30000,
    .rendezvous_ms = 10000,
    .stall_ms = 60000,
    .max_listeners = 25,
    .max_pending = 4096,
    .max_control_msg = 64 * 1024,
    .max_frame = (uint64_t)1 << 40,
};

enum reject_reason {
    RJ_BAD_REQUEST,
    RJ_UNAUTHORIZED,
    RJ_FORBIDDEN,
    RJ_NOT_FOUND,
    RJ_NO_LISTENER,
    RJ_QUOTA,
    RJ_RATE_LIMITED,
    RJ_RENDEZVOUS_UNKNOWN,
    RJ_RENDEZVOUS_TIMEOUT,
    RJ_LISTENER_REJECTED,
    RJ_BUSY,
    RJ_COUNT
};
static const char *reject_names[RJ_COUNT] = {
    "bad_request",  "unauthorized",       "forbidden",          "not_found",         "no_listener", "quota",
    "rate_limited", "rendezvous_unknown", "rendezvous_timeout", "listener_rejected", "busy",
};

typedef struct rhc rhc;
typedef struct listener listener;

struct rhc {
    char *name;
    sas_rule *rules;
    size_t nrules;
    list_node listeners; /* listener.link */
    int nlisteners;
    unsigned rr; /* round-robin start among equally loaded listeners */
    rhc *next;
};

struct listener {
    relay_t *r;
    rhc *hc; /* NULL once removed from its hybrid connection */
    conn_t *c;
    ws_msg msg;
    char id[64];
    char host[256]; /* Host header the listener used: accept addresses use it */
    char sas_host[256];
    int64_t token_exp;
    uint64_t last_seen, ping_sent;
    int awaiting_pong;
    int load; /* rendezvous in flight + spliced streams */
    int closing;
    list_node link; /* on hc->listeners while hc is set */
};

typedef struct pending {
    relay_t *r;
    char id[33];
    rhc *hc;
    listener *l;
    conn_t *sender;
    char key[32];
    uint64_t deadline;
    list_node link; /* on relay.pend */
} pending;

typedef struct pair pair;
typedef struct splice_end {
    pair *s;
    conn_t *c;
    ws_dec dec;
    ws_utf8 utf8;
    int in_text;
    int paused;      /* paused by us because the other side is full */
    int got_close;   /* this side sent us a close frame */
    uint8_t hdr[14]; /* header held back to share a write with its payload */
    size_t hdr_len;
    uint8_t ctl[125]; /* control frame payload being collected */
    size_t ctl_len;
} splice_end;

struct pair {
    relay_t *r;
    splice_end a, b; /* a: sender, b: listener */
    listener *l;
    char hc[128];
    char id[33];
    uint64_t started;
    list_node link; /* on relay.splices */
};

typedef struct fail_entry {
    char ip[48];
    uint64_t window_start;
    int fails;
} fail_entry;

#define FAIL_SLOTS 64
#define FAIL_WINDOW_MS 10000
#define FAIL_LIMIT 20

struct relay {
    uv_loop_t *loop;
    relay_opts o;
    sas_rule *ns_rules;
    size_t n_ns;
    rhc *hcs;
    list_node pend; /* pending.link */
    int npend;
    list_node splices; /* pair.link */
    int nsplices;
    uint64_t conns_total, bytes_s2l, bytes_l2s;
    uint64_t rejects[RJ_COUNT];
    fail_entry fails[FAIL_SLOTS];
};

/* ---- helpers ---------------------------------------------------------- */

static void free_rules(sas_rule *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)r[i].name);
        free((char *)r[i].key);
    }
    free(r);
}

/* A deep copy, or NULL when memory ran out (nothing is kept). */
static sas_rule *copy_rules(const sas_rule *src, size_t n)
{
    sas_rule *r = calloc(n ? n : 1, sizeof *r);
    for (size_t i = 0; r && i < n; i++) {
        r[i].name = strdup(src[i].name);
        r[i].key = strdup(src[i].key);
        r[i].rights = src[i].rights;
        if (!r[i].name || !r[i].key) {
            free_rules(r, i + 1);
            return NULL;
        }
    }
    return r;
}

/* One unmasked frame, header and payload queued as a unit: on failure
 * (see conn_write2) nothing of the frame was queued. */
static int send_frame(conn_t *c, int opcode, const void *p, size_t n)
{
    uint8_t h[14];
    size_t hl = ws_header(h, 1, opcode, n, NULL);
    return conn_write2(c, h, hl, p, n);
}

/* Best effort: every caller closes the connection right after, so a close
 * frame that cannot be queued only means that the peer sees the
 * connection end without it. */
static void send_close(conn_t *c, int code, const char *reason)
{
    uint8_t p[125];
    size_t n = ws_close_payload(p, code, reason);
    (void)send_frame(c, WS_OP_CLOSE, p, n);
}

static void reject(relay_t *r, conn_t *c, enum reject_reason why, int status, const char *desc,
                   const char *action, const char *entity)
{
    char st[8];
    snprintf(st, sizeof st, "%d", status);
    r->rejects[why]++;
    log_kv(LOG_INFO, "relay.reject", "remote", conn_peer(c), "action", action ? action : "", "entity",
           entity ? entity : "", "status", st, "reason", reject_names[why], NULL);
    api_reply_close(c, status, desc, "text/plain", desc);
}

static rhc *find_hc(relay_t *r, const char *path, size_t *matched)
{
    rhc *best = NULL;
    size_t best_len = 0, pl = strlen(path);
    for (rhc *h = r->hcs; h; h = h->next) {
        size_t nl = strlen(h->name);
        if (nl > pl || nl <= best_len || strncasecmp(h->name, path, nl) != 0)
            continue;
        if (nl == pl || path[nl] == '/') {
            best = h;
            best_len = nl;
        }
    }
    if (matched)
        *matched = best_len;
    return best;
}

static fail_entry *fail_slot(relay_t *r, const char *ip, int create)
{
    fail_entry *oldest = &r->fails[0];
    for (int i = 0; i < FAIL_SLOTS; i++) {
        if (strcmp(r->fails[i].ip, ip) == 0)
            return &r->fails[i];
        if (r->fails[i].window_start < oldest->window_start)
            oldest = &r->fails[i];
    }
    if (!create)
        return NULL;
    memset(oldest, 0, sizeof *oldest);
    snprintf(oldest->ip, sizeof oldest->ip, "%s", ip);
    return oldest;
}

/* Microsoft's hyco-ws reconnects a refused listener with no backoff; count
 * failed listen attempts per source address and refuse a storm. */
static int rate_limited(relay_t *r, const char *ip)
{
    fail_entry *f = fail_slot(r, ip, 0);
    uint64_t now = api_now_ms();
    return f && now - f->window_start < FAIL_WINDOW_MS && f->fails >= FAIL_LIMIT;
}

static void note_failure(relay_t *r, const char *ip)
{
    fail_entry *f = fail_slot(r, ip, 1);
    uint64_t now = api_now_ms();
    if (now - f->window_start >= FAIL_WINDOW_MS) {
        f->window_start = now;
        f->fails = 0;
    }
    f->fails++;
}

/* ---- listeners -------------------------------------------------------- */

static void listener_unlink(listener *l)
{
    if (!l->hc)
        return;
    list_remove(&l->link);
    l->hc->nlisteners--;
    l->hc = NULL;
}

static void listener_close(listener *l, int code, const char *reason)
{
    if (l->closing)
        return;
    l->closing = 1;
    log_kv(LOG_INFO, "listener.close", "id", l->id, "entity", l->hc ? l->hc->name : "", "remote",
           conn_peer(l->c), "reason", reason, NULL);
    listener_unlink(l);
    if (code)
        send_close(l->c, code, reason);
    conn_close(l->c, 1);
}

static int on_control_message(void *ud, int opcode, const uint8_t *data, size_t len)
{
    listener *l = ud;
    switch (opcode) {
    case WS_OP_PING:
        if (send_frame(l->c, WS_OP_PONG, data, len) < 0) {
            listener_close(l, 0, "cannot write to the control channel");
            return 1;
        }
        return 0;
    case WS_OP_PONG: l->awaiting_pong = 0; return 0;
    case WS_OP_CLOSE: {
        int code = len >= 2 ? (data[0] << 8 | data[1]) : WS_CLOSE_NORMAL;
        char why[32];
        snprintf(why, sizeof why, "listener closed (%d)", code);
        listener_close(l, WS_CLOSE_NORMAL, why);
        return 1;
    }
    case WS_OP_BINARY: return 0; /* hyco-https sends a stray empty binary message; ignore */
    case WS_OP_TEXT: break;
    default: return 0;
    }
    cJSON *msg = cJSON_ParseWithLength((const char *)data, len);
    const cJSON *renew = msg ? cJSON_GetObjectItemCaseSensitive(msg, "renewToken") : NULL;
    if (renew) {
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(renew, "token");
        int rc = SAS_ERR_MISSING;
        int64_t exp = 0;
        if (cJSON_IsString(tok) && l->hc) {
            relay_t *r = l->r;
            rc = sas_authorize(tok->valuestring, strlen(tok->valuestring), l->hc->rules, l->hc->nrules,
                               r->ns_rules, r->n_ns, l->sas_host, l->hc->name, SAS_RIGHT_LISTEN,
                               (int64_t)time(NULL), &exp);
        }
        cJSON_Delete(msg);
        if (rc != SAS_OK) {
            char why[96];
            snprintf(why, sizeof why, "token renewal refused: %s", sas_strerror(rc));
            listener_close(l, WS_CLOSE_POLICY, why);
            return 1;
        }
        l->token_exp = exp;
        log_kv(LOG_INFO, "listener.renew", "id", l->id, "entity", l->hc->name, NULL);
        return 0;
    }
    /* Unknown control messages (request-mode responses, future verbs) are
     * ignored, as the SDKs ignore what they do not know. */
    log_kv(LOG_DEBUG, "listener.unknown_message", "id", l->id, NULL);
    cJSON_Delete(msg);
    return 0;
}

static size_t listener_on_data(conn_t *c, uint8_t *data, size_t len)
{
    listener *l = conn_data(c);
    if (l->closing)
        return len;
    l->last_seen = api_now_ms();
    l->awaiting_pong = 0; /* any frame proves the peer alive */
    long n = ws_msg_feed(&l->msg, data, len, on_control_message, l);
    if (n < 0) {
        int code = (int)-n;
        listener_close(l, code,
                       code == WS_CLOSE_TOO_BIG    ? "control message too large"
                       : code == WS_CLOSE_BAD_DATA ? "invalid UTF-8"
                                                   : "protocol error");
    }
    /* A callback that closed the channel stops the feed; drop the rest. */
    return n < 0 || l->closing ? len : (size_t)n;
}

static void listener_on_close(conn_t *c, int err)
{
    listener *l = conn_data(c);
    relay_t *r = l->r;
    if (!l->closing)
        log_kv(LOG_INFO, "listener.gone", "id", l->id, "entity", l->hc ? l->hc->name : "", "remote",
               conn_peer(c), "error", conn_error(c, err), NULL);
    listener_unlink(l);
    list_node *n, *t;
    list_foreach (n, t, &r->pend)
        if (list_entry(n, pending, link)->l == l)
            list_entry(n, pending, link)->l = NULL;
    list_foreach (n, t, &r->splices)
        if (list_entry(n, pair, link)->l == l)
            list_entry(n, pair, link)->l = NULL;
    ws_msg_free(&l->msg);
    free(l);
}

static const conn_cbs listener_cbs = {
    .on_data = listener_on_data,
    .on_close = listener_on_close,
};

/* ---- splicing --------------------------------------------------------- */

static splice_end *other(splice_end *e)
{
    return e == &e->s->a ? &e->s->b : &e->s->a;
}

static void splice_maybe_free(pair *s)
{
    if (s->a.c || s->b.c)
        return;
    relay_t *r = s->r;
    if (s->l)
        s->l->load--;
    list_remove(&s->link);
    r->nsplices--;
    log_kv(LOG_INFO, "stream.end", "id", s->id, "entity", s->hc, NULL);
    free(s);
}

/* Whether part of a data frame from `e` was already passed on: the other
 * side is then inside that frame, and a close frame written now would land
 * in its payload. Such a side can only be disconnected. */
static int mid_frame(const splice_end *e)
{
    return e->dec.state != 0 && e->dec.f.opcode < 8 && e->hdr_len == 0 && e->dec.got < e->dec.f.len;
}

/* Ends the splice because of `from` (protocol error or departure): tells
 * both sides why, as far as they are still there. */
static void splice_abort(splice_end *from, int code_from, int code_to, const char *why)
{
    splice_end *to = other(from);
    if (from->c) {
        if (code_from && !mid_frame(to))
            send_close(from->c, code_from, why);
        conn_close(from->c, 1);
    }
    if (to->c) {
        if (code_to && !mid_frame(from))
            send_close(to->c, code_to, "peer left");
        conn_close(to->c, 1);
    }
}

/* A write from `from` towards the other side failed: its queue passed
 * out_max, memory ran out, or the socket or TLS broke (conn_write2).
 * Part of a frame may be lost, so the other side's frame stream is cut and
 * cannot go on: it is dropped at once, without a close frame that would
 * land inside the cut frame, which also frees its queue now rather than
 * after a flush it cannot use. `from` is told in a close frame and closed
 * gracefully, as when a peer leaves. */
static void splice_write_failed(splice_end *from, int rc)
{
    splice_end *to = other(from);
    log_kv(LOG_WARN, "stream.write_failed", "id", from->s->id, "side",
           to == &to->s->a ? "sender" : "listener", "error", conn_error(to->c, rc), NULL);
    conn_close(to->c, 0);
    splice_abort(from, WS_CLOSE_GOING_AWAY, 0, "peer unreachable");
}

static size_t splice_on_data(conn_t *c, uint8_t *data, size_t len)
{
    splice_end *e = conn_data(c);
    splice_end *o = other(e);
    relay_t *r = e->s->r;
    size_t off = 0;
    uint64_t *counter = e == &e->s->a ? &r->bytes_s2l : &r->bytes_l2s;
    if (!o->c) { /* the other side is gone; nothing to pass on */
        return len;
    }
    while (off < len || e->dec.state) {
        if (!conn_writable(o->c)) {
            e->paused = 1;
            conn_pause(c);
            break;
        }
        ws_ev ev;
        long n = ws_dec_step(&e->dec, data + off, len - off, &ev);
        if (n < 0) {
            splice_abort(e, (int)-n, WS_CLOSE_GOING_AWAY, "protocol error");
            return len;
        }
        off += (size_t)n;
        if (ev.type == WS_EV_NONE)
            break;
        const ws_frame *f = &e->dec.f;
        if (ev.type == WS_EV_HEADER) {
            if (f->opcode >= 8) {
                e->ctl_len = 0;
                continue;
            }
            if (f->opcode == WS_OP_TEXT) {
                e->in_text = 1;
                memset(&e->utf8, 0, sizeof e->utf8);
            } else if (f->opcode == WS_OP_BINARY) {
                e->in_text = 0;
            }
            e->hdr_len = ws_header(e->hdr, f->fin, f->opcode, f->len, NULL);
            continue;
        }
        if (ev.type == WS_EV_DATA) {
            if (f->opcode >= 8) {
                memcpy(e->ctl + e->ctl_len, ev.data, ev.len);
                e->ctl_len += ev.len;
                continue;
            }
            if (e->in_text && ws_utf8_feed(&e->utf8, ev.data, ev.len) < 0) {
                splice_abort(e, WS_CLOSE_BAD_DATA, WS_CLOSE_GOING_AWAY, "invalid UTF-8");
                return len;
            }
            int wrc = conn_write2(o->c, e->hdr, e->hdr_len, ev.data, ev.len);
            if (wrc < 0) {
                splice_write_failed(e, wrc);
                return len;
            }
            e->hdr_len = 0;
            *counter += ev.len;
            continue;
        }
        /* WS_EV_END */
        if (f->opcode >= 8) {
            uint8_t h[14];
            size_t hl = ws_header(h, 1, f->opcode, e->ctl_len, NULL);
            int wrc = conn_write2(o->c, h, hl, e->ctl, e->ctl_len);
            if (wrc < 0) {
                splice_write_failed(e, wrc);
                return len;
            }
            if (f->opcode == WS_OP_CLOSE) {
                e->got_close = 1;
                if (o->got_close) {
                    /* Both directions closed: flush and finish. */
                    conn_close(c, 1);
                    conn_close(o->c, 1);
                    return len;
                }
            }
            continue;
        }
        if (e->hdr_len) { /* empty frame */
            int wrc = conn_write(o->c, e->hdr, e->hdr_len);
            if (wrc < 0) {
                splice_write_failed(e, wrc);
                return len;
            }
            e->hdr_len = 0;
        }
        if (f->fin && e->in_text && ws_utf8_done(&e->utf8) < 0) {
            splice_abort(e, WS_CLOSE_BAD_DATA, WS_CLOSE_GOING_AWAY, "invalid UTF-8");
            return len;
        }
    }
    return off;
}

static void splice_on_drain(conn_t *c)
{
    splice_end *e = conn_data(c);
    splice_end *o = other(e);
    if (o->c && o->paused) {
        o->paused = 0;
        conn_resume(o->c);
    }
}

static void splice_on_close(conn_t *c, int err)
{
    splice_end *e = conn_data(c);
    splice_end *o = other(e);
    e->c = NULL;
    if (err)
        log_kv(LOG_INFO, "stream.peer_error", "id", e->s->id, "side", e == &e->s->a ? "sender" : "listener",
               "error", conn_error(c, err), NULL);
    if (o->c) {
        if (!e->got_close && !mid_frame(e)) /* left without a close frame: say so */
            send_close(o->c, WS_CLOSE_GOING_AWAY, "peer left");
        conn_close(o->c, 1);
    }
    splice_maybe_free(e->s);
}

static const conn_cbs splice_cbs = {
    .on_data = splice_on_data,
    .on_drain = splice_on_drain,
    .on_close = splice_on_close,
};

/* ---- pending rendezvous ---------------------------------------------- */

static void pending_unlink(pending *p)
{
    relay_t *r = p->r;
    list_remove(&p->link);
    r->npend--;
}

/* Takes a rendezvous off the books and hands its sender connection to the
 * closing owner, so that the caller can answer it. */
static conn_t *pending_detach(pending *p)
{
    conn_t *sender = p->sender;
    pending_unlink(p);
    if (p->l)
        p->l->load--;
    free(p);
    conn_set_cbs(sender, &api_answered_cbs);
    conn_set_data(sender, NULL);
    return sender;
}

static size_t pending_on_data(conn_t *c, uint8_t *data, size_t len)
{
    (void)c, (void)data, (void)len;
    return 0; /* paused: early frames wait for the pair */
}

static void pending_on_close(conn_t *c, int err)
{
    (void)err;
    pending *p = conn_data(c);
    if (p->l)
        p->l->load--;
    pending_unlink(p);
    free(p);
}

static const conn_cbs pending_cbs = {
    .on_data = pending_on_data,
    .on_close = pending_on_close,
};

/* ---- upgrade handling -------------------------------------------------- */

/* 0, or conn_write's error (nothing was queued). */
static int write_101(conn_t *c, const char *accept, const char *proto)
{
    char resp[256];
    int n =
        snprintf(resp, sizeof resp,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                 accept, proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "", proto ? "\r\n" : "");
    return conn_write(c, resp, (size_t)n);
}

static int slice_to(url_slice s, char *out, size_t cap)
{
    if (s.n >= cap)
        return -1;
    memcpy(out, s.p, s.n);
    out[s.n] = '\0';
    return 0;
}

static int header_to(const http_request *req, const char *name, char *out, size_t cap)
{
    const http_header *h = http_find(req->headers, req->nheaders, name);
    if (!h || h->value_len >= cap)
        return -1;
    memcpy(out, h->value, h->value_len);
    out[h->value_len] = '\0';
    return 0;
}

/* Token from sb-hc-token, ServiceBusAuthorization or Authorization, in
 * that order of precedence. */
static int find_token(const http_request *req, url_slice query, char *out, size_t cap)
{
    url_slice raw;
    if (url_query_get(query, "sb-hc-token", &raw) && raw.n)
        return enc_pct_decode(raw.p, raw.n, out, cap) < 0 ? -1 : 0;
    if (header_to(req, "ServiceBusAuthorization", out, cap) == 0)
        return 0;
    if (header_to(req, "Authorization", out, cap) == 0)
        return 0;
    out[0] = '\0';
    return 0;
}

/* Makes a printable, bounded copy for logs and ids. */
static void safe_copy(char *out, size_t cap, const char *p, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++)
        out[o++] = (p[i] > 0x20 && p[i] < 0x7f) ? p[i] : '_';
    out[o] = '\0';
}

static void do_listen(relay_t *r, conn_t *c, const http_request *req, const char *entity, const char *host,
                      const char *sas_host, const char *token, const char *key, url_slice query)
{
    const char *ip = conn_peer_ip(c);
    if (rate_limited(r, ip)) {
        r->rejects[RJ_RATE_LIMITED]++;
        api_reply_close(c, 429, "Too many failed listen attempts from this address; retry later.",
                        "text/plain", "Too many failed listen attempts from this address; retry later.\n");
        return;
    }
    size_t matched;
    rhc *hc = find_hc(r, entity, &matched);
    int64_t exp = 0;
    int rc = sas_authorize(token, strlen(token), hc ? hc->rules : NULL, hc ? hc->nrules : 0, r->ns_rules,
                           r->n_ns, sas_host, entity, SAS_RIGHT_LISTEN, (int64_t)time(NULL), &exp);
    char desc[160];
    if (rc != SAS_OK && sas_http_status(rc) == 401) {
        note_failure(r, ip);
        snprintf(desc, sizeof desc, "Unauthorized: %s.", sas_strerror(rc));
        reject(r, c, RJ_UNAUTHORIZED, 401, desc, "listen", entity);
        return;
    }
    if (!hc || matched != strlen(entity)) {
        note_failure(r, ip);
        reject(r, c, RJ_NOT_FOUND, 404, "Endpoint does not exist.", "listen", entity);
        return;
    }
    if (rc != SAS_OK) {
        note_failure(r, ip);
        snprintf(desc, sizeof desc, "Forbidden: %s.", sas_strerror(rc));
        reject(r, c, RJ_FORBIDDEN, 403, desc, "listen", entity);
        return;
    }
    if (hc->nlisteners >= r->o.max_listeners) {
        note_failure(r, ip);
        snprintf(desc, sizeof desc, "Quota exceeded: at most %d listeners per hybrid connection.",
                 r->o.max_listeners);
        reject(r, c, RJ_QUOTA, 403, desc, "listen", entity);
        return;
    }
    listener *l = calloc(1, sizeof *l);
    if (!l) {
        api_reply_close(c, 503, NULL, "text/plain", "out of memory\n");
        return;
    }
    int wrc = write_101(c, key, NULL);
    if (wrc < 0) {
        /* A connection that cannot take the 101 cannot take a reply. */
        log_kv(LOG_WARN, "listener.write_failed", "entity", hc->name, "remote", conn_peer(c), "error",
               conn_error(c, wrc), NULL);
        free(l);
        conn_close(c, 0);
        return;
    }
    l->r = r;
    l->c = c;
    l->hc = hc;
    l->token_exp = exp;
    l->last_seen = api_now_ms();
    snprintf(l->host, sizeof l->host, "%s", host);
    snprintf(l->sas_host, sizeof l->sas_host, "%s", sas_host);
    url_slice idraw;
    if (url_query_get(query, "sb-hc-id", &idraw) && idraw.n)
        safe_copy(l->id, sizeof l->id, idraw.p, idraw.n);
    else {
        uint8_t rnd[8];
        enc_random(rnd, sizeof rnd);
        enc_hex(rnd, sizeof rnd, l->id, sizeof l->id);
    }
    ws_msg_init(&l->msg, WS_ROLE_SERVER, r->o.max_control_msg);
    list_insert_head(&hc->listeners, &l->link);
    hc->nlisteners++;
    (void)req;
    conn_set_data(c, l);
    conn_set_cbs(c, &listener_cbs);
    char cnt[16];
    snprintf(cnt, sizeof cnt, "%d", hc->nlisteners);
    log_kv(LOG_INFO, "listener.open", "id", l->id, "entity", hc->name, "remote", conn_peer(c), "listeners",
           cnt, NULL);
}

static listener *pick_listener(rhc *hc)
{
    listener *best = NULL;
    int i = 0, start = (int)(hc->rr++ % (unsigned)hc->nlisteners);
    /* Least loaded wins; among equals, the first after a rotating start. */
    for (int pass = 0; pass < 2; pass++) {
        i = 0;
        list_node *n, *t;
        list_foreach (n, t, &hc->listeners) {
            listener *l = list_entry(n, listener, link);
            if ((pass == 0 && i < start) || (pass == 1 && i >= start)) {
                i++;
                continue;
            }
            i++;
            if (!l->closing && conn_writable(l->c) && (!best || l->load < best->load))
                best = l;
        }
    }
    return best;
}

static int utf8_ok(const char *p, size_t n)
{
    ws_utf8 u = {0};
    return ws_utf8_feed(&u, (const uint8_t *)p, n) == 0 && ws_utf8_done(&u) == 0;
}

static void do_connect(relay_t *r, conn_t *c, const http_request *req, const char *entity,
                       const char *sas_host, const char *token)
{
    size_t matched;
    rhc *hc = find_hc(r, entity, &matched);
    int64_t exp;
    int rc =
        sas_authorize(token, strlen(token), hc ? hc->rules : NULL, hc ? hc->nrules : 0, r->ns_rules, r->n_ns,
                      sas_host, hc ? hc->name : entity, SAS_RIGHT_SEND, (int64_t)time(NULL), &exp);
    char desc[160];
    if (rc != SAS_OK && sas_http_status(rc) == 401) {
        snprintf(desc, sizeof desc, "Unauthorized: %s.", sas_strerror(rc));
        reject(r, c, RJ_UNAUTHORIZED, 401, desc, "connect", entity);
        return;
    }
    if (!hc) {
        reject(r, c, RJ_NOT_FOUND, 404, "Endpoint does not exist.", "connect", entity);
        return;
    }
    if (rc != SAS_OK) {
        snprintf(desc, sizeof desc, "Forbidden: %s.", sas_strerror(rc));
        reject(r, c, RJ_FORBIDDEN, 403, desc, "connect", entity);
        return;
    }
    if (r->npend >= r->o.max_pending) {
        reject(r, c, RJ_BUSY, 503, "Too many connections waiting for a listener; retry.", "connect", entity);
        return;
    }
    listener *l = hc->nlisteners ? pick_listener(hc) : NULL;
    if (!l) {
        reject(r, c, RJ_NO_LISTENER, 404, "There are no listeners connected for the endpoint.", "connect",
               entity);
        return;
    }
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        api_reply_close(c, 503, NULL, "text/plain", "out of memory\n");
        return;
    }
    uint8_t rnd[16];
    enc_random(rnd, sizeof rnd);
    enc_hex(rnd, sizeof rnd, p->id, sizeof p->id);
    p->r = r;
    p->hc = hc;
    p->l = l;
    p->sender = c;
    p->deadline = api_now_ms() + r->o.rendezvous_ms;
    header_to(req, "Sec-WebSocket-Key", p->key, sizeof p->key);

    /* The accept message: connectHeaders are the sender's headers minus
     * credentials; values that are not UTF-8 cannot travel in JSON text
     * and are dropped. A message that lost a member to a failed
     * allocation is not sent (json_print). */
    unsigned mark = json_failures();
    cJSON *msg = cJSON_CreateObject();
    cJSON *acc = cJSON_AddObjectToObject(msg, "accept");
    char addr[1024];
    snprintf(addr, sizeof addr, "wss://%s/$hc/%s?sb-hc-action=accept&sb-hc-id=%s", l->host, hc->name, p->id);
    cJSON_AddStringToObject(acc, "address", addr);
    cJSON_AddStringToObject(acc, "id", p->id);
    cJSON *hdrs = cJSON_AddObjectToObject(acc, "connectHeaders");
    for (size_t i = 0; i < req->nheaders; i++) {
        const http_header *h = &req->headers[i];
        if (http_eq(h->name, h->name_len, "Authorization") ||
            http_eq(h->name, h->name_len, "ServiceBusAuthorization") || !utf8_ok(h->value, h->value_len))
            continue;
        char name[128], val[4096];
        if (h->name_len >= sizeof name || h->value_len >= sizeof val)
            continue;
        memcpy(name, h->name, h->name_len);
        name[h->name_len] = '\0';
        memcpy(val, h->value, h->value_len);
        val[h->value_len] = '\0';
        cJSON *prev = cJSON_GetObjectItem(hdrs, name);
        if (prev && cJSON_IsString(prev)) {
            char joined[8192];
            snprintf(joined, sizeof joined, "%s, %s", prev->valuestring, val);
            cJSON_ReplaceItemInObject(hdrs, name, cJSON_CreateString(joined));
        } else {
            cJSON_AddStringToObject(hdrs, name, val);
        }
    }
    cJSON *ep = cJSON_AddObjectToObject(acc, "remoteEndpoint");
    cJSON_AddStringToObject(ep, "address", conn_peer_ip(c));
    cJSON_AddNumberToObject(ep, "port", conn_peer_port(c));
    char *text = json_print(msg, mark, 0);
    cJSON_Delete(msg);
    if (!text || send_frame(l->c, WS_OP_TEXT, text, strlen(text)) < 0) {
        free(text);
        free(p);
        api_reply_close(c, 503, "The listener could not be reached; retry.", "text/plain",
                        "listener unreachable\n");
        return;
    }
    free(text);
    l->load++;
    list_insert_head(&r->pend, &p->link);
    r->npend++;
    conn_set_data(c, p);
    conn_set_cbs(c, &pending_cbs);
    conn_pause(c);
    log_kv(LOG_INFO, "sender.accept_sent", "id", p->id, "entity", hc->name, "remote", conn_peer(c),
           "listener", l->id, NULL);
}

static void do_accept(relay_t *r, conn_t *c, const http_request *req, const char *entity, const char *key,
                      url_slice query)
{
    url_slice idraw, sc;
    char id[40] = "";
    if (!url_query_get(query, "sb-hc-id", &idraw) || idraw.n != 32 || slice_to(idraw, id, sizeof id) < 0) {
        reject(r, c, RJ_RENDEZVOUS_UNKNOWN, 404, "Rendezvous address unknown or expired.", "accept", entity);
        return;
    }
    pending *p = NULL;
    list_node *n, *t;
    list_foreach (n, t, &r->pend)
        if (!strcmp(list_entry(n, pending, link)->id, id)) {
            p = list_entry(n, pending, link);
            break;
        }
    size_t matched;
    rhc *hc = find_hc(r, entity, &matched);
    if (!p || !hc || hc != p->hc || matched != strlen(entity)) {
        reject(r, c, RJ_RENDEZVOUS_UNKNOWN, 404, "Rendezvous address unknown or expired.", "accept", entity);
        return;
    }
    /* Single use: the address dies now, whatever happens next. */
    if (url_query_get(query, "sb-hc-statusCode", &sc)) {
        int code = 0;
        for (size_t i = 0; i < sc.n && i < 3; i++)
            code = code * 10 + (sc.p[i] >= '0' && sc.p[i] <= '9' ? sc.p[i] - '0' : 0);
        if (code < 400 || code > 599)
            code = 502;
        char desc[160] = "Rejected by the listener.";
        url_slice sd;
        if (url_query_get(query, "sb-hc-statusDescription", &sd) && sd.n) {
            char dec[160];
            if (enc_pct_decode(sd.p, sd.n, dec, sizeof dec) > 0)
                snprintf(desc, sizeof desc, "%s", dec);
        }
        r->rejects[RJ_LISTENER_REJECTED]++;
        log_kv(LOG_INFO, "sender.rejected_by_listener", "id", p->id, "entity", hc->name, NULL);
        conn_t *sender = pending_detach(p);
        api_reply_close(c, 410, "Gone", "text/plain", "rejection delivered\n");
        api_reply_close(sender, code, desc, "text/plain", desc);
        return;
    }
    pair *s = calloc(1, sizeof *s);
    if (!s) {
        conn_t *sender = pending_detach(p);
        api_reply_close(c, 503, NULL, "text/plain", "out of memory\n");
        api_reply_close(sender, 503, NULL, "text/plain", "out of memory\n");
        return;
    }
    char proto[128], sender_accept[29];
    int has_proto = header_to(req, "Sec-WebSocket-Protocol", proto, sizeof proto) == 0;
    ws_accept_key(p->key, strlen(p->key), sender_accept);
    int wrc = write_101(c, key, has_proto ? proto : NULL);
    if (wrc < 0) {
        /* The listener's end cannot take its 101, nor a reply; the sender
         * hears what do_connect says when the listener is unreachable. */
        log_kv(LOG_WARN, "stream.write_failed", "id", p->id, "side", "listener", "error", conn_error(c, wrc),
               NULL);
        free(s);
        conn_t *sender = pending_detach(p);
        conn_close(c, 0);
        api_reply_close(sender, 503, "The listener could not be reached; retry.", "text/plain",
                        "listener unreachable\n");
        return;
    }
    pending_unlink(p);
    conn_t *sender = p->sender;
    listener *l = p->l;
    s->r = r;
    s->l = l; /* inherits the load unit the pending rendezvous held */
    s->started = api_now_ms();
    snprintf(s->hc, sizeof s->hc, "%s", hc->name);
    snprintf(s->id, sizeof s->id, "%s", p->id);
    s->a.s = s->b.s = s;
    s->a.c = sender;
    s->b.c = c;
    ws_dec_init(&s->a.dec, WS_ROLE_SERVER, r->o.max_frame);
    ws_dec_init(&s->b.dec, WS_ROLE_SERVER, r->o.max_frame);
    list_insert_head(&r->splices, &s->link);
    r->nsplices++;
    r->conns_total++;

    wrc = write_101(sender, sender_accept, has_proto ? proto : NULL);
    conn_set_data(c, &s->b);
    conn_set_cbs(c, &splice_cbs);
    conn_set_data(sender, &s->a);
    conn_set_cbs(sender, &splice_cbs);
    if (r->o.stall_ms) {
        conn_set_stall(c, r->o.stall_ms);
        conn_set_stall(sender, r->o.stall_ms);
    }
    free(p);
    log_kv(LOG_INFO, "stream.open", "id", s->id, "entity", s->hc, "sender", conn_peer(sender), "listener",
           conn_peer(c), NULL);
    if (wrc < 0) {
        /* The sender cannot take its 101: the stream cannot start. The
         * listener's end, a WebSocket by now, is told and closed. */
        splice_write_failed(&s->b, wrc);
        return;
    }
    conn_resume(sender); /* frames the sender sent early flow now */
}

void relay_handle(relay_t *r, conn_t *c, const http_request *req, url_slice path, url_slice query)
{
    char entity[1024], host[256], sas_host[256], key[32], token[SAS_MAX_TOKEN + 1], action[16];
    const http_header *up = http_find(req->headers, req->nheaders, "Upgrade");
    const http_header *cn = http_find(req->headers, req->nheaders, "Connection");
    const http_header *ver = http_find(req->headers, req->nheaders, "Sec-WebSocket-Version");
    url_slice act;
    if (!http_eq(req->method, req->method_len, "GET") || !up ||
        !http_has_token(up->value, up->value_len, "websocket") || !cn ||
        !http_has_token(cn->value, cn->value_len, "upgrade") || !ver ||
        !http_eq(ver->value, ver->value_len, "13")) {
        reject(r, c, RJ_BAD_REQUEST, 400, "A WebSocket upgrade (version 13) is required.", "", "");
        return;
    }
    if (header_to(req, "Sec-WebSocket-Key", key, sizeof key) < 0 ||
        ws_accept_key(key, strlen(key), (char[29]){0}) < 0) {
        reject(r, c, RJ_BAD_REQUEST, 400, "Invalid Sec-WebSocket-Key.", "", "");
        return;
    }
    char accept[29];
    ws_accept_key(key, strlen(key), accept);
    long el = enc_pct_decode(path.p, path.n, entity, sizeof entity);
    if (el <= 0 || memchr(entity, '\0', (size_t)el) || strstr(entity, "..")) {
        reject(r, c, RJ_BAD_REQUEST, 400, "Invalid entity path.", "", "");
        return;
    }
    while (el > 0 && entity[el - 1] == '/')
        entity[--el] = '\0';
    if (header_to(req, "Host", host, sizeof host) < 0 ||
        url_host(host, strlen(host), sas_host, sizeof sas_host) < 0) {
        reject(r, c, RJ_BAD_REQUEST, 400, "A Host header is required.", "", entity);
        return;
    }
    if (!url_query_get(query, "sb-hc-action", &act) || slice_to(act, action, sizeof action) < 0) {
        reject(r, c, RJ_BAD_REQUEST, 400, "Missing or unknown sb-hc-action.", "", entity);
        return;
    }
    if (find_token(req, query, token, sizeof token) < 0) {
        reject(r, c, RJ_UNAUTHORIZED, 401, "Unauthorized: malformed token.", action, entity);
        return;
    }
    if (strcmp(action, "listen") == 0)
        do_listen(r, c, req, entity, host, sas_host, token, accept, query);
    else if (strcmp(action, "connect") == 0)
        do_connect(r, c, req, entity, sas_host, token);
    else if (strcmp(action, "accept") == 0)
        do_accept(r, c, req, entity, accept, query);
    else
        reject(r, c, RJ_BAD_REQUEST, 400, "Missing or unknown sb-hc-action.", action, entity);
}

/* ---- lifecycle, housekeeping, metrics ---------------------------------- */

relay_t *relay_new(uv_loop_t *loop, const relay_opts *o)
{
    relay_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->loop = loop;
    r->o = o ? *o : relay_default_opts;
    list_init(&r->pend);
    list_init(&r->splices);
    return r;
}

int relay_set_ns_rules(relay_t *r, const sas_rule *rules, size_t n)
{
    sas_rule *copy = copy_rules(rules, n);
    if (!copy)
        return -1;
    free_rules(r->ns_rules, r->n_ns);
    r->ns_rules = copy;
    r->n_ns = n;
    return 0;
}

int relay_add_hc(relay_t *r, const char *name, const sas_rule *rules, size_t n)
{
    sas_rule *copy = copy_rules(rules, n);
    if (!copy)
        return -1;
    for (rhc *h = r->hcs; h; h = h->next) {
        if (strcasecmp(h->name, name) == 0) {
            free_rules(h->rules, h->nrules);
            h->rules = copy;
            h->nrules = n;
            return 0;
        }
    }
    rhc *h = calloc(1, sizeof *h);
    if (!h || !(h->name = strdup(name))) {
        free(h);
        free_rules(copy, n);
        return -1;
    }
    h->rules = copy;
    h->nrules = n;
    list_init(&h->listeners);
    h->next = r->hcs;
    r->hcs = h;
    return 0;
}

int relay_remove_hc(relay_t *r, const char *name)
{
    for (rhc **pp = &r->hcs; *pp; pp = &(*pp)->next) {
        rhc *h = *pp;
        if (strcasecmp(h->name, name) != 0)
            continue;
        while (!list_empty(&h->listeners))
            listener_close(list_entry(h->listeners.next, listener, link), WS_CLOSE_GOING_AWAY,
                           "entity deleted");
        list_node *n, *t;
        list_foreach (n, t, &r->pend)
            if (list_entry(n, pending, link)->hc == h)
                list_entry(n, pending, link)->hc = NULL;
        *pp = h->next;
        free_rules(h->rules, h->nrules);
        free(h->name);
        free(h);
        return 0;
    }
    return -1;
}

int relay_listeners(relay_t *r, const char *name)
{
    for (rhc *h = r->hcs; h; h = h->next)
        if (strcasecmp(h->name, name) == 0)
            return h->nlisteners;
    return -1;
}

int relay_load_cfg(relay_t *r, const hubcfg *cfg)
{
    if (relay_set_ns_rules(r, cfg->ns_rules, cfg->n_ns) < 0)
        return -1;
    for (size_t i = 0; i < cfg->n_hcs; i++)
        if (relay_add_hc(r, cfg->hcs[i].name, cfg->hcs[i].rules, cfg->hcs[i].nrules) < 0)
            return -1;
    return 0;
}

void relay_tick(relay_t *r, uint64_t now)
{
    int64_t wall = (int64_t)time(NULL);
    for (rhc *h = r->hcs; h; h = h->next) {
        list_node *n, *t;
        list_foreach (n, t, &h->listeners) {
            listener *l = list_entry(n, listener, link);
            if (l->token_exp && wall >= l->token_exp) {
                listener_close(l, WS_CLOSE_POLICY, "token expired");
                continue;
            }
            if (l->awaiting_pong && now - l->ping_sent >= r->o.ping_interval_ms) {
                log_kv(LOG_WARN, "listener.dead", "id", l->id, "entity", h->name, NULL);
                listener_close(l, 0, "no pong");
                continue;
            }
            if (!l->awaiting_pong && now - l->last_seen >= r->o.ping_interval_ms) {
                if (send_frame(l->c, WS_OP_PING, "hc", 2) < 0) {
                    listener_close(l, 0, "cannot write to the control channel");
                    continue;
                }
                l->awaiting_pong = 1;
                l->ping_sent = now;
            }
        }
    }
    list_node *n, *t;
    list_foreach (n, t, &r->pend) {
        pending *p = list_entry(n, pending, link);
        if (now < p->deadline)
            continue;
        /* The listener never came: the address dies and the sender hears. */
        r->rejects[RJ_RENDEZVOUS_TIMEOUT]++;
        log_kv(LOG_INFO, "sender.timeout", "id", p->id, NULL);
        conn_t *sender = pending_detach(p);
        api_reply_close(sender, 504, "The listener did not accept the connection in time.", "text/plain",
                        "The listener did not accept the connection in time.\n");
    }
}

size_t relay_metrics(relay_t *r, char *out, size_t cap)
{
    size_t o = 0;
#define EMIT(...)                                                                                            \
    do {                                                                                                     \
        int n_ = snprintf(out + o, cap - o, __VA_ARGS__);                                                    \
        if (n_ < 0 || (size_t)n_ >= cap - o)                                                                 \
            return o;                                                                                        \
        o += (size_t)n_;                                                                                     \
    } while (0)
    int nl = 0, nh = 0;
    for (rhc *h = r->hcs; h; h = h->next) {
        nl += h->nlisteners;
        nh++;
    }
    EMIT("# HELP arc_relay_hybrid_connections Hybrid connections configured.\n"
         "# TYPE arc_relay_hybrid_connections gauge\narc_relay_hybrid_connections %d\n",
         nh);
    EMIT("# HELP arc_relay_listeners Control channels open.\n# TYPE arc_relay_listeners gauge\n"
         "arc_relay_listeners %d\n",
         nl);
    EMIT("# HELP arc_relay_pending_rendezvous Senders waiting for a listener to accept.\n"
         "# TYPE arc_relay_pending_rendezvous gauge\narc_relay_pending_rendezvous %d\n",
         r->npend);
    EMIT("# HELP arc_relay_connections_active Spliced sender/listener pairs.\n"
         "# TYPE arc_relay_connections_active gauge\narc_relay_connections_active %d\n",
         r->nsplices);
    EMIT("# HELP arc_relay_connections_total Rendezvous completed.\n"
         "# TYPE arc_relay_connections_total counter\narc_relay_connections_total %llu\n",
         (unsigned long long)r->conns_total);
    size_t queued = 0;
    list_node *n, *t;
    list_foreach (n, t, &r->splices) {
        pair *s = list_entry(n, pair, link);
        if (s->a.c)
            queued += conn_queued(s->a.c);
        if (s->b.c)
            queued += conn_queued(s->b.c);
    }
    EMIT("# HELP arc_relay_queued_bytes Bytes waiting to be written to spliced peers.\n"
         "# TYPE arc_relay_queued_bytes gauge\narc_relay_queued_bytes %zu\n",
         queued);
    EMIT("# HELP arc_relay_bytes_total Payload bytes relayed.\n# TYPE arc_relay_bytes_total counter\n"
         "arc_relay_bytes_total{direction=\"sender_to_listener\"} %llu\n"
         "arc_relay_bytes_total{direction=\"listener_to_sender\"} %llu\n",
         (unsigned long long)r->bytes_s2l, (unsigned long long)r->bytes_l2s);
    EMIT("# HELP arc_relay_rejects_total Refused requests by reason.\n# TYPE arc_relay_rejects_total "
         "counter\n");
    for (int i = 0; i < RJ_COUNT; i++)
        EMIT("arc_relay_rejects_total{reason=\"%s\"} %llu\n", reject_names[i],
             (unsigned long long)r->rejects[i]);
#undef EMIT
    return o;
}

void relay_shutdown(relay_t *r)
{
    for (rhc *h = r->hcs; h; h = h->next)
        while (!list_empty(&h->listeners))
            listener_close(list_entry(h->listeners.next, listener, link), WS_CLOSE_GOING_AWAY,
                           "relay shutting down");
    list_node *n, *t;
    list_foreach (n, t, &r->splices) {
        pair *s = list_entry(n, pair, link);
        if (s->a.c) {
            send_close(s->a.c, WS_CLOSE_GOING_AWAY, "relay shutting down");
            conn_close(s->a.c, 1);
        }
        if (s->b.c) {
            send_close(s->b.c, WS_CLOSE_GOING_AWAY, "relay shutting down");
            conn_close(s->b.c, 1);
        }
    }
    list_foreach (n, t, &r->pend)
        conn_close(list_entry(n, pending, link)->sender, 0);
}

void relay_free(relay_t *r)
{
    while (r->hcs) {
        rhc *h = r->hcs;
        r->hcs = h->next;
        free_rules(h->rules, h->nrules);
        free(h->name);
        free(h);
    }
    free_rules(r->ns_rules, r->n_ns);
    free(r);
}

/* ---- as a part behind the front door (api.h) -------------------------- */

void relay_take(void *relay, conn_t *c, const http_request *req, url_slice rest, url_slice query)
{
    relay_handle(relay, c, req, rest, query);
}

static void hook_tick(void *ud, uint64_t now_ms)
{
    relay_tick(ud, now_ms);
}

static size_t hook_metrics(void *ud, char *out, size_t cap)
{
    return relay_metrics(ud, out, cap);
}

static void hook_shutdown(void *ud)
{
    relay_shutdown(ud);
}

const api_hooks relay_hooks = {.tick = hook_tick, .metrics = hook_metrics, .shutdown = hook_shutdown};
