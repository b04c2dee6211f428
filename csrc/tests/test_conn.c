/* Unit tests for conn: real loopback sockets on a libuv loop, TLS on,
 * checking delivery, backpressure, stall detection and failures. */
#include "cert.h"
#include "check.h"
#include "conn.h"

static int tests_run;
static uv_loop_t *loop;
static tls_ctx *srv_tls, *cli_tls;
static char dir[] = "/tmp/ck-conn-XXXXXX";
static char ca_file[64];

static void setup(void)
{
    char err[CERT_ERRLEN];
    EVP_PKEY *cak, *sk;
    X509 *ca, *sc;
    CHECK_EQ(cert_make_ca("conn CA", 1, &cak, &ca, err), 0);
    CHECK_EQ(cert_make_leaf(cak, ca, "localhost", "DNS:localhost,IP:127.0.0.1", 1, 1, &sk, &sc, err), 0);
    char *cp = cert_pem(sc), *kp = cert_key_pem(sk);
    srv_tls = tls_server_ctx_mem(cp, kp, NULL, err);
    CHECK(srv_tls != NULL);
    CHECK(mkdtemp(dir) != NULL);
    snprintf(ca_file, sizeof ca_file, "%s/ca.pem", dir);
    CHECK_EQ(cert_write_pem(ca_file, ca, NULL, err), 0);
    cli_tls = tls_client_ctx(ca_file, NULL, NULL, err);
    CHECK(cli_tls != NULL);
    free(cp);
    free(kp);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(sk);
    X509_free(ca);
    X509_free(sc);
    loop = uv_default_loop();
}

/* ---- echo ---------------------------------------------------------------- */

#define ECHO_BYTES (3 * 1024 * 1024 + 17)
static uv_tcp_t srv;
static uint8_t *pattern;
static size_t sent, received;
static int mismatch, server_closed, client_closed, client_connected;
static conn_t *server_conn;
static size_t max_queued;

static size_t echo_data(conn_t *c, uint8_t *d, size_t n)
{
    if (!conn_writable(c)) {
        conn_pause(c);
        return 0;
    }
    CHECK_EQ(conn_write(c, d, n), 0);
    if (conn_queued(c) > max_queued)
        max_queued = conn_queued(c);
    return n;
}
static void echo_drain(conn_t *c)
{
    conn_resume(c);
}
static void echo_close(conn_t *c, int err)
{
    (void)c;
    CHECK_EQ(err, 0);
    server_closed = 1;
    uv_close((uv_handle_t *)&srv, NULL);
}
static const conn_cbs echo_cbs = {.on_data = echo_data, .on_drain = echo_drain, .on_close = echo_close};

static void on_conn(uv_stream_t *s, int status)
{
    CHECK_EQ(status, 0);
    server_conn = conn_accept(s, srv_tls, &echo_cbs, NULL, NULL);
    CHECK(server_conn != NULL);
}

static void client_push(conn_t *c)
{
    while (sent < ECHO_BYTES && conn_writable(c)) {
        size_t n = ECHO_BYTES - sent < 50000 ? ECHO_BYTES - sent : 50000;
        CHECK_EQ(conn_write(c, pattern + sent, n), 0);
        sent += n;
    }
}
static void client_connect(conn_t *c, int status)
{
    CHECK_EQ(status, 0);
    client_connected = 1;
    client_push(c);
}
static size_t client_data(conn_t *c, uint8_t *d, size_t n)
{
    if (received + n > ECHO_BYTES || memcmp(d, pattern + received, n) != 0)
        mismatch = 1;
    received += n;
    if (received == ECHO_BYTES)
        conn_close(c, 1);
    return n;
}
static void client_close(conn_t *c, int err)
{
    (void)c;
    CHECK_EQ(err, 0);
    client_closed = 1;
}
static const conn_cbs client_cbs = {
    .on_data = client_data, .on_drain = client_push, .on_connect = client_connect, .on_close = client_close};

static void tls_echo(void)
{
    char err[128];
    pattern = malloc(ECHO_BYTES);
    for (size_t i = 0; i < ECHO_BYTES; i++)
        pattern[i] = (uint8_t)(i * 7 + (i >> 12));
    CHECK_EQ(conn_listen(loop, &srv, "127.0.0.1", 0, on_conn, err), 0);
    int port = conn_bound_port(&srv);
    CHECK(port > 0);
    CHECK(conn_connect(loop, "127.0.0.1", port, cli_tls, NULL, &client_cbs, NULL, NULL) != NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(client_connected);
    CHECK_EQ(received, ECHO_BYTES);
    CHECK(!mismatch);
    CHECK(client_closed);
    CHECK(server_closed);
    /* Backpressure kept the echo queue near the high-water mark (256 KiB)
     * plus one delivery (64 KiB of input plus TLS framing). */
    CHECK(max_queued <= conn_default_opts.high_water + 80 * 1024);
    free(pattern);
}

/* ---- a reader that never reads ------------------------------------------- */

static int stall_err = 1, stall_closed;
static size_t stall_written, stall_max_queued;
static conn_t *lazy_client;

static void stall_fill(conn_t *c)
{
    static uint8_t chunk[65536];
    while (conn_writable(c) && stall_written < (256u << 20)) {
        CHECK_EQ(conn_write(c, chunk, sizeof chunk), 0);
        stall_written += sizeof chunk;
        if (conn_queued(c) > stall_max_queued)
            stall_max_queued = conn_queued(c);
    }
}
static size_t discard(conn_t *c, uint8_t *d, size_t n)
{
    (void)c, (void)d;
    return n;
}
static void stall_close(conn_t *c, int err)
{
    (void)c;
    stall_err = err;
    stall_closed = 1;
    uv_close((uv_handle_t *)&srv, NULL);
    conn_close(lazy_client, 0);
}
static const conn_cbs stall_srv_cbs = {.on_data = discard, .on_drain = stall_fill, .on_close = stall_close};
static void on_stall_conn(uv_stream_t *s, int status)
{
    CHECK_EQ(status, 0);
    conn_opts o = conn_default_opts;
    o.stall_ms = 300;
    conn_t *c = conn_accept(s, NULL, &stall_srv_cbs, NULL, &o);
    CHECK(c != NULL);
    stall_fill(c);
}
static void lazy_connect(conn_t *c, int status)
{
    CHECK_EQ(status, 0);
    conn_pause(c); /* never read */
}
static const conn_cbs lazy_cbs = {.on_data = discard, .on_connect = lazy_connect};

static void stalled_reader_is_closed(void)
{
    char err[128];
    CHECK_EQ(conn_listen(loop, &srv, "127.0.0.1", 0, on_stall_conn, err), 0);
    lazy_client = conn_connect(loop, "127.0.0.1", conn_bound_port(&srv), NULL, NULL, &lazy_cbs, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(stall_closed);
    CHECK_EQ(stall_err, UV_ETIMEDOUT);
    /* Memory stayed bounded although the peer read nothing. */
    CHECK(stall_max_queued <= conn_default_opts.high_water + 65536);
    CHECK(stall_written < (256u << 20));
}

/* ---- failures -------------------------------------------------------------- */

static int fail_status, fail_closed;
static char fail_msg[256];
static void fail_connect(conn_t *c, int status)
{
    fail_status = status;
    snprintf(fail_msg, sizeof fail_msg, "%s", conn_error(c, status));
}
static void fail_close(conn_t *c, int err)
{
    (void)c, (void)err;
    fail_closed = 1;
}
static const conn_cbs fail_cbs = {.on_data = discard, .on_connect = fail_connect, .on_close = fail_close};

static void refused_port(void)
{
    /* Bind and close a socket to find a port nobody listens on. */
    char err[128];
    uv_tcp_t tmp;
    CHECK_EQ(conn_listen(loop, &tmp, "127.0.0.1", 0, on_conn, err), 0);
    int port = conn_bound_port(&tmp);
    uv_close((uv_handle_t *)&tmp, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    fail_status = 0;
    fail_closed = 0;
    conn_connect(loop, "127.0.0.1", port, NULL, NULL, &fail_cbs, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_EQ(fail_status, UV_ECONNREFUSED);
    CHECK(strstr(fail_msg, "cannot connect") != NULL);
    CHECK(fail_closed);
}

static void on_conn_keep(uv_stream_t *s, int status)
{
    CHECK_EQ(status, 0);
    static const conn_cbs cbs = {.on_data = discard};
    conn_accept(s, srv_tls, &cbs, NULL, NULL);
    uv_close((uv_handle_t *)&srv, NULL);
}

static void tls_name_mismatch(void)
{
    char err[128];
    CHECK_EQ(conn_listen(loop, &srv, "127.0.0.1", 0, on_conn_keep, err), 0);
    fail_status = 0;
    fail_closed = 0;
    /* Connect by IP but claim another name: verification must fail. */
    conn_connect(loop, "127.0.0.1", conn_bound_port(&srv), cli_tls, "other.example", &fail_cbs, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_EQ(fail_status, CONN_ETLS);
    CHECK(strstr(fail_msg, "verification failed") != NULL);
    CHECK(fail_closed);
}

/* ---- listening on bad addresses ------------------------------------------ */

/* The handle starts zeroed, as in the daemons' calloc'd structs: closing
 * it after a failed conn_listen used to hit libuv's "uv_close: Assertion
 * '0' failed" because the failure came before uv_tcp_init. */
static void listen_bad_host(void)
{
    static const char *bad[] = {"localhost", "999.1.1.1", "", "127.0.0.1:80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        static uv_tcp_t h;
        char err[128] = "";
        memset(&h, 0, sizeof h);
        CHECK(conn_listen(loop, &h, bad[i], 8443, on_conn, err) < 0);
        CHECK(strstr(err, "invalid listen address") != NULL);
        CHECK(strstr(err, "IP address") != NULL);
        uv_close((uv_handle_t *)&h, NULL); /* the contract: always closable */
        uv_run(loop, UV_RUN_DEFAULT);
    }
}

static void listen_port_in_use(void)
{
    char err[128];
    uv_tcp_t a, b;
    memset(&b, 0, sizeof b);
    CHECK_EQ(conn_listen(loop, &a, "127.0.0.1", 0, on_conn, err), 0);
    CHECK_EQ(conn_listen(loop, &b, "127.0.0.1", conn_bound_port(&a), on_conn, err), UV_EADDRINUSE);
    CHECK(strstr(err, "cannot listen on 127.0.0.1:") != NULL);
    uv_close((uv_handle_t *)&a, NULL);
    uv_close((uv_handle_t *)&b, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
}

static void parse_addr(void)
{
    char host[64], err[128];
    int port = -1;
    CHECK_EQ(conn_parse_addr("127.0.0.1:8443", host, sizeof host, &port, err), 0);
    CHECK_STR(host, "127.0.0.1");
    CHECK_EQ(port, 8443);
    CHECK_EQ(conn_parse_addr("[::1]:0", host, sizeof host, &port, err), 0);
    CHECK_STR(host, "::1");
    CHECK_EQ(port, 0);
    CHECK_EQ(conn_parse_addr("0.0.0.0:65535", host, sizeof host, &port, err), 0);
    CHECK_EQ(port, 65535);

    port = 7;
    CHECK_EQ(conn_parse_addr("localhost:8443", host, sizeof host, &port, err), -1);
    CHECK_STR(err, "'localhost:8443' is not an IP address and port (host names are not resolved); "
                   "use e.g. 127.0.0.1:8443");
    CHECK_EQ(port, 7); /* untouched on failure */
    CHECK_EQ(conn_parse_addr("999.1.1.1:1", host, sizeof host, &port, err), -1);
    CHECK_STR(err, "'999.1.1.1:1' is not an IP address and port; use e.g. 127.0.0.1:1");
    CHECK_EQ(conn_parse_addr("[fe80::zz]:80", host, sizeof host, &port, err), -1);
    CHECK_STR(err, "'[fe80::zz]:80' is not an IP address and port; use e.g. 127.0.0.1:80");
    static const char *no_port[] = {"127.0.0.1:",    "127.0.0.1:65536", "127.0.0.1:-1",
                                    "127.0.0.1: 80", "127.0.0.1:80x",   "127.0.0.1:99999999999999999999"};
    for (size_t i = 0; i < sizeof no_port / sizeof *no_port; i++) {
        CHECK_EQ(conn_parse_addr(no_port[i], host, sizeof host, &port, err), -1);
        CHECK(strstr(err, "has no port in 0..65535") != NULL);
    }
    static const char *no_addr[] = {"127.0.0.1", ":80", "[]:80", ""};
    for (size_t i = 0; i < sizeof no_addr / sizeof *no_addr; i++) {
        CHECK_EQ(conn_parse_addr(no_addr[i], host, sizeof host, &port, err), -1);
        CHECK(strstr(err, "is not an IP address and port; use e.g. 127.0.0.1:8443") != NULL);
    }
    /* A host longer than the caller's buffer is refused, not cut. */
    char small[4];
    CHECK_EQ(conn_parse_addr("10.0.0.1:80", small, sizeof small, &port, err), -1);
}

int main(void)
{
    TEST(setup);
    TEST(tls_echo);
    TEST(stalled_reader_is_closed);
    TEST(refused_port);
    TEST(tls_name_mismatch);
    TEST(listen_bad_host);
    TEST(listen_port_in_use);
    TEST(parse_addr);
    tls_ctx_free(srv_tls);
    tls_ctx_free(cli_tls);
    unlink(ca_file);
    rmdir(dir);
    CHECK_EQ(uv_loop_close(loop), 0); /* every handle was closed */
    TEST_MAIN_END();
}
