/* Unit tests for httpc (libcurl on the libuv loop) against small
 * in-process servers on loopback: answers with a length, chunked and
 * oversized ones, keep-alive (two calls, one connection), a server that
 * never answers (deadline), a refused connection, and CONNECT tunnels
 * through an in-process proxy that checks Basic credentials, refuses
 * with 407/403/502 or hangs up: each error names the proxy and never its
 * password. A skipped host is dialled directly. An https:// proxy is
 * trusted through the proxy CA bundle (pxy_cfg.ca_file) and refused
 * without it; tunnels for bytes of our own refuse it clearly. */
#include "cert.h"
#include "check.h"
#include "conn.h"
#include "http.h"
#include "httpc.h"

static int tests_run;
static uv_loop_t *loop;
static uv_tcp_t srv, psrv;
static int srv_port, proxy_port, srv_accepts, proxy_connects;

/* ---- origin server: keeps connections open between requests ----------- */

static size_t srv_data(conn_t *c, uint8_t *d, size_t n)
{
    http_request req;
    int hl = http_parse_request((const char *)d, n, 0, NULL, &req);
    if (hl == HTTP_INCOMPLETE)
        return 0;
    CHECK(hl > 0);
    uint64_t blen = 0;
    http_request_body(&req, &blen);
    if (n < (size_t)hl + blen)
        return 0;
    if (http_eq(req.target, req.target_len, "/len")) {
        char a[256];
        int al = snprintf(a, sizeof a, "HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\necho:%.*s",
                          (int)blen + 5, (int)blen, (const char *)d + hl);
        CHECK_EQ(conn_write(c, a, (size_t)al), 0);
    } else if (http_eq(req.target, req.target_len, "/chunked")) {
        const char *a =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        CHECK_EQ(conn_write(c, a, strlen(a)), 0);
    } else if (http_eq(req.target, req.target_len, "/big")) {
        static char big[200000];
        memset(big, 'x', sizeof big);
        const char *a = "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n";
        CHECK_EQ(conn_write2(c, a, strlen(a), big, sizeof big), 0);
    } else if (http_eq(req.target, req.target_len, "/method")) {
        char a[256];
        int al = snprintf(a, sizeof a, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%.*s",
                          (int)req.method_len, (int)req.method_len, req.method);
        CHECK_EQ(conn_write(c, a, (size_t)al), 0);
    } /* "/silent": never answers */
    return (size_t)hl + (size_t)blen;
}

static const conn_cbs srv_cbs = {.on_data = srv_data};

static void on_conn(uv_stream_t *s, int status)
{
    CHECK_EQ(status, 0);
    srv_accepts++;
    conn_accept(s, NULL, &srv_cbs, NULL, &conn_default_opts);
}

/* ---- the proxy: CONNECT, then a byte echo (standing in for the far end) - */

static const char *proxy_mode = "ok"; /* ok, 403, 502, hangup */

static size_t proxy_data(conn_t *c, uint8_t *d, size_t n)
{
    if (conn_data(c)) { /* tunnel open: echo */
        CHECK_EQ(conn_write(c, d, n), 0);
        return n;
    }
    http_request req;
    int hl = http_parse_request((const char *)d, n, 0, NULL, &req);
    if (hl == HTTP_INCOMPLETE)
        return 0;
    CHECK(hl > 0);
    if (!http_eq(req.method, req.method_len, "CONNECT")) {
        /* An http:// destination: the proxy answers the absolute-form
         * request itself (as a caching proxy would), after checking the
         * credentials like for CONNECT. */
        CHECK(!strncmp(req.target, "http://", 7));
        const http_header *pa = http_find(req.headers, req.nheaders, "Proxy-Authorization");
        const char *a = pa && http_eq(pa->value, pa->value_len, "Basic YWxpY2U6czNjcmV0")
                            ? "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nproxied"
                            : "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic "
                              "realm=\"t\"\r\nContent-Length: 0\r\n\r\n";
        CHECK_EQ(conn_write(c, a, strlen(a)), 0);
        return (size_t)hl;
    }
    proxy_connects++;
    /* "alice:s3cret" */
    const http_header *pa = http_find(req.headers, req.nheaders, "Proxy-Authorization");
    const char *a;
    if (!strcmp(proxy_mode, "hangup")) {
        conn_close(c, 0);
        return n;
    } else if (!strcmp(proxy_mode, "403")) {
        a = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    } else if (!strcmp(proxy_mode, "502")) {
        a = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n";
    } else if (!pa || !http_eq(pa->value, pa->value_len, "Basic YWxpY2U6czNjcmV0")) {
        a = "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\n"
            "Content-Length: 0\r\n\r\n";
    } else {
        a = "HTTP/1.1 200 Connection established\r\n\r\n";
        conn_set_data(c, c);
    }
    CHECK_EQ(conn_write(c, a, strlen(a)), 0);
    return (size_t)hl;
}

static const conn_cbs proxy_cbs = {.on_data = proxy_data};

static void on_tls_proxy_conn(uv_stream_t *s, int status)
{
    CHECK_EQ(status, 0);
    conn_accept(s, s->data, &proxy_cbs, NULL, &conn_default_opts);
}

static void on_proxy_conn(uv_stream_t *s, int status)
{
    CHECK_EQ(status, 0);
    conn_accept(s, NULL, &proxy_cbs, NULL, &conn_default_opts);
}

typedef struct result {
    int status, called;
    char body[256], err[HTTPC_ERRLEN];
} result;

static void done(void *ud, int status, const char *body, size_t len, const char *err)
{
    result *r = ud;
    r->called++;
    r->status = status;
    snprintf(r->body, sizeof r->body, "%.*s", (int)len, body);
    snprintf(r->err, sizeof r->err, "%s", err);
}

static void settle(void)
{
    for (int i = 0; i < 5; i++)
        uv_run(loop, UV_RUN_NOWAIT); /* let the closes finish (ASan checks the frees) */
}

static result call(httpc_t *h, const char *path, const char *body, httpc_opts o)
{
    result r = {0};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", srv_port, path);
    const char *hdrs[] = {"Content-Type: text/plain", NULL};
    o.headers = hdrs;
    o.body = body;
    o.body_len = body ? strlen(body) : 0;
    CHECK(httpc_request(h, url, &o, done, &r) != NULL);
    CHECK_EQ(r.called, 0); /* never from inside the call */
    while (!r.called)
        uv_run(loop, UV_RUN_ONCE);
    settle();
    CHECK_EQ(r.called, 1);
    return r;
}

static void setup(void)
{
    loop = uv_default_loop();
    char err[128];
    CHECK_EQ(conn_listen(loop, &srv, "127.0.0.1", 0, on_conn, err), 0);
    srv_port = conn_bound_port(&srv);
    CHECK_EQ(conn_listen(loop, &psrv, "127.0.0.1", 0, on_proxy_conn, err), 0);
    proxy_port = conn_bound_port(&psrv);
}

static void answers_and_keepalive(void)
{
    httpc_t *h = httpc_new(loop, NULL);
    CHECK(h != NULL);
    int before = srv_accepts;
    result r = call(h, "/len", "hello", (httpc_opts){0});
    CHECK_EQ(r.status, 201);
    CHECK_STR(r.body, "echo:hello");
    r = call(h, "/chunked", NULL, (httpc_opts){0});
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "abcde");
    r = call(h, "/method", NULL, (httpc_opts){.method = "DELETE"});
    CHECK_STR(r.body, "DELETE");
    /* Three calls, one connection: curl kept it alive. */
    CHECK_EQ(srv_accepts - before, 1);
    httpc_stats st;
    httpc_get_stats(h, &st);
    CHECK_EQ(st.requests, 3);
    CHECK_EQ(st.connects, 1);
    httpc_free(h);
    settle();
}

static void failures(void)
{
    httpc_t *h = httpc_new(loop, NULL);
    result r = call(h, "/big", NULL, (httpc_opts){.max_response = 1000, .timeout_ms = 5000});
    CHECK(r.status < 0);
    CHECK(strstr(r.err, "larger than 1000") != NULL);
    /* Without a length the ceiling holds as the bytes arrive. */
    r = call(h, "/chunked", NULL, (httpc_opts){.max_response = 3, .timeout_ms = 5000});
    CHECK(r.status < 0);
    CHECK(strstr(r.err, "larger than 3") != NULL);
    r = call(h, "/silent", NULL, (httpc_opts){.timeout_ms = 300});
    CHECK(r.status < 0);
    CHECK(strstr(r.err, "no answer within 300 ms") != NULL);
    /* Nothing listens on port 1. */
    result r2 = {0};
    CHECK(httpc_request(h, "http://127.0.0.1:1/x", NULL, done, &r2) != NULL);
    while (!r2.called)
        uv_run(loop, UV_RUN_ONCE);
    CHECK(r2.status < 0 && strlen(r2.err) > 0);
    CHECK(httpc_request(h, "ftp://x/", NULL, done, &r2) == NULL);
    /* Cancelled: no callback, nothing leaks. */
    result r3 = {0};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/silent", srv_port);
    httpc_cancel(httpc_request(h, url, NULL, done, &r3));
    settle();
    CHECK_EQ(r3.called, 0);
    /* Freed with a call pending: it hears "shutting down" once. */
    CHECK(httpc_request(h, url, NULL, done, &r3) != NULL);
    httpc_free(h);
    CHECK_EQ(r3.called, 1);
    CHECK(strstr(r3.err, "shutting down") != NULL);
    settle();
}

/* ---- tunnels ------------------------------------------------------------ */

typedef struct tun {
    int called, fd, echoed, closed;
    char err[HTTPC_ERRLEN];
} tun;

static size_t t_data(conn_t *c, uint8_t *d, size_t n)
{
    tun *t = conn_data(c);
    if (n >= 4) {
        CHECK(!memcmp(d, "ping", 4));
        t->echoed = 1;
        conn_close(c, 0);
        return n;
    }
    return 0;
}

static int expect_direct; /* the origin (no echo) answers: just connect */

static void t_connect(conn_t *c, int status)
{
    tun *t = conn_data(c);
    t->called = 1;
    if (status < 0) {
        snprintf(t->err, sizeof t->err, "%s", conn_error(c, status));
        return;
    }
    if (expect_direct) {
        conn_close(c, 0);
        return;
    }
    CHECK_EQ(conn_write(c, "ping", 4), 0);
}

static void t_close(conn_t *c, int err)
{
    (void)err;
    tun *t = conn_data(c);
    t->closed = 1;
}

static const conn_cbs t_cbs = {.on_data = t_data, .on_connect = t_connect, .on_close = t_close};

/* A plain (no TLS) conn_connect_via to the origin's port through the
 * proxy configured as `proxy_url`. */
static tun via(const char *proxy_url, const char *skip, const char *host)
{
    pxy_cfg px;
    memset(&px, 0, sizeof px);
    char err[PXY_ERRLEN];
    CHECK_EQ(pxy_set_http(&px, proxy_url, err), 0);
    if (skip)
        CHECK_EQ(pxy_add_skip(&px, skip, err), 0);
    httpc_t *h = httpc_new(loop, &px);
    tun t = {0};
    conn_opts co = conn_default_opts;
    co.handshake_ms = 2000;
    CHECK(conn_connect_via(loop, h, host, srv_port, NULL, NULL, &t_cbs, &t, &co) != NULL);
    while (!t.closed)
        uv_run(loop, UV_RUN_ONCE);
    httpc_free(h);
    settle();
    return t;
}

static void tunnels(void)
{
    char url[200];
    /* Right credentials: the echo behind the proxy answers. */
    proxy_mode = "ok";
    int before = proxy_connects;
    snprintf(url, sizeof url, "http://alice:s3cret@127.0.0.1:%d", proxy_port);
    tun t = via(url, NULL, "localhost");
    CHECK(t.echoed);
    CHECK(proxy_connects > before);
    /* Wrong password: 407, named, password absent. */
    snprintf(url, sizeof url, "http://alice:wrong-pw@127.0.0.1:%d", proxy_port);
    t = via(url, NULL, "localhost");
    CHECK(!t.echoed);
    CHECK(strstr(t.err, "407") != NULL);
    char shown[64];
    snprintf(shown, sizeof shown, "http://127.0.0.1:%d", proxy_port);
    CHECK(strstr(t.err, shown) != NULL);
    CHECK(strstr(t.err, "wrong-pw") == NULL);
    CHECK(strstr(t.err, "alice") == NULL);
    proxy_mode = "403";
    t = via(url, NULL, "localhost");
    CHECK(strstr(t.err, "403") != NULL && strstr(t.err, shown) != NULL);
    proxy_mode = "502";
    t = via(url, NULL, "localhost");
    CHECK(strstr(t.err, "502") != NULL && strstr(t.err, shown) != NULL);
    proxy_mode = "hangup";
    t = via(url, NULL, "localhost");
    CHECK(!t.echoed && strstr(t.err, shown) != NULL && strstr(t.err, "wrong-pw") == NULL);
    /* A skipped host goes direct: the origin (no echo) gets the bytes,
     * the proxy sees no CONNECT. */
    proxy_mode = "ok";
    before = proxy_connects;
    int acc = srv_accepts;
    expect_direct = 1;
    t = via(url, "localhost,10.0.0.0/8", "localhost");
    expect_direct = 0;
    CHECK(t.called && !t.err[0]);
    CHECK_EQ(proxy_connects, before);
    CHECK_EQ(srv_accepts, acc + 1);
    /* A proxy that is not there. */
    t = via("http://u:topsecret@127.0.0.1:1", NULL, "localhost");
    CHECK(strstr(t.err, "cannot connect to the proxy http://127.0.0.1:1") != NULL);
    CHECK(strstr(t.err, "topsecret") == NULL);
}

/* The same proxy behind TLS: the CONNECT itself is encrypted to it. */
static void https_proxy(void)
{
    char err[CERT_ERRLEN], dir[] = "/tmp/ck-httpc-XXXXXX";
    EVP_PKEY *cak, *sk;
    X509 *ca, *sc;
    CHECK_EQ(cert_make_ca("proxy CA", 1, &cak, &ca, err), 0);
    CHECK_EQ(cert_make_leaf(cak, ca, "localhost", "DNS:localhost,IP:127.0.0.1", 1, 1, &sk, &sc, err), 0);
    char *cp = cert_pem(sc), *kp = cert_key_pem(sk);
    tls_ctx *stls = tls_server_ctx_mem(cp, kp, NULL, err);
    CHECK(stls != NULL);
    CHECK(mkdtemp(dir) != NULL);
    char ca_file[64];
    snprintf(ca_file, sizeof ca_file, "%s/ca.pem", dir);
    CHECK_EQ(cert_write_pem(ca_file, ca, NULL, err), 0);
    static uv_tcp_t tsrv;
    char lerr[128];
    CHECK_EQ(conn_listen(loop, &tsrv, "127.0.0.1", 0, on_tls_proxy_conn, lerr), 0);
    tsrv.data = stls;
    char url[200];
    snprintf(url, sizeof url, "https://alice:s3cret@127.0.0.1:%d", conn_bound_port(&tsrv));
    proxy_mode = "ok";
    /* An http:// destination through it, trusted through the proxy CA
     * bundle and authenticated: the request and its answer cross the TLS
     * session curl holds with the proxy. */
    pxy_cfg px;
    memset(&px, 0, sizeof px);
    char perr[PXY_ERRLEN];
    CHECK_EQ(pxy_set_http(&px, url, perr), 0);
    snprintf(px.ca_file, sizeof px.ca_file, "%s", ca_file);
    httpc_t *h = httpc_new(loop, &px);
    const char *ourl = "http://origin.invalid/x";
    result r = {0};
    httpc_opts o = {0};
    CHECK(httpc_request(h, ourl, &o, done, &r) != NULL);
    while (!r.called)
        uv_run(loop, UV_RUN_ONCE);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "proxied");
    /* Without the proxy CA the proxy's certificate is not trusted. */
    px.ca_file[0] = '\0';
    httpc_free(h);
    h = httpc_new(loop, &px);
    memset(&r, 0, sizeof r);
    CHECK(httpc_request(h, ourl, &o, done, &r) != NULL);
    while (!r.called)
        uv_run(loop, UV_RUN_ONCE);
    char shown[64];
    snprintf(shown, sizeof shown, "https://127.0.0.1:%d", conn_bound_port(&tsrv));
    CHECK(r.status < 0 && strstr(r.err, shown) != NULL && strstr(r.err, "s3cret") == NULL);
    httpc_free(h);
    /* A tunnel for bytes of our own cannot go through it: said clearly. */
    tun t = via(url, NULL, "localhost");
    CHECK(!t.echoed && strstr(t.err, "https:// proxy") != NULL && strstr(t.err, shown) != NULL);
    uv_close((uv_handle_t *)&tsrv, NULL);
    settle();
    tls_ctx_free(stls);
    unlink(ca_file);
    rmdir(dir);
    free(cp);
    free(kp);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(sk);
    X509_free(ca);
    X509_free(sc);
}

int main(void)
{
    TEST(setup);
    TEST(answers_and_keepalive);
    TEST(failures);
    TEST(tunnels);
    TEST(https_proxy);
    uv_close((uv_handle_t *)&srv, NULL);
    uv_close((uv_handle_t *)&psrv, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    TEST_MAIN_END();
}
