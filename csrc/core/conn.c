/* conn: TCP + TLS connection with backpressure on libuv. See conn.h. */
#include "conn.h"

#include <errno.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpc.h"

const conn_opts conn_default_opts = {
    .in_max = 64 * 1024,
    .high_water = 256 * 1024,
    .low_water = 64 * 1024,
    .out_max = 4 * 1024 * 1024,
    .stall_ms = 0,
    .handshake_ms = 10000,
};

/* ST_TUNNEL: httpc is dialling (through a proxy or not), conn_connect_via. */
enum { ST_TUNNEL, ST_RESOLVING, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSING, ST_LINGER, ST_CLOSED };

#define RX_SIZE (64 * 1024)
#define LINGER_MS 1000
#define CLOSE_FLUSH_MS 5000

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_loop_t *loop;
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    const conn_cbs *cbs;
    void *data;
    conn_opts o;
    tls_sess *tls;
    buf_t in;
    buf_t pre; /* plaintext written before the TLS handshake finished */
    size_t wq; /* bytes handed to uv_write and not yet completed */
    int state;
    int close_err;
    int handles; /* open libuv handles (tcp, timer) */
    int reqs;    /* outstanding requests that reference this conn */
    unsigned paused : 1, reading : 1, delivering : 1, eof : 1, was_high : 1, is_client : 1, eof_reported : 1;
    uint64_t bytes_in, bytes_out;
    int port;
    char host[256];
    char sni[256];
    char peer[64];
    char peer_ip[48];
    int peer_port;
    httpc_req *tun;        /* the pending dial of conn_connect_via */
    char via[PXY_URL_MAX]; /* the proxy it goes through, for sentences (no credentials) */
    char errmsg[TLS_ERRLEN];
    uint8_t rx[RX_SIZE];
};

typedef struct wreq {
    uv_write_t req;
    conn_t *c;
    size_t len;
    uint8_t bytes[];
} wreq;

static void close_now(conn_t *c, int err);
static void start_shutdown(conn_t *c);
static void deliver(conn_t *c);
static void update_reading(conn_t *c);

static conn_t *conn_new(uv_loop_t *loop, const conn_cbs *cbs, void *data, const conn_opts *opts)
{
    conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    c->cbs = cbs;
    c->data = data;
    c->o = opts ? *opts : conn_default_opts;
    buf_init(&c->in, c->o.in_max);
    buf_init(&c->pre, c->o.out_max);
    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    return c;
}

static void finalize(conn_t *c)
{
    if (c->handles > 0 || c->reqs > 0)
        return;
    if (c->cbs && c->cbs->on_close)
        c->cbs->on_close(c, c->close_err);
    tls_sess_free(c->tls);
    buf_free(&c->in);
    buf_free(&c->pre);
    free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    c->handles--;
    finalize(c);
}

static void close_now(conn_t *c, int err)
{
    if (c->state == ST_CLOSED)
        return;
    int was = c->state;
    c->state = ST_CLOSED;
    c->close_err = err;
    if (was == ST_RESOLVING)
        uv_cancel((uv_req_t *)&c->gai);
    if (was == ST_TUNNEL && c->tun) {
        httpc_cancel(c->tun); /* its callback will not come */
        c->tun = NULL;
        c->reqs--;
    }
    if (c->is_client && was < ST_OPEN && c->cbs->on_connect)
        c->cbs->on_connect(c, err ? err : UV_ECANCELED);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void arm_timer(conn_t *c, unsigned ms);

static void on_write(uv_write_t *r, int status)
{
    wreq *w = (wreq *)r;
    conn_t *c = w->c;
    c->wq -= w->len;
    c->reqs--;
    free(w);
    if (status < 0) {
        close_now(c, status);
        finalize(c);
        return;
    }
    if (c->state == ST_CLOSED) {
        finalize(c);
        return;
    }
    if (c->state == ST_OPEN && c->o.stall_ms) {
        if (c->wq == 0)
            uv_timer_stop(&c->timer);
        else
            arm_timer(c, c->o.stall_ms); /* progress: restart the stall clock */
    }
    if (c->was_high && c->wq <= c->o.low_water) {
        c->was_high = 0;
        if (c->state == ST_OPEN && c->cbs->on_drain)
            c->cbs->on_drain(c);
    }
    if (c->state == ST_CLOSING && c->wq == 0)
        start_shutdown(c);
}

/* Hands n bytes (already encrypted if TLS) to the socket. */
static int queue_raw(conn_t *c, const void *p, size_t n)
{
    wreq *w = malloc(sizeof *w + n);
    if (!w)
        return -ENOMEM;
    w->c = c;
    w->len = n;
    memcpy(w->bytes, p, n);
    uv_buf_t b = uv_buf_init((char *)w->bytes, (unsigned)n);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        free(w);
        return rc;
    }
    c->reqs++;
    c->wq += n;
    if (c->wq > c->o.high_water)
        c->was_high = 1;
    if (c->state == ST_OPEN && c->o.stall_ms && !uv_is_active((uv_handle_t *)&c->timer))
        arm_timer(c, c->o.stall_ms);
    return 0;
}

/* Moves all ciphertext OpenSSL produced onto the socket, in one write.
 * On failure that ciphertext is gone and the TLS stream is broken: use
 * flush_or_close() unless the connection is failing anyway. */
static int flush_tls(conn_t *c)
{
    size_t n = tls_sess_pending_out(c->tls);
    if (n == 0)
        return 0;
    wreq *w = malloc(sizeof *w + n);
    if (!w)
        return -ENOMEM;
    size_t got = tls_sess_take(c->tls, w->bytes, n);
    w->c = c;
    w->len = got;
    uv_buf_t b = uv_buf_init((char *)w->bytes, (unsigned)got);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        free(w);
        return rc;
    }
    c->reqs++;
    c->wq += got;
    if (c->wq > c->o.high_water)
        c->was_high = 1;
    if (c->state == ST_OPEN && c->o.stall_ms && !uv_is_active((uv_handle_t *)&c->timer))
        arm_timer(c, c->o.stall_ms);
    return 0;
}

/* flush_tls, closing the connection when the ciphertext could not be
 * queued. Returns flush_tls's result. */
static int flush_or_close(conn_t *c)
{
    int rc = flush_tls(c);
    if (rc < 0)
        close_now(c, rc);
    return rc;
}

static void on_linger_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    conn_t *c = s->data;
    if (n < 0)
        close_now(c, c->close_err);
}

static void on_shutdown(uv_shutdown_t *r, int status)
{
    conn_t *c = r->data;
    c->reqs--;
    if (c->state != ST_LINGER || status < 0) {
        close_now(c, c->close_err);
        finalize(c);
        return;
    }
    /* Read and discard until the peer's FIN so that closing does not turn
     * into a reset that could destroy the bytes we just sent. */
    arm_timer(c, LINGER_MS);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void start_shutdown(conn_t *c)
{
    c->state = ST_LINGER;
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        close_now(c, c->close_err);
        return;
    }
    c->reqs++;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_linger_read);
}

static void on_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    switch (c->state) {
    case ST_OPEN:
        snprintf(c->errmsg, sizeof c->errmsg, "peer stopped reading (no progress for %u ms)", c->o.stall_ms);
        close_now(c, UV_ETIMEDOUT);
        break;
    case ST_CLOSING:
    case ST_LINGER: close_now(c, c->close_err); break;
    case ST_CLOSED: break;
    case ST_TUNNEL:
        snprintf(c->errmsg, sizeof c->errmsg, "no connection to %s:%d through the proxy %s within %u ms",
                 c->host, c->port, c->via, c->o.handshake_ms);
        close_now(c, UV_ETIMEDOUT);
        break;
    default:
        snprintf(c->errmsg, sizeof c->errmsg, "connection or TLS handshake timed out");
        close_now(c, UV_ETIMEDOUT);
    }
}

static void arm_timer(conn_t *c, unsigned ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    conn_t *c = h->data;
    if (c->tls || c->state == ST_LINGER) {
        *b = uv_buf_init((char *)c->rx, sizeof c->rx);
        return;
    }
    size_t got;
    uint8_t *p = buf_reserve(&c->in, RX_SIZE, &got);
    *b = uv_buf_init((char *)p, (unsigned)got);
}

static void tls_failed(conn_t *c)
{
    snprintf(c->errmsg, sizeof c->errmsg, "%s", tls_sess_error(c->tls));
    flush_tls(c); /* let the alert reach the peer if it can */
    close_now(c, CONN_ETLS);
}

/* Decrypts what OpenSSL holds into `in`, as far as room allows. */
static void pump_tls(conn_t *c)
{
    if (!c->tls || c->state != ST_OPEN)
        return;
    while (!c->paused && buf_room(&c->in) > 0) {
        size_t got;
        uint8_t *p = buf_reserve(&c->in, 16384, &got);
        if (!got)
            break;
        long r = tls_sess_read(c->tls, p, got);
        if (r > 0) {
            buf_commit(&c->in, (size_t)r);
            c->bytes_in += (uint64_t)r;
            continue;
        }
        if (r == TLS_CLOSED)
            c->eof = 1;
        else if (r == TLS_ERR)
            tls_failed(c);
        break;
    }
    if (c->state == ST_OPEN && tls_sess_pending_out(c->tls))
        flush_or_close(c); /* e.g. session tickets, key updates */
}

static void become_open(conn_t *c)
{
    /* Bytes written during the handshake go first, while the state is not
     * yet open: a failure then reaches a client's on_connect. */
    if (c->tls && buf_len(&c->pre)) {
        if (tls_sess_write(c->tls, buf_data(&c->pre), buf_len(&c->pre)) < 0) {
            tls_failed(c);
            return;
        }
        buf_clear(&c->pre);
        if (flush_or_close(c) < 0)
            return;
    }
    c->state = ST_OPEN;
    uv_timer_stop(&c->timer);
    if (c->is_client && c->cbs->on_connect)
        c->cbs->on_connect(c, 0);
}

static void handshake(conn_t *c)
{
    int r = tls_sess_handshake(c->tls);
    if (r == TLS_ERR) {
        tls_failed(c);
        return;
    }
    if (flush_or_close(c) < 0)
        return;
    if (r == TLS_DONE)
        become_open(c);
}

static void check_eof(conn_t *c)
{
    if (!c->eof || c->state != ST_OPEN || buf_len(&c->in) || (c->tls && tls_sess_has_input(c->tls)))
        return;
    if (c->cbs->on_eof) {
        if (!c->eof_reported) {
            c->eof_reported = 1;
            c->cbs->on_eof(c);
        }
        return;
    }
    conn_close(c, 1);
}

static void deliver(conn_t *c)
{
    if (c->delivering)
        return;
    c->delivering = 1;
    for (;;) {
        pump_tls(c);
        if (c->state != ST_OPEN || c->paused || buf_len(&c->in) == 0)
            break;
        size_t n = c->cbs->on_data(c, buf_data(&c->in), buf_len(&c->in));
        if (c->state != ST_OPEN)
            break;
        buf_consume(&c->in, n);
        if (n == 0 && (buf_room(&c->in) == 0 || !c->tls || !tls_sess_has_input(c->tls)))
            break; /* the owner needs more bytes than we have */
    }
    c->delivering = 0;
    check_eof(c);
    update_reading(c);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    conn_t *c = s->data;
    (void)b;
    if (n == 0)
        return;
    if (n < 0) {
        if (n != UV_EOF) {
            close_now(c, (int)n);
            return;
        }
        c->eof = 1;
        if (c->state < ST_OPEN) {
            snprintf(c->errmsg, sizeof c->errmsg, "peer closed the connection during the handshake");
            close_now(c, UV_ECONNRESET);
            return;
        }
        update_reading(c);
        check_eof(c);
        return;
    }
    if (!c->tls) {
        buf_commit(&c->in, (size_t)n);
        c->bytes_in += (uint64_t)n;
        deliver(c);
        return;
    }
    if (tls_sess_feed(c->tls, c->rx, (size_t)n) < 0) {
        close_now(c, -ENOMEM);
        return;
    }
    if (c->state == ST_HANDSHAKE)
        handshake(c);
    if (c->state == ST_OPEN)
        deliver(c);
}

static void update_reading(conn_t *c)
{
    int want =
        (c->state == ST_HANDSHAKE || c->state == ST_OPEN) && !c->eof && !c->paused && buf_room(&c->in) > 0;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0)
            c->reading = 1;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void fill_peer(conn_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, c->peer_ip, sizeof c->peer_ip);
        c->peer_port = ntohs(a->sin_port);
        snprintf(c->peer, sizeof c->peer, "%s:%d", c->peer_ip, c->peer_port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, c->peer_ip, sizeof c->peer_ip);
        c->peer_port = ntohs(a->sin6_port);
        snprintf(c->peer, sizeof c->peer, "[%s]:%d", c->peer_ip, c->peer_port);
    }
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

/* Takes the pending connection off `server` and closes it: libuv stops
 * polling a server whose pending connection nobody accepted. A bare
 * handle is far smaller than a conn (which holds a 64 KiB read buffer),
 * so it usually fits when a conn did not; if even that fails, the
 * connection stays pending and the server accepts nothing more. */
static void drop_pending(uv_stream_t *server)
{
    uv_tcp_t *t = malloc(sizeof *t);
    if (!t)
        return;
    uv_tcp_init(server->loop, t);
    (void)uv_accept(server, (uv_stream_t *)t); /* closed either way */
    uv_close((uv_handle_t *)t, free_handle);
}

conn_t *conn_accept(uv_stream_t *server, tls_ctx *tls, const conn_cbs *cbs, void *data, const conn_opts *opts)
{
    conn_t *c = conn_new(server->loop, cbs, data, opts);
    if (!c) {
        drop_pending(server);
        return NULL;
    }
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        close_now(c, UV_ECONNABORTED);
        return NULL;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    fill_peer(c);
    if (tls) {
        c->tls = tls_sess_new(tls, 1, NULL);
        if (!c->tls) {
            close_now(c, -ENOMEM);
            return NULL;
        }
        c->state = ST_HANDSHAKE;
        arm_timer(c, c->o.handshake_ms);
    } else {
        c->state = ST_OPEN;
    }
    update_reading(c);
    return c;
}

/* TCP is up (directly or through a tunnel): TLS next, or open. */
static void connected(conn_t *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    fill_peer(c);
    if (c->tls) {
        c->state = ST_HANDSHAKE;
        update_reading(c);
        handshake(c);
    } else {
        become_open(c); /* the state must be open before reading starts */
        if (c->state == ST_OPEN)
            update_reading(c);
    }
}

static void on_tcp_connect(uv_connect_t *r, int status)
{
    conn_t *c = r->data;
    c->reqs--;
    if (c->state != ST_CONNECTING) {
        finalize(c);
        return;
    }
    if (status < 0) {
        snprintf(c->errmsg, sizeof c->errmsg, "cannot connect to %s:%d: %s", c->host, c->port,
                 uv_strerror(status));
        close_now(c, status);
        finalize(c);
        return;
    }
    connected(c);
}

static void on_resolved(uv_getaddrinfo_t *r, int status, struct addrinfo *ai)
{
    conn_t *c = r->data;
    c->reqs--;
    if (c->state != ST_RESOLVING) {
        uv_freeaddrinfo(ai);
        finalize(c);
        return;
    }
    if (status < 0 || !ai) {
        snprintf(c->errmsg, sizeof c->errmsg, "cannot resolve %s: %s", c->host, uv_strerror(status));
        uv_freeaddrinfo(ai);
        close_now(c, status < 0 ? status : UV_EAI_NONAME);
        finalize(c);
        return;
    }
    c->state = ST_CONNECTING;
    c->creq.data = c;
    int rc = uv_tcp_connect(&c->creq, &c->tcp, ai->ai_addr, on_tcp_connect);
    uv_freeaddrinfo(ai);
    if (rc < 0) {
        close_now(c, rc);
        finalize(c);
        return;
    }
    c->reqs++;
}

conn_t *conn_connect(uv_loop_t *loop, const char *host, int port, tls_ctx *tls, const char *sni,
                     const conn_cbs *cbs, void *data, const conn_opts *opts)
{
    conn_t *c = conn_new(loop, cbs, data, opts);
    if (!c)
        return NULL;
    c->is_client = 1;
    c->port = port;
    snprintf(c->host, sizeof c->host, "%s", host);
    snprintf(c->sni, sizeof c->sni, "%s", sni ? sni : host);
    /* Bracketed IPv6 literals arrive as they appear in URLs. */
    if (c->host[0] == '[') {
        size_t l = strlen(c->host);
        if (l > 2 && c->host[l - 1] == ']') {
            memmove(c->host, c->host + 1, l - 2);
            c->host[l - 2] = '\0';
        }
        snprintf(c->sni, sizeof c->sni, "%s", c->host);
    }
    if (tls) {
        c->tls = tls_sess_new(tls, 0, c->sni);
        if (!c->tls) {
            close_now(c, -ENOMEM);
            return c; /* on_connect/on_close report the failure */
        }
    }
    c->state = ST_RESOLVING;
    arm_timer(c, c->o.handshake_ms);
    char port_s[8];
    snprintf(port_s, sizeof port_s, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    c->gai.data = c;
    int rc = uv_getaddrinfo(loop, &c->gai, on_resolved, c->host, port_s, &hints);
    if (rc < 0) {
        close_now(c, rc);
        return c;
    }
    c->reqs++;
    return c;
}

static void on_tunnel(void *ud, int fd, const char *err)
{
    conn_t *c = ud;
    c->tun = NULL;
    c->reqs--;
    if (fd < 0) {
        snprintf(c->errmsg, sizeof c->errmsg, "%s", err);
        close_now(c, CONN_EPROXY);
        finalize(c);
        return;
    }
    int rc = uv_tcp_open(&c->tcp, fd);
    if (rc < 0) {
        close(fd);
        close_now(c, rc);
        finalize(c);
        return;
    }
    connected(c);
}

conn_t *conn_connect_via(uv_loop_t *loop, httpc_t *via, const char *host, int port, tls_ctx *tls,
                         const char *sni, const conn_cbs *cbs, void *data, const conn_opts *opts)
{
    const char *px = via ? pxy_for(httpc_proxy(via), tls != NULL, host) : NULL;
    if (!px)
        return conn_connect(loop, host, port, tls, sni, cbs, data, opts);
    conn_t *c = conn_new(loop, cbs, data, opts);
    if (!c)
        return NULL;
    c->is_client = 1;
    c->port = port;
    snprintf(c->host, sizeof c->host, "%s", host);
    snprintf(c->sni, sizeof c->sni, "%s", sni ? sni : host);
    pxy_display(px, c->via, sizeof c->via);
    if (c->host[0] == '[') {
        size_t l = strlen(c->host);
        if (l > 2 && c->host[l - 1] == ']') {
            memmove(c->host, c->host + 1, l - 2);
            c->host[l - 2] = '\0';
        }
        if (!sni)
            snprintf(c->sni, sizeof c->sni, "%s", c->host);
    }
    c->state = ST_TUNNEL;
    if (!strncasecmp(px, "https:", 6)) {
        /* curl would hold the TLS session to the proxy, so the socket it
         * hands over could not carry our bytes: refuse, clearly. */
        snprintf(c->errmsg, sizeof c->errmsg,
                 "the proxy %s is an https:// proxy; connections that carry their own TLS (the relay's "
                 "WebSockets) need an http:// proxy URL, whose CONNECT tunnel then carries TLS end to end",
                 c->via);
        close_now(c, CONN_EPROXY);
        return c;
    }
    if (tls && !(c->tls = tls_sess_new(tls, 0, c->sni))) {
        close_now(c, -ENOMEM);
        return c; /* on_connect/on_close report the failure */
    }
    arm_timer(c, c->o.handshake_ms);
    /* httpc's own deadline is a little shorter, so that its sentence (which
     * says what the proxy did) is the one reported. */
    unsigned t = c->o.handshake_ms > 200 ? c->o.handshake_ms - 100 : c->o.handshake_ms;
    c->tun = httpc_tunnel(via, c->host, port, tls != NULL, t, on_tunnel, c);
    if (!c->tun) {
        snprintf(c->errmsg, sizeof c->errmsg, "cannot start a connection through the proxy %s", c->via);
        close_now(c, CONN_EPROXY);
        return c;
    }
    c->reqs++;
    return c;
}

int conn_write(conn_t *c, const void *p, size_t n)
{
    return conn_write2(c, p, n, NULL, 0);
}

int conn_write2(conn_t *c, const void *a, size_t an, const void *b, size_t bn)
{
    if (c->state >= ST_CLOSING)
        return -EPIPE;
    size_t n = an + bn;
    if (n == 0)
        return 0;
    if (c->wq + buf_len(&c->pre) + n > c->o.out_max)
        return -ENOBUFS;
    c->bytes_out += n;
    if (c->tls && c->state != ST_OPEN) {
        /* Both pieces or neither: a frame must never be queued cut. */
        size_t got;
        uint8_t *p = buf_reserve(&c->pre, n, &got);
        if (got < n)
            return -ENOBUFS;
        if (an)
            memcpy(p, a, an);
        if (bn)
            memcpy(p + an, b, bn);
        buf_commit(&c->pre, n);
        return 0;
    }
    if (c->tls) {
        /* Small pieces are joined so a frame header and its payload share
         * one TLS record. */
        uint8_t tmp[16384];
        if (bn && n <= sizeof tmp) {
            memcpy(tmp, a, an);
            memcpy(tmp + an, b, bn);
            if (tls_sess_write(c->tls, tmp, n) < 0)
                goto tls_fail;
        } else {
            if (an && tls_sess_write(c->tls, a, an) < 0)
                goto tls_fail;
            if (bn && tls_sess_write(c->tls, b, bn) < 0)
                goto tls_fail;
        }
        return flush_or_close(c); /* the bytes are inside OpenSSL now: no way back */
    }
    if (!bn)
        return queue_raw(c, a, an);
    wreq *w = malloc(sizeof *w + n);
    if (!w)
        return -ENOMEM;
    memcpy(w->bytes, a, an);
    memcpy(w->bytes + an, b, bn);
    w->c = c;
    w->len = n;
    uv_buf_t ub = uv_buf_init((char *)w->bytes, (unsigned)n);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, on_write);
    if (rc < 0) {
        free(w);
        return rc;
    }
    c->reqs++;
    c->wq += n;
    if (c->wq > c->o.high_water)
        c->was_high = 1;
    if (c->state == ST_OPEN && c->o.stall_ms && !uv_is_active((uv_handle_t *)&c->timer))
        arm_timer(c, c->o.stall_ms);
    return 0;
tls_fail:
    tls_failed(c);
    return CONN_ETLS;
}

int conn_writable(const conn_t *c)
{
    return c->state == ST_OPEN && c->wq + buf_len(&c->pre) <= c->o.high_water;
}

size_t conn_queued(const conn_t *c)
{
    return c->wq + buf_len(&c->pre);
}

void conn_pause(conn_t *c)
{
    c->paused = 1;
    update_reading(c);
}

void conn_resume(conn_t *c)
{
    if (!c->paused)
        return;
    c->paused = 0;
    if (c->state == ST_OPEN)
        deliver(c);
    else
        update_reading(c);
}

void conn_close(conn_t *c, int graceful)
{
    if (c->state >= ST_CLOSING)
        return;
    if (!graceful || c->state != ST_OPEN) {
        close_now(c, 0);
        return;
    }
    c->state = ST_CLOSING;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
    if (c->tls) {
        tls_sess_shutdown(c->tls);
        if (flush_or_close(c) < 0)
            return;
    }
    arm_timer(c, CLOSE_FLUSH_MS);
    if (c->wq == 0)
        start_shutdown(c);
}

int conn_is_open(const conn_t *c)
{
    return c->state == ST_OPEN;
}
void *conn_data(const conn_t *c)
{
    return c->data;
}
void conn_set_data(conn_t *c, void *data)
{
    c->data = data;
}
void conn_set_cbs(conn_t *c, const conn_cbs *cbs)
{
    c->cbs = cbs;
}
const char *conn_peer(const conn_t *c)
{
    return c->peer[0] ? c->peer : "?";
}
const char *conn_peer_ip(const conn_t *c)
{
    return c->peer_ip[0] ? c->peer_ip : "?";
}
int conn_peer_port(const conn_t *c)
{
    return c->peer_port;
}
tls_sess *conn_tls(const conn_t *c)
{
    return c->tls;
}
uint64_t conn_bytes_in(const conn_t *c)
{
    return c->bytes_in;
}
uint64_t conn_bytes_out(const conn_t *c)
{
    return c->bytes_out;
}

void conn_set_stall(conn_t *c, unsigned ms)
{
    c->o.stall_ms = ms;
}

const char *conn_error(const conn_t *c, int err)
{
    if (c->errmsg[0])
        return c->errmsg;
    return err ? uv_strerror(err) : "closed";
}

/* Fills ss from an IPv4 or IPv6 literal; 0 or a libuv code. */
static int ip_addr(const char *host, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss);
}

int conn_listen(uv_loop_t *loop, uv_tcp_t *srv, const char *host, int port, uv_connection_cb cb,
                char err[128])
{
    /* First, so that every failure below leaves a handle the caller can
     * close (see conn.h). Without flags uv_tcp_init creates no socket and
     * cannot fail: libuv only validates the flags. */
    int rc = uv_tcp_init(loop, srv);
    if (rc != 0) {
        snprintf(err, 128, "cannot create a TCP handle: %s", uv_strerror(rc));
        return rc;
    }
    struct sockaddr_storage ss;
    if ((rc = ip_addr(host, port, &ss)) != 0) {
        snprintf(err, 128, "invalid listen address '%.60s': give an IP address such as 127.0.0.1 or ::1",
                 host);
        return rc;
    }
    if ((rc = uv_tcp_bind(srv, (struct sockaddr *)&ss, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)srv, 256, cb)) != 0) {
        snprintf(err, 128, "cannot listen on %s:%d: %s", host, port, uv_strerror(rc));
        return rc;
    }
    return 0;
}

int conn_parse_addr(const char *spec, char *host, size_t cap, int *port, char err[128])
{
    const char *colon = strrchr(spec, ':');
    const char *h = spec;
    size_t hl = colon ? (size_t)(colon - spec) : 0;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (!colon || hl == 0 || hl >= cap) {
        snprintf(err, 128, "'%.60s' is not an IP address and port; use e.g. 127.0.0.1:8443 or [::1]:8443",
                 spec);
        return -1;
    }
    const char *ps = colon + 1;
    char *end;
    errno = 0;
    long p = strtol(ps, &end, 10);
    if (*ps < '0' || *ps > '9' || *end || errno || p > 65535) {
        snprintf(err, 128, "'%.60s' has no port in 0..65535; use e.g. 127.0.0.1:8443", spec);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct sockaddr_storage ss;
    if (ip_addr(host, (int)p, &ss) != 0) {
        /* Letters without a ':' (no IPv6): most likely a host name. */
        int named =
            !strchr(host, ':') && strpbrk(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
        snprintf(err, 128, "'%.60s' is not an IP address and port%s; use e.g. 127.0.0.1:%ld", spec,
                 named ? " (host names are not resolved)" : "", p);
        host[0] = '\0';
        return -1;
    }
    *port = (int)p;
    return 0;
}

int conn_bound_port(uv_tcp_t *srv)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(srv, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}
