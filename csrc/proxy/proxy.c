/* proxy: kubectl <-> Hybrid Connections sender. See proxy.h. */
#include "proxy.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "buf.h"
#include "conn.h"
#include "framer.h"
#include "http.h"
#include "httpc.h"
#include "log.h"
#include "pxy.h"
#include "tls.h"
#include "ws.h"
#include "wsc.h"

/* Bytes of an answer from the relay that end inside a response head wait
 * here for the rest (the framer needs a head in one piece). */
#define RESP_PARTIAL_MAX (64 * 1024)

typedef struct proxy proxy_t;
typedef struct sess sess;

struct sess {
    proxy_t *p;
    conn_t *c; /* kubectl side */
    wsc_t *w;  /* relay side */
    int w_open;
    int held;      /* kubectl's side is paused until an answer arrives */
    framer fr;     /* what of kubectl's bytes may go out, and in what turn answers come back */
    buf_t partial; /* see RESP_PARTIAL_MAX */
    sess *prev, *next;
};

/* A sender opened ahead of demand. */
typedef struct pooled {
    proxy_t *p;
    wsc_t *w;
    int open;
    struct pooled *next;
} pooled;

struct proxy {
    uv_loop_t loop;
    uv_tcp_t srv4, srv6;
    int have6;
    uv_timer_t tick;
    uv_signal_t sigint, sigterm;
    uv_async_t stop_async;
    tls_ctx *server_tls, *relay_tls;
    httpc_t *http; /* dials the relay through the environment's proxy settings */
    proxy_opts o;
    proxy_creds creds;
    proxy_stats *stats;
    sess *sessions;
    pooled *pool;
    int stopping;
    /* refresh */
    uv_work_t work;
    int refreshing;
    proxy_creds next_creds;
    char refresh_err[PROXY_ERRLEN];
    int refresh_rc;
    int64_t next_refresh_at;
    int backoff;
};

static proxy_t *g_running;
static uv_mutex_t g_lock;
static uv_once_t g_once = UV_ONCE_INIT;
static void init_lock(void)
{
    uv_mutex_init(&g_lock);
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static void event(proxy_t *p, const char *name, const char *detail)
{
    log_kv(LOG_INFO, name, "detail", detail, NULL);
    if (p->o.event)
        p->o.event(p->o.ud, name, detail);
}

/* ---- relay URL ---------------------------------------------------------- */

static void relay_url(const proxy_creds *c, char *url, size_t cap, char *sni, size_t sni_cap)
{
    char host[300];
    if (strchr(c->relay, '.') || strchr(c->relay, ':'))
        snprintf(host, sizeof host, "%s", c->relay);
    else
        snprintf(host, sizeof host, "%s.servicebus.windows.net", c->relay);
    snprintf(url, cap, "wss://%s/$hc/%s?sb-hc-action=connect", host, c->hc);
    /* SNI and certificate name: the host without a port. */
    snprintf(sni, sni_cap, "%s", host);
    char *colon = strrchr(sni, ':');
    if (colon && !strchr(sni, ']'))
        *colon = '\0';
    if (sni[0] == '[') {
        memmove(sni, sni + 1, strlen(sni));
        char *rb = strchr(sni, ']');
        if (rb)
            *rb = '\0';
    }
}

static wsc_t *dial(proxy_t *p, const wsc_cbs *cbs, void *data)
{
    char url[700], sni[300], auth[SAS_MAX_TOKEN + 40];
    relay_url(&p->creds, url, sizeof url, sni, sizeof sni);
    snprintf(auth, sizeof auth, "ServiceBusAuthorization: %s", p->creds.sas);
    const char *hdrs[] = {auth, NULL};
    wsc_opts wo = {.stream = 1, .sni = sni, .via = p->http, .conn = conn_default_opts};
    wo.conn.handshake_ms = 15000;
    return wsc_connect(&p->loop, url, p->relay_tls, hdrs, cbs, data, &wo);
}

/* ---- sessions ----------------------------------------------------------- */

static void sess_free_if_done(sess *s)
{
    if (s->c || s->w)
        return;
    if (s->prev)
        s->prev->next = s->next;
    else
        s->p->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    framer_free(&s->fr);
    buf_free(&s->partial);
    free(s);
}

/* Answers kubectl with a Kubernetes Status (kubectl prints its message)
 * when the relay would not carry the connection. */
static void answer_status(conn_t *c, int code, const char *reason, const char *msg)
{
    char body[1024], head[256];
    int bn = snprintf(body, sizeof body,
                      "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
                      "\"message\":\"%s\",\"reason\":\"%s\",\"code\":%d}",
                      msg, reason, code);
    int hn = snprintf(
        head, sizeof head,
        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
        code, http_reason(code), bn);
    (void)conn_write2(c, head, (size_t)hn, body, (size_t)bn); /* closed next either way */
    conn_close(c, 1);
}

static size_t k_on_data(conn_t *c, uint8_t *data, size_t len);

static const wsc_cbs sess_wcbs;

static void w_on_open(wsc_t *w, int status, int http_status, const char *reason)
{
    sess *s = wsc_data(w);
    if (!s)
        return;
    if (status == 0) {
        s->w_open = 1;
        if (s->c)
            conn_resume(s->c); /* deliver what kubectl sent meanwhile */
        return;
    }
    s->p->stats->relay_refusals++;
    char msg[400];
    const char *why = http_status == 404                         ? "ServiceUnavailable"
                      : http_status == 401 || http_status == 403 ? "Unauthorized"
                                                                 : "ServiceUnavailable";
    if (http_status == 404)
        snprintf(msg, sizeof msg,
                 "AZK8S0831: no cluster agent is listening on the relay (the cluster is offline "
                 "or cluster-connect is disabled)");
    else if (http_status == 401 || http_status == 403)
        snprintf(msg, sizeof msg, "AZK8S0832: the relay refused the credential (%d); it will be refreshed",
                 http_status);
    else
        snprintf(msg, sizeof msg, "AZK8S0830: the relay is unreachable or failed (%s)",
                 http_status ? http_reason(http_status) : wsc_error(w));
    (void)reason;
    event(s->p, "proxy.relay_refused", msg);
    if (s->c) {
        conn_t *c = s->c;
        conn_set_data(c, NULL);
        s->c = NULL;
        answer_status(c, http_status == 401 || http_status == 403 ? 401 : 503, why, msg);
    }
}

/* Ends a session at once: both sides dropped. */
static void sess_abort(sess *s, const char *why)
{
    log_kv(LOG_WARN, "proxy.stream_failed", "reason", why, NULL);
    if (s->c)
        conn_close(s->c, 0);
    if (s->w)
        wsc_abort(s->w);
}

static int to_kubectl(void *ud, const void *p, size_t n)
{
    sess *s = ud;
    return conn_write(s->c, p, n);
}

/* Carries answers from the relay (and the proxy's own refusals, in their
 * turn) to kubectl. Returns how much of d was consumed; the rest is an
 * incomplete response head. */
static size_t sess_answer(sess *s, const uint8_t *d, size_t n)
{
    if (!s->c)
        return n;
    size_t used;
    int progress;
    int rc = framer_answer(&s->fr, d, n, to_kubectl, s, &used, &progress);
    if (rc == FRAMER_DONE) {
        conn_close(s->c, 1);
        return n;
    }
    if (rc != FRAMER_MORE) {
        sess_abort(s,
                   rc == FRAMER_BAD ? "the agent's response could not be framed" : "write to kubectl failed");
        return n;
    }
    /* Progress on the answers may release what kubectl sent after an
     * upgrade request; without progress a resume would only hold again. */
    if (s->held && progress) {
        s->held = 0;
        conn_resume(s->c);
    }
    return used;
}

static void w_on_data(wsc_t *w, const uint8_t *d, size_t n)
{
    sess *s = wsc_data(w);
    if (!s || !s->c)
        return;
    if (buf_len(&s->partial)) {
        if (buf_append(&s->partial, d, n) < 0) {
            sess_abort(s, "response head too large");
            return;
        }
        buf_consume(&s->partial, sess_answer(s, buf_data(&s->partial), buf_len(&s->partial)));
    } else {
        size_t used = sess_answer(s, d, n);
        if (used < n && buf_append(&s->partial, d + used, n - used) < 0) {
            sess_abort(s, "response head too large");
            return;
        }
    }
    if (s->c && !conn_writable(s->c))
        wsc_pause(w);
}

static void w_on_drain(wsc_t *w)
{
    sess *s = wsc_data(w);
    if (s && s->c)
        conn_resume(s->c);
}

static void w_on_close(wsc_t *w, int code, const char *reason)
{
    (void)code, (void)reason;
    sess *s = wsc_data(w);
    if (!s)
        return;
    s->w = NULL;
    if (s->c)
        conn_close(s->c, 1);
    sess_free_if_done(s);
}

static const wsc_cbs sess_wcbs = {
    .on_open = w_on_open, .on_data = w_on_data, .on_drain = w_on_drain, .on_close = w_on_close};

static void k_on_drain(conn_t *c)
{
    sess *s = conn_data(c);
    if (s && s->w)
        wsc_resume(s->w);
}

static void k_on_close(conn_t *c, int err)
{
    (void)err;
    sess *s = conn_data(c);
    if (!s)
        return;
    s->c = NULL;
    if (s->w)
        wsc_close(s->w, 1000, "client closed");
    sess_free_if_done(s);
}

static const conn_cbs k_cbs = {.on_data = k_on_data, .on_drain = k_on_drain, .on_close = k_on_close};

/* Rewrites one request head: every Authorization header goes, the real
 * credential comes in. Returns the new head (malloc'd) and its length. */
static char *rewrite_head(proxy_t *p, const http_request *req, size_t *out_len)
{
    size_t cap = 64 + req->target_len + req->method_len + strlen(p->creds.token);
    for (size_t i = 0; i < req->nheaders; i++)
        cap += req->headers[i].name_len + req->headers[i].value_len + 4;
    char *h = malloc(cap);
    if (!h)
        return NULL;
    size_t o = (size_t)snprintf(h, cap, "%.*s %.*s HTTP/1.%d\r\n", (int)req->method_len, req->method,
                                (int)req->target_len, req->target, req->minor_version);
    for (size_t i = 0; i < req->nheaders; i++) {
        const http_header *x = &req->headers[i];
        if (http_eq(x->name, x->name_len, "Authorization") ||
            http_eq(x->name, x->name_len, "Proxy-Authorization"))
            continue;
        memcpy(h + o, x->name, x->name_len);
        o += x->name_len;
        h[o++] = ':';
        h[o++] = ' ';
        memcpy(h + o, x->value, x->value_len);
        o += x->value_len;
        h[o++] = '\r';
        h[o++] = '\n';
    }
    if (p->creds.token[0])
        o += (size_t)snprintf(h + o, cap - o, "Authorization: Bearer %s\r\n", p->creds.token);
    h[o++] = '\r';
    h[o++] = '\n';
    *out_len = o;
    return h;
}

/* A Kubernetes Status answer for bytes the proxy cannot frame; it goes
 * out in its turn and ends the connection. */
static int refuse_bad(sess *s, int code, const char *why)
{
    char msg[200], body[512], resp[800];
    snprintf(msg, sizeof msg, "connectedk8s proxy: %s", why);
    int bn = snprintf(body, sizeof body,
                      "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
                      "\"message\":\"%s\",\"reason\":\"BadRequest\",\"code\":%d}",
                      msg, code);
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: "
                     "close\r\n\r\n%s",
                     code, http_reason(code), bn, body);
    return framer_refuse(&s->fr, resp, (size_t)n, 1);
}

static size_t k_on_data(conn_t *c, uint8_t *data, size_t len)
{
    sess *s = conn_data(c);
    if (!s || !s->w || !s->w_open) {
        /* Keep it buffered until the sender is open; pausing makes
         * conn_resume() in w_on_open deliver it again. */
        conn_pause(c);
        return 0;
    }
    size_t used = 0;
    while (s->w && wsc_writable(s->w)) {
        const uint8_t *d = data + used;
        http_request req;
        size_t n;
        int status;
        const char *why;
        framer_ev ev = framer_request(&s->fr, d, len - used, &req, &n, &status, &why);
        if (ev == FRAMER_MORE)
            break;
        if (ev == FRAMER_HOLD) {
            /* An upgrade awaits its answer (or too many answers are due):
             * sess_answer resumes us. */
            s->held = 1;
            conn_pause(c);
            break;
        }
        if (ev == FRAMER_HEAD) {
            size_t hl;
            char *head = rewrite_head(s->p, &req, &hl);
            const char *fail = !head                                        ? "out of memory"
                               : wsc_send(s->w, WS_OP_BINARY, head, hl) < 0 ? "write to the relay failed"
                                                                            : NULL;
            free(head);
            if (fail) {
                sess_abort(s, fail);
                return len;
            }
            framer_forward(&s->fr); /* cannot fail: the framer just showed this head */
            s->p->stats->requests++;
            if (http_find(req.headers, req.nheaders, "Upgrade"))
                s->p->stats->upgrades++;
        } else if (ev == FRAMER_BODY || ev == FRAMER_PIPE) {
            if (wsc_send(s->w, WS_OP_BINARY, d, n) < 0) {
                sess_abort(s, "write to the relay failed");
                return len;
            }
        } else if (ev == FRAMER_BAD && status == 0) {
            sess_abort(s, why); /* cut inside a forwarded body: no answer can come in turn */
            return len;
        } else if (ev == FRAMER_BAD) {
            if (refuse_bad(s, status, why) < 0) {
                sess_abort(s, "out of memory");
                return len;
            }
            n = len - used;
        } else if (ev == FRAMER_DONE) {
            used = len; /* nothing after a stream-ending refusal is read */
            break;
        }
        used += n;
    }
    /* A refusal answers in its turn, which may be now. */
    sess_answer(s, NULL, 0);
    if (s->w && !wsc_writable(s->w))
        conn_pause(c); /* resumed from w_on_drain */
    return used;
}

/* ---- pool --------------------------------------------------------------- */

static void pool_remove(proxy_t *p, pooled *x)
{
    for (pooled **pp = &p->pool; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            return;
        }
}

static void pool_on_open(wsc_t *w, int status, int http_status, const char *reason)
{
    pooled *x = wsc_data(w);
    (void)reason;
    if (!x)
        return;
    if (status == 0) {
        x->open = 1;
    } else if (http_status) {
        x->p->stats->relay_refusals++;
    }
}

static void pool_on_data(wsc_t *w, const uint8_t *d, size_t n)
{
    (void)d, (void)n;
    /* Nothing should arrive before a request; a pooled stream that talks
     * is not trustworthy. */
    wsc_abort(w);
}

static void pool_on_close(wsc_t *w, int code, const char *reason)
{
    (void)code, (void)reason;
    pooled *x = wsc_data(w);
    if (!x)
        return;
    pool_remove(x->p, x);
    free(x);
}

static const wsc_cbs pool_cbs = {.on_open = pool_on_open, .on_data = pool_on_data, .on_close = pool_on_close};

static void pool_fill(proxy_t *p)
{
    if (p->stopping || p->creds.sas_expiry <= now_s())
        return;
    int n = 0;
    for (pooled *x = p->pool; x; x = x->next)
        n++;
    for (; n < p->o.pool; n++) {
        pooled *x = calloc(1, sizeof *x);
        if (!x)
            return;
        x->p = p;
        x->w = dial(p, &pool_cbs, x);
        if (!x->w) {
            free(x);
            return;
        }
        x->next = p->pool;
        p->pool = x;
    }
}

static void pool_drop_all(proxy_t *p)
{
    while (p->pool) {
        pooled *x = p->pool;
        p->pool = x->next;
        wsc_set_data(x->w, NULL);
        wsc_close(x->w, 1000, "proxy closing");
        free(x);
    }
}

/* Takes an open pooled sender for a session, or NULL. */
static wsc_t *pool_take(proxy_t *p, sess *s)
{
    for (pooled **pp = &p->pool; *pp; pp = &(*pp)->next) {
        pooled *x = *pp;
        if (!x->open)
            continue;
        *pp = x->next;
        wsc_t *w = x->w;
        free(x);
        wsc_set_data(w, s);
        /* Its callbacks must become the session's. */
        return w;
    }
    return NULL;
}

/* ---- listener ----------------------------------------------------------- */

static void on_connection(uv_stream_t *srv, int status)
{
    proxy_t *p = srv->data;
    if (status < 0 || p->stopping)
        return;
    sess *s = calloc(1, sizeof *s);
    if (!s)
        return;
    s->p = p;
    framer_init(&s->fr);
    buf_init(&s->partial, RESP_PARTIAL_MAX);
    conn_opts co = conn_default_opts;
    co.stall_ms = 0;
    s->c = conn_accept(srv, p->server_tls, &k_cbs, s, &co);
    if (!s->c) {
        free(s);
        return;
    }
    p->stats->connections++;
    s->next = p->sessions;
    if (p->sessions)
        p->sessions->prev = s;
    p->sessions = s;
    wsc_t *w = p->o.pool > 0 ? pool_take(p, s) : NULL;
    if (w) {
        wsc_set_cbs(w, &sess_wcbs);
        s->w = w;
        s->w_open = 1;
        p->stats->pool_hits++;
        pool_fill(p);
        return;
    }
    p->stats->pool_misses++;
    s->w = dial(p, &sess_wcbs, s);
    if (!s->w) {
        conn_close(s->c, 0);
    }
    pool_fill(p);
}

/* ---- refresh ------------------------------------------------------------ */

static void schedule_refresh(proxy_t *p)
{
    int64_t now = now_s(), soonest = p->creds.sas_expiry;
    if (p->creds.token_expiry && p->creds.token_expiry < soonest)
        soonest = p->creds.token_expiry;
    int64_t life = soonest - now, margin = p->o.refresh_margin;
    if (margin > life / 2)
        margin = life / 2; /* short-lived credentials: refresh at half-life */
    p->next_refresh_at = soonest - margin;
}

static void refresh_work(uv_work_t *w)
{
    proxy_t *p = w->data;
    memset(&p->next_creds, 0, sizeof p->next_creds);
    p->refresh_err[0] = '\0';
    p->refresh_rc = p->o.refresh(p->o.ud, &p->next_creds, p->refresh_err);
}

static void refresh_done(uv_work_t *w, int status)
{
    proxy_t *p = w->data;
    p->refreshing = 0;
    if (status == 0 && p->refresh_rc == 0 && p->next_creds.sas[0] && p->next_creds.sas_expiry > now_s()) {
        p->creds = p->next_creds;
        p->stats->refreshes++;
        p->backoff = 0;
        schedule_refresh(p);
        char d[160];
        snprintf(d, sizeof d, "new relay credential valid for %llds",
                 (long long)(p->creds.sas_expiry - now_s()));
        event(p, "proxy.refreshed", d);
        /* Pooled senders were opened with the old token; they stay valid,
         * but new ones use the new token. */
        return;
    }
    p->stats->refresh_failures++;
    p->backoff = p->backoff ? (p->backoff * 2 > 60 ? 60 : p->backoff * 2) : 5;
    p->next_refresh_at = now_s() + p->backoff;
    char d[PROXY_ERRLEN + 80];
    snprintf(d, sizeof d,
             "AZK8S0833: credential refresh failed (%s); retrying in %ds, current credential valid for %llds",
             p->refresh_err[0] ? p->refresh_err : "cancelled", p->backoff,
             (long long)(p->creds.sas_expiry - now_s()));
    event(p, "proxy.refresh_failed", d);
}

static void on_tick(uv_timer_t *t)
{
    proxy_t *p = t->data;
    if (p->stopping)
        return;
    if (p->o.refresh && !p->refreshing && now_s() >= p->next_refresh_at) {
        p->refreshing = 1;
        p->work.data = p;
        if (uv_queue_work(&p->loop, &p->work, refresh_work, refresh_done) != 0)
            p->refreshing = 0;
    }
    pool_fill(p);
}

/* ---- stop --------------------------------------------------------------- */

static void begin_stop(proxy_t *p, int signum)
{
    if (p->stopping)
        return;
    p->stopping = 1;
    p->stats->stop_signal = signum;
    uv_close((uv_handle_t *)&p->srv4, NULL);
    if (p->have6)
        uv_close((uv_handle_t *)&p->srv6, NULL);
    uv_close((uv_handle_t *)&p->tick, NULL);
    uv_close((uv_handle_t *)&p->sigint, NULL);
    uv_close((uv_handle_t *)&p->sigterm, NULL);
    uv_close((uv_handle_t *)&p->stop_async, NULL);
    pool_drop_all(p);
    /* Close callbacks run later in the loop, but take `next` first anyway:
     * a session may be freed by them. */
    for (sess *s = p->sessions, *next; s; s = next) {
        next = s->next;
        conn_t *c = s->c;
        wsc_t *w = s->w;
        if (c)
            conn_close(c, 0);
        if (w)
            wsc_abort(w);
    }
    /* After the sessions: a sender still tunnelling was cancelled above. */
    httpc_free(p->http);
    p->http = NULL;
}

static void on_signal(uv_signal_t *h, int signum)
{
    begin_stop(h->data, signum);
}

static void on_stop_async(uv_async_t *a)
{
    begin_stop(a->data, 0);
}

void proxy_stop(void)
{
    uv_once(&g_once, init_lock);
    uv_mutex_lock(&g_lock);
    if (g_running)
        uv_async_send(&g_running->stop_async);
    uv_mutex_unlock(&g_lock);
}

/* ---- run ---------------------------------------------------------------- */

int proxy_run(const proxy_opts *o, const proxy_creds *initial, proxy_stats *stats, char err[PROXY_ERRLEN])
{
    uv_once(&g_once, init_lock);
    memset(stats, 0, sizeof *stats);
    if (!o->server_cert_pem || !o->server_key_pem || !o->client_ca_pem || !initial->hc[0] ||
        !initial->relay[0]) {
        snprintf(err, PROXY_ERRLEN,
                 "the proxy needs session certificates, a relay and a hybrid connection name");
        return PROXY_ERR_ARG;
    }
    proxy_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, PROXY_ERRLEN, "out of memory");
        return PROXY_ERR_ARG;
    }
    p->o = *o;
    if (p->o.refresh_margin <= 0)
        p->o.refresh_margin = 300;
    if (p->o.pool < 0)
        p->o.pool = 0;
    p->creds = *initial;
    p->stats = stats;
    char terr[TLS_ERRLEN];
    int rc = PROXY_OK;
    p->server_tls = tls_server_ctx_mem(o->server_cert_pem, o->server_key_pem, o->client_ca_pem, terr);
    p->relay_tls = tls_client_ctx(o->relay_ca_file, NULL, NULL, terr);
    if (!p->server_tls || !p->relay_tls) {
        snprintf(err, PROXY_ERRLEN, "TLS set-up failed: %s", terr);
        tls_ctx_free(p->server_tls);
        tls_ctx_free(p->relay_tls);
        free(p);
        return PROXY_ERR_TLS;
    }
    /* kubectl speaks HTTP/2 when offered; we carry HTTP/1.1 end to end. */
    tls_ctx_set_alpn(p->server_tls, "http/1.1");
    uv_loop_init(&p->loop);
    /* HTTPS_PROXY / NO_PROXY as az itself (requests) reads them: the
     * senders tunnel through that proxy with CONNECT, TLS to the relay
     * stays end to end. */
    pxy_cfg px;
    pxy_from_env(&px);
    p->http = httpc_new(&p->loop, &px);
    if (!p->http) {
        snprintf(err, PROXY_ERRLEN, "cannot initialise libcurl");
        tls_ctx_free(p->server_tls);
        tls_ctx_free(p->relay_tls);
        uv_loop_close(&p->loop);
        free(p);
        return PROXY_ERR_ARG;
    }
    if (px.https[0]) {
        char shown[PXY_URL_MAX];
        pxy_display(px.https, shown, sizeof shown);
        log_kv(LOG_INFO, "proxy.outbound_proxy", "proxy", shown, "skip", px.skip, NULL);
    }
    char lerr[128];
    const char *host = o->host ? o->host : "127.0.0.1";
    int lrc = conn_listen(&p->loop, &p->srv4, host, o->port, on_connection, lerr);
    if (lrc != 0) {
        if (lrc == UV_EADDRINUSE)
            snprintf(err, PROXY_ERRLEN, "port %d is already in use on %s", o->port, host);
        else
            snprintf(err, PROXY_ERRLEN, "%s", lerr);
        rc = lrc == UV_EADDRINUSE ? PROXY_ERR_PORT_IN_USE : PROXY_ERR_LISTEN;
        uv_close((uv_handle_t *)&p->srv4, NULL);
        goto out;
    }
    p->srv4.data = p;
    int port = conn_bound_port(&p->srv4);
    if (!o->host) {
        /* ::1 too, so "localhost" works whichever address it resolves to;
         * a machine without IPv6 loopback just goes without. */
        if (conn_listen(&p->loop, &p->srv6, "::1", port, on_connection, lerr) == 0) {
            p->have6 = 1;
            p->srv6.data = p;
        } else {
            uv_close((uv_handle_t *)&p->srv6, NULL);
        }
    }
    uv_timer_init(&p->loop, &p->tick);
    p->tick.data = p;
    uv_timer_start(&p->tick, on_tick, 1000, 1000);
    uv_signal_init(&p->loop, &p->sigint);
    uv_signal_init(&p->loop, &p->sigterm);
    p->sigint.data = p->sigterm.data = p;
    uv_signal_start(&p->sigint, on_signal, SIGINT);
    uv_signal_start(&p->sigterm, on_signal, SIGTERM);
    uv_async_init(&p->loop, &p->stop_async, on_stop_async);
    p->stop_async.data = p;
    uv_mutex_lock(&g_lock);
    g_running = p;
    uv_mutex_unlock(&g_lock);
    schedule_refresh(p);
    pool_fill(p);
    if (o->on_ready)
        o->on_ready(o->ud, port);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    uv_mutex_lock(&g_lock);
    g_running = NULL;
    uv_mutex_unlock(&g_lock);
out:
    if (rc != PROXY_OK) {
        httpc_free(p->http);
        uv_run(&p->loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&p->loop);
    tls_ctx_free(p->server_tls);
    tls_ctx_free(p->relay_tls);
    free(p);
    return rc;
}
