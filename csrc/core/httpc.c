/* httpc: libcurl's multi-socket API on a libuv loop. See httpc.h.
 *
 * The wiring is the one curl documents for event loops: curl says through
 * the socket callback which sockets to watch for what (one uv_poll_t per
 * socket, hung on the socket with curl_multi_assign) and through the timer
 * callback when it wants to be woken (one uv_timer_t); both events go back
 * into curl_multi_socket_action(), after which finished transfers are
 * collected from curl_multi_info_read(). User callbacks run only from
 * there, never from inside a curl callback, so they may start or cancel
 * requests freely. */
#include "httpc.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "url.h"

#define DEFAULT_MAX (1u << 20)
#define DEFAULT_TIMEOUT_MS 15000u

typedef struct sockctx {
    uv_poll_t poll;
    curl_socket_t fd;
    httpc_t *h;
    struct sockctx *prev, *next;
} sockctx;

struct httpc_req {
    httpc_t *h;
    CURL *e;
    httpc_cb cb;
    httpc_tunnel_cb tcb;
    void *ud;
    struct curl_slist *hdrs;
    char *out;
    size_t len, cap, max;
    int too_big;
    unsigned timeout_ms;
    char proxy[PXY_URL_MAX]; /* the proxy this call goes through ("" : direct); holds credentials */
    char errbuf[CURL_ERROR_SIZE];
    httpc_req *prev, *next;
};

struct httpc {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    pxy_cfg px;
    httpc_req *reqs;
    sockctx *socks;
    int handles; /* open libuv handles: the timer and every poll */
    int freeing;
    httpc_stats stats;
};

static uv_once_t global_once = UV_ONCE_INIT;
static int global_rc;
static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static void maybe_free_h(httpc_t *h)
{
    if (h->freeing && h->handles == 0)
        free(h);
}

static void on_sock_closed(uv_handle_t *p)
{
    sockctx *sc = p->data;
    httpc_t *h = sc->h;
    h->handles--;
    free(sc);
    maybe_free_h(h);
}

static void sock_drop(httpc_t *h, sockctx *sc)
{
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        h->socks = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    uv_poll_stop(&sc->poll);
    uv_close((uv_handle_t *)&sc->poll, on_sock_closed);
}

static void req_unlink(httpc_req *r)
{
    httpc_t *h = r->h;
    if (r->prev)
        r->prev->next = r->next;
    else if (h->reqs == r)
        h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* Detaches and frees a request; its callback is not called. */
static void req_free(httpc_req *r)
{
    req_unlink(r);
    if (r->e) {
        curl_multi_remove_handle(r->h->multi, r->e);
        curl_easy_cleanup(r->e);
    }
    curl_slist_free_all(r->hdrs);
    free(r->out);
    free(r);
}

/* A sentence for a failed transfer, naming the proxy without its
 * credentials. */
static void describe(httpc_req *r, CURLcode rc, char *out, size_t cap)
{
    char shown[PXY_URL_MAX];
    const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
    long cc = 0;
    curl_easy_getinfo(r->e, CURLINFO_HTTP_CONNECTCODE, &cc);
    if (!r->proxy[0]) {
        if (rc == CURLE_OPERATION_TIMEDOUT)
            snprintf(out, cap, "no answer within %u ms (%s)", r->timeout_ms, detail);
        else
            snprintf(out, cap, "%s", detail);
        return;
    }
    pxy_display(r->proxy, shown, sizeof shown);
    if (cc >= 300)
        snprintf(out, cap, "the proxy %s refused the tunnel with %ld %s%s", shown, cc, http_reason((int)cc),
                 cc == 407 || cc == 401 ? " (check the proxy user and password)" : "");
    else if (rc == CURLE_COULDNT_RESOLVE_PROXY)
        snprintf(out, cap, "cannot resolve the proxy %s (%s)", shown, detail);
    else if (rc == CURLE_COULDNT_CONNECT)
        snprintf(out, cap, "cannot connect to the proxy %s (%s)", shown, detail);
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        snprintf(out, cap, "no answer within %u ms through the proxy %s (%s)", r->timeout_ms, shown, detail);
    else
        snprintf(out, cap, "through the proxy %s: %s", shown, detail);
    /* curl's own sentence may quote what it was given. */
    pxy_scrub(r->proxy, out);
}

static void finish(httpc_req *r, CURLcode rc)
{
    httpc_t *h = r->h;
    char err[HTTPC_ERRLEN] = "";
    long nc = 0;
    curl_easy_getinfo(r->e, CURLINFO_NUM_CONNECTS, &nc);
    h->stats.connects += (unsigned long long)nc;
    if (r->tcb) {
        int fd = -1;
        if (rc == CURLE_OK) {
            curl_socket_t s = CURL_SOCKET_BAD;
            if (curl_easy_getinfo(r->e, CURLINFO_ACTIVESOCKET, &s) == CURLE_OK && s != CURL_SOCKET_BAD)
                fd = fcntl(s, F_DUPFD_CLOEXEC, 0); /* ours; curl closes its own copy */
            if (fd < 0)
                snprintf(err, sizeof err, "the tunnel was made but its socket could not be taken over");
        } else {
            describe(r, rc, err, sizeof err);
        }
        if (fd < 0)
            h->stats.failures++;
        httpc_tunnel_cb cb = r->tcb;
        void *ud = r->ud;
        req_free(r); /* before the callback: it may free h */
        cb(ud, fd, err);
        return;
    }
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(r->e, CURLINFO_RESPONSE_CODE, &status);
    else if (r->too_big || rc == CURLE_FILESIZE_EXCEEDED)
        snprintf(err, sizeof err, "the answer is larger than %zu bytes", r->max);
    else
        describe(r, rc, err, sizeof err);
    if (rc != CURLE_OK)
        h->stats.failures++;
    httpc_cb cb = r->cb;
    void *ud = r->ud;
    char *body = r->out;
    size_t len = r->len;
    r->out = NULL;
    req_free(r);
    cb(ud, rc == CURLE_OK ? (int)status : -1, body ? body : "", body ? len : 0, err);
    free(body);
}

static void check_done(httpc_t *h)
{
    CURLMsg *m;
    int left;
    while (!h->freeing && (m = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        httpc_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (r)
            finish(r, m->data.result);
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sockctx *sc = p->data;
    httpc_t *h = sc->h;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(h->multi, sc->fd, flags, &running);
    check_done(h);
}

static void on_timer(uv_timer_t *t)
{
    httpc_t *h = t->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e;
    httpc_t *h = userp;
    sockctx *sc = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sc) {
            curl_multi_assign(h->multi, s, NULL);
            sock_drop(h, sc);
        }
        return 0;
    }
    if (!sc) {
        sc = calloc(1, sizeof *sc);
        if (!sc)
            return -1; /* curl fails the transfer */
        if (uv_poll_init_socket(h->loop, &sc->poll, s) != 0) {
            free(sc);
            return -1;
        }
        sc->fd = s;
        sc->h = h;
        sc->poll.data = sc;
        h->handles++;
        sc->next = h->socks;
        if (h->socks)
            h->socks->prev = sc;
        h->socks = sc;
        curl_multi_assign(h->multi, s, sc);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    return uv_poll_start(&sc->poll, ev, on_poll) == 0 ? 0 : -1;
}

static int on_timer_change(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    httpc_t *h = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static void on_timer_closed(uv_handle_t *t)
{
    httpc_t *h = t->data;
    h->handles--;
    maybe_free_h(h);
}

httpc_t *httpc_new(uv_loop_t *loop, const pxy_cfg *proxy)
{
    uv_once(&global_once, global_init);
    if (global_rc < 0)
        return NULL;
    httpc_t *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->multi = curl_multi_init();
    if (!h->multi) {
        free(h);
        return NULL;
    }
    h->loop = loop;
    if (proxy)
        h->px = *proxy;
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->handles = 1;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    /* Several requests to the hub at once share one HTTP/2 connection
     * when the hub offers it. */
    curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    return h;
}

void httpc_free(httpc_t *h)
{
    if (!h || h->freeing)
        return;
    h->freeing = 1; /* no new requests from the callbacks below */
    while (h->reqs) {
        httpc_req *r = h->reqs;
        httpc_cb cb = r->cb;
        httpc_tunnel_cb tcb = r->tcb;
        void *ud = r->ud;
        req_free(r);
        if (tcb)
            tcb(ud, -1, "the HTTP client is shutting down");
        else if (cb)
            cb(ud, -1, "", 0, "the HTTP client is shutting down");
    }
    /* Cleaning up closes the cached connections; curl may still report
     * their sockets as removed, which needs h intact. */
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    while (h->socks)
        sock_drop(h, h->socks);
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, on_timer_closed);
}

const pxy_cfg *httpc_proxy(const httpc_t *h)
{
    return &h->px;
}

void httpc_get_stats(const httpc_t *h, httpc_stats *out)
{
    static const httpc_stats none;
    *out = h ? h->stats : none;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    httpc_req *r = ud;
    size_t add = size * n;
    if (add > r->max - r->len) {
        r->too_big = 1;
        return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
    }
    if (r->len + add + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + add + 1)
            cap *= 2;
        if (cap > r->max + 1)
            cap = r->max + 1;
        char *o = realloc(r->out, cap);
        if (!o)
            return 0;
        r->out = o;
        r->cap = cap;
    }
    memcpy(r->out + r->len, p, add);
    r->len += add;
    r->out[r->len] = '\0';
    return add;
}

/* The easy handle with what every call shares; proxy chosen for host. */
static httpc_req *req_new(httpc_t *h, const char *host, int secure, int direct, unsigned timeout_ms)
{
    if (!h || h->freeing)
        return NULL;
    httpc_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->h = h;
    r->e = curl_easy_init();
    if (!r->e) {
        free(r);
        return NULL;
    }
    r->timeout_ms = timeout_ms;
    const char *px = direct ? NULL : pxy_for(&h->px, secure, host);
    if (px)
        snprintf(r->proxy, sizeof r->proxy, "%s", px);
    CURL *e = r->e;
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* "" turns off curl's own reading of the environment: pxy decided. */
    curl_easy_setopt(e, CURLOPT_PROXY, r->proxy);
    if (px) {
        curl_easy_setopt(e, CURLOPT_PROXYAUTH, (long)CURLAUTH_ANY);
        if (h->px.ca_file[0])
            curl_easy_setopt(e, CURLOPT_PROXY_CAINFO, h->px.ca_file);
    }
    return r;
}

static int start(httpc_req *r)
{
    httpc_t *h = r->h;
    if (curl_multi_add_handle(h->multi, r->e) != CURLM_OK) {
        curl_slist_free_all(r->hdrs);
        curl_easy_cleanup(r->e);
        free(r);
        return -1;
    }
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    return 0;
}

httpc_req *httpc_request(httpc_t *h, const char *url, const httpc_opts *o, httpc_cb cb, void *ud)
{
    static const httpc_opts none;
    if (!o)
        o = &none;
    url_parts u;
    char host[256];
    if (!url || url_parse(url, strlen(url), &u) < 0 || u.host.n >= sizeof host)
        return NULL;
    int secure = u.scheme.n == 5 && !strncmp(u.scheme.p, "https", 5);
    if (!secure && !(u.scheme.n == 4 && !strncmp(u.scheme.p, "http", 4)))
        return NULL;
    memcpy(host, u.host.p, u.host.n);
    host[u.host.n] = '\0';
    httpc_req *r = req_new(h, host, secure, o->direct, o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS);
    if (!r)
        return NULL;
    r->cb = cb;
    r->ud = ud;
    r->max = o->max_response ? o->max_response : DEFAULT_MAX;
    CURL *e = r->e;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    if (o->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
    int bad = 0;
    for (const char *const *p = o->headers; p && *p && !bad; p++) {
        struct curl_slist *n = curl_slist_append(r->hdrs, *p);
        bad = !n;
        r->hdrs = n ? n : r->hdrs;
    }
    /* No "Expect: 100-continue" round trip for the small bodies sent. */
    struct curl_slist *n = bad ? NULL : curl_slist_append(r->hdrs, "Expect:");
    if (!n) {
        curl_slist_free_all(r->hdrs);
        curl_easy_cleanup(e);
        free(r);
        return NULL;
    }
    r->hdrs = n;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
    if (o->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, o->body);
    }
    if (o->method && strcmp(o->method, o->body ? "POST" : "GET"))
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o->method);
    if (start(r) < 0)
        return NULL;
    h->stats.requests++;
    return r;
}

httpc_req *httpc_tunnel(httpc_t *h, const char *host, int port, int secure, unsigned timeout_ms,
                        httpc_tunnel_cb cb, void *ud)
{
    char url[320];
    const char *hp = host;
    char bare[256];
    size_t hl = strlen(host);
    if (hl >= sizeof bare || port <= 0 || port > 65535)
        return NULL;
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memcpy(bare, host + 1, hl - 2);
        bare[hl - 2] = '\0';
        hp = bare;
    }
    /* The URL only names where to connect: curl sends nothing over the
     * tunnel (CONNECT_ONLY), so its scheme is http whatever runs on top. */
    snprintf(url, sizeof url, strchr(hp, ':') ? "http://[%s]:%d/" : "http://%s:%d/", hp, port);
    httpc_req *r = req_new(h, hp, secure, 0, timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS);
    if (!r)
        return NULL;
    r->tcb = cb;
    r->ud = ud;
    CURL *e = r->e;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    if (r->proxy[0])
        curl_easy_setopt(e, CURLOPT_HTTPPROXYTUNNEL, 1L);
    if (start(r) < 0)
        return NULL;
    h->stats.tunnels++;
    return r;
}

void httpc_cancel(httpc_req *r)
{
    if (r)
        req_free(r);
}
