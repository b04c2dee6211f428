/* hub: arc-hub's front door. See hub.h. */
#include "hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "list.h"
#include "log.h"

typedef struct front front;
struct front {
    hub_t *h;
    conn_t *c;
    size_t last_len;
    uint64_t started;
    /* A body that did not arrive with its head: head and body are copied
     * here (bounded by max_body) until complete. */
    char *acc;
    size_t acc_len, acc_need;
    unsigned served; /* API requests answered on this connection */
    list_node link;  /* on hub.fronts */
};

typedef struct route {
    char prefix[HUB_PREFIX_MAX];
    size_t n;
    unsigned flags;
    api_handler api; /* one of these two */
    api_takeover take;
    void *ud;
} route;

typedef struct hook {
    api_hooks h;
    void *ud;
} hook;

#define HUB_HOOKS_MAX 8

struct hub {
    uv_loop_t *loop;
    uv_tcp_t srv;
    uv_timer_t tick;
    tls_ctx *tls;
    hub_opts o;
    route routes[HUB_ROUTES_MAX];
    size_t nroutes;
    hook hooks[HUB_HOOKS_MAX];
    size_t nhooks;
    list_node fronts; /* front.link: connections still in the front door */
    int closing;
    int open_handles;
};

static int add_route(hub_t *h, const char *prefix, unsigned flags, api_handler api, api_takeover take,
                     void *ud)
{
    size_t n = strlen(prefix);
    if (h->nroutes == HUB_ROUTES_MAX || n == 0 || n >= HUB_PREFIX_MAX)
        return -1;
    route *r = &h->routes[h->nroutes++];
    memcpy(r->prefix, prefix, n + 1);
    r->n = n;
    r->flags = flags;
    r->api = api;
    r->take = take;
    r->ud = ud;
    return 0;
}

int hub_mount(hub_t *h, const char *prefix, unsigned flags, api_handler fn, void *ud)
{
    return fn ? add_route(h, prefix, flags, fn, NULL, ud) : -1;
}

int hub_mount_takeover(hub_t *h, const char *prefix, unsigned flags, api_takeover fn, void *ud)
{
    return fn ? add_route(h, prefix, flags, NULL, fn, ud) : -1;
}

int hub_hook(hub_t *h, const api_hooks *hooks, void *ud)
{
    if (h->nhooks == HUB_HOOKS_MAX)
        return -1;
    h->hooks[h->nhooks++] = (hook){*hooks, ud};
    return 0;
}

static int route_matches(const route *r, url_slice path)
{
    if (path.n < r->n)
        return 0;
    return r->flags & HUB_NOCASE ? strncasecmp(path.p, r->prefix, r->n) == 0
                                 : memcmp(path.p, r->prefix, r->n) == 0;
}

static void front_unlink(front *f)
{
    list_remove(&f->link);
}

static const conn_cbs front_cbs;

/* Hands the connection to its final owner (or answers it) and retires the
 * front record. */
static void front_done(front *f)
{
    front_unlink(f);
    free(f->acc);
    free(f);
}

static void serve_local(hub_t *h, conn_t *c, const http_request *req, url_slice path)
{
    if (!http_eq(req->method, req->method_len, "GET")) {
        api_reply_close(c, 405, NULL, "text/plain", "method not allowed\n");
        return;
    }
    if (path.n == 8 && memcmp(path.p, "/healthz", 8) == 0) {
        api_reply_close(c, 200, NULL, "text/plain", "ok\n");
        return;
    }
    static char metrics[32768];
    size_t n = 0;
    for (size_t i = 0; i < h->nhooks; i++)
        if (h->hooks[i].h.metrics)
            n += h->hooks[i].h.metrics(h->hooks[i].ud, metrics + n, sizeof metrics - 1 - n);
    metrics[n] = '\0';
    api_reply_close(c, 200, NULL, "text/plain; version=0.0.4", metrics);
}

/* Leaves the front door for a final owner (relay) or a final answer. */
static void front_leave(front *f, conn_t *c)
{
    front_done(f);
    conn_set_data(c, NULL);
    conn_set_cbs(c, &api_answered_cbs);
}

static int wants_keepalive(const http_request *req)
{
    const http_header *ch = http_find(req->headers, req->nheaders, "Connection");
    if (ch && http_has_token(ch->value, ch->value_len, "close"))
        return 0;
    if (req->minor_version == 0)
        return ch && http_has_token(ch->value, ch->value_len, "keep-alive");
    return 1;
}

static const char oom_body[] =
    "{\"error\":{\"code\":\"ServiceUnavailable\",\"message\":\"The hub ran out of memory; retry.\"}}";

/* Runs the API handler on a complete request and writes its answer.
 * Returns 1 when the connection stays open for another request, 0 when it
 * must close (also when the answer could not be queued). */
static int serve_api(front *f, const http_request *req, url_slice path, url_slice query, const char *body,
                     size_t blen)
{
    hub_t *h = f->h;
    api_req ar = {
        .http = req, .path = path, .query = query, .body = body, .body_len = blen, .peer = conn_peer(f->c)};
    api_resp resp = {0};
    unsigned mark = json_failures();
    int answered = 0;
    for (size_t i = 0; i < h->nroutes && !answered; i++)
        if (h->routes[i].api && route_matches(&h->routes[i], path))
            answered = h->routes[i].api(h->routes[i].ud, &ar, &resp);
    if (!answered)
        api_error(&resp, 404, "NotFound", "No route for %s %.*s.",
                  http_eq(req->method, req->method_len, "GET") ? "GET" : "this method",
                  (int)(path.n > 200 ? 200 : path.n), path.p);
    const char *body_out = resp.body;
    if (json_failures() != mark) {
        /* Some JSON the handler built or parsed lost a member to a failed
         * allocation, so its answer may say something else: refuse it
         * whole. Handlers never store such a tree (json_print). */
        resp.status = 503;
        resp.ctype = "application/json; charset=utf-8";
        resp.headers[0] = '\0';
        body_out = oom_body;
    }
    int keep = wants_keepalive(req) && !h->closing;
    char head[2048]; /* fixed lines + content type + resp.headers (< 512) */
    size_t blen_out = body_out ? strlen(body_out) : 0;
    int n =
        snprintf(head, sizeof head,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                 "x-ms-request-id: %08x\r\n%s%s\r\n",
                 resp.status, http_reason(resp.status), resp.ctype ? resp.ctype : "text/plain", blen_out,
                 (unsigned)(api_now_ms() ^ (uintptr_t)f), resp.headers, keep ? "" : "Connection: close\r\n");
    if (n < 0 || (size_t)n >= sizeof head) { /* cannot happen with the bounds above; never send a cut head */
        free(resp.body);
        return 0;
    }
    int rc = conn_write2(f->c, head, (size_t)n, body_out, blen_out);
    free(resp.body);
    if (rc < 0) {
        log_kv(LOG_DEBUG, "hub.reply_failed", "remote", conn_peer(f->c), "error", conn_error(f->c, rc), NULL);
        return 0;
    }
    f->served++;
    return keep;
}

/* One request head (and body) from `data`; returns bytes consumed, 0 when
 * more are needed, or (size_t)-1 after the connection changed owner. */
static size_t front_one(front *f, conn_t *c, uint8_t *data, size_t len)
{
    hub_t *h = f->h;
    http_request req;
    int rc = http_parse_request((const char *)data, len, f->last_len, NULL, &req);
    if (rc == HTTP_INCOMPLETE) {
        f->last_len = len;
        return 0;
    }
    if (rc == HTTP_BAD || rc == HTTP_TOO_LARGE) {
        front_leave(f, c);
        api_reply_close(c, rc == HTTP_BAD ? 400 : 431, NULL, "text/plain",
                        rc == HTTP_BAD ? "malformed HTTP request\n" : "request head too large\n");
        return (size_t)-1;
    }
    url_slice path, query;
    url_split_target(req.target, req.target_len, &path, &query);
    for (size_t i = 0; i < h->nroutes; i++) {
        const route *r = &h->routes[i];
        if (!r->take || path.n <= r->n || !route_matches(r, path))
            continue;
        front_leave(f, c);
        r->take(r->ud, c, &req, (url_slice){path.p + r->n, path.n - r->n}, query);
        return (size_t)-1;
    }
    if ((path.n == 8 && memcmp(path.p, "/healthz", 8) == 0) ||
        (path.n == 8 && memcmp(path.p, "/metrics", 8) == 0)) {
        front_leave(f, c);
        serve_local(h, c, &req, path);
        return (size_t)-1;
    }
    uint64_t blen = 0;
    int kind = http_request_body(&req, &blen);
    if (kind == HTTP_BAD || kind == HTTP_BODY_CHUNKED) {
        front_leave(f, c);
        if (kind == HTTP_BAD)
            api_reply_close(c, 400, NULL, "application/json",
                            "{\"error\":{\"code\":\"BadRequest\",\"message\":\"Invalid request framing.\"}}");
        else
            api_reply_close(c, 411, NULL, "application/json",
                            "{\"error\":{\"code\":\"LengthRequired\",\"message\":\"Send the body with "
                            "Content-Length.\"}}");
        return (size_t)-1;
    }
    if (blen > h->o.max_body) {
        char msg[200];
        snprintf(
            msg, sizeof msg,
            "{\"error\":{\"code\":\"RequestEntityTooLarge\",\"message\":\"The body exceeds %zu bytes.\"}}",
            h->o.max_body);
        front_leave(f, c);
        api_reply_close(c, 413, NULL, "application/json", msg);
        return (size_t)-1;
    }
    size_t total = (size_t)rc + (size_t)blen;
    if (len < total) {
        /* The body is still coming: keep head and body together, off the
         * connection's own (smaller) buffer. */
        f->acc = malloc(total);
        if (!f->acc) {
            front_leave(f, c);
            api_reply_close(c, 503, NULL, "text/plain", "out of memory\n");
            return (size_t)-1;
        }
        memcpy(f->acc, data, len);
        f->acc_len = len;
        f->acc_need = total;
        return len;
    }
    f->last_len = 0;
    int keep = serve_api(f, &req, path, query, (const char *)data + rc, (size_t)blen);
    if (!keep) {
        front_leave(f, c);
        conn_close(c, 1);
        return (size_t)-1;
    }
    f->started = api_now_ms();
    return total;
}

static size_t front_on_data(conn_t *c, uint8_t *data, size_t len)
{
    front *f = conn_data(c);
    size_t used = 0;
    while (f && used < len) {
        if (f->acc) {
            size_t take = f->acc_need - f->acc_len;
            if (take > len - used)
                take = len - used;
            memcpy(f->acc + f->acc_len, data + used, take);
            f->acc_len += take;
            used += take;
            if (f->acc_len < f->acc_need)
                break;
            char *acc = f->acc;
            size_t n = f->acc_len;
            f->acc = NULL;
            f->acc_len = f->acc_need = 0;
            f->last_len = 0;
            size_t r = front_one(f, c, (uint8_t *)acc, n);
            free(acc);
            if (r == (size_t)-1)
                return len;
            continue;
        }
        size_t r = front_one(f, c, data + used, len - used);
        if (r == (size_t)-1)
            return len;
        if (r == 0)
            break;
        used += r;
    }
    return used;
}

static void front_on_close(conn_t *c, int err)
{
    (void)err;
    front *f = conn_data(c);
    if (f)
        front_done(f);
}

static const conn_cbs front_cbs = {
    .on_data = front_on_data,
    .on_close = front_on_close,
};

static void on_connection(uv_stream_t *srv, int status)
{
    hub_t *h = srv->data;
    if (status < 0 || h->closing)
        return;
    /* Accept first: a connection left pending would stop libuv from
     * polling the server at all. */
    conn_t *c = conn_accept(srv, h->tls, &front_cbs, NULL, &h->o.conn);
    if (!c)
        return;
    front *f = calloc(1, sizeof *f);
    if (!f) {
        conn_close(c, 0);
        return;
    }
    conn_set_data(c, f);
    f->h = h;
    f->started = api_now_ms();
    f->c = c;
    list_insert_head(&h->fronts, &f->link);
}

static void on_tick(uv_timer_t *t)
{
    hub_t *h = t->data;
    uint64_t now = api_now_ms();
    list_node *n, *tmp;
    list_foreach (n, tmp, &h->fronts) {
        front *f = list_entry(n, front, link);
        if (now - f->started < h->o.head_timeout_ms)
            continue;
        /* Slow or silent clients must not hold a slot forever. An idle
         * kept-alive connection is simply closed, as servers do. */
        conn_t *c = f->c;
        int idle = f->served && !f->acc && f->last_len == 0;
        front_leave(f, c);
        if (idle)
            conn_close(c, 1);
        else if (conn_is_open(c))
            api_reply_close(c, 408, NULL, "text/plain", "request head not received in time\n");
        else
            conn_close(c, 0);
    }
    for (size_t i = 0; i < h->nhooks; i++)
        if (h->hooks[i].h.tick)
            h->hooks[i].h.tick(h->hooks[i].ud, now);
}

hub_t *hub_new(uv_loop_t *loop, tls_ctx *tls, const hub_opts *o, char err[128])
{
    hub_t *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, 128, "out of memory");
        return NULL;
    }
    h->loop = loop;
    list_init(&h->fronts);
    h->tls = tls;
    h->o = *o;
    if (conn_listen(loop, &h->srv, o->host, o->port, on_connection, err) != 0) {
        uv_close((uv_handle_t *)&h->srv, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        free(h);
        return NULL;
    }
    h->srv.data = h;
    uv_timer_init(loop, &h->tick);
    h->tick.data = h;
    uv_timer_start(&h->tick, on_tick, 1000, 1000);
    return h;
}

int hub_port(hub_t *h)
{
    return conn_bound_port(&h->srv);
}

void hub_shutdown(hub_t *h)
{
    if (h->closing)
        return;
    h->closing = 1;
    uv_close((uv_handle_t *)&h->srv, NULL);
    uv_close((uv_handle_t *)&h->tick, NULL);
    while (!list_empty(&h->fronts)) {
        front *f = list_entry(h->fronts.next, front, link);
        conn_t *c = f->c;
        front_done(f);
        conn_set_data(c, NULL);
        conn_set_cbs(c, &api_answered_cbs);
        conn_close(c, 0);
    }
    for (size_t i = 0; i < h->nhooks; i++)
        if (h->hooks[i].h.shutdown)
            h->hooks[i].h.shutdown(h->hooks[i].ud);
}

void hub_free(hub_t *h)
{
    free(h);
}
