/* Unit tests for wsc: the client against a small in-process WebSocket
 * server (built from conn, http and ws) on loopback. */
#include "check.h"
#include "conn.h"
#include "http.h"
#include "ws.h"
#include "wsc.h"

static int tests_run;
static uv_loop_t *loop;
static uv_tcp_t srv;
static int srv_port;

/* ---- the test server: refuses /deny, otherwise echoes messages; a text
 * "ping-me" makes it send a ping, "bye" makes it close with 4000. ------ */

typedef struct {
    int upgraded;
    ws_msg msg;
    conn_t *c;
} peer;

static void srv_send(conn_t *c, int op, const void *p, size_t n)
{
    uint8_t h[14];
    size_t hl = ws_header(h, 1, op, n, NULL);
    conn_write2(c, h, hl, p, n);
}

static int srv_msg(void *ud, int op, const uint8_t *d, size_t n)
{
    peer *p = ud;
    if (op == WS_OP_CLOSE) {
        srv_send(p->c, WS_OP_CLOSE, d, n);
        conn_close(p->c, 1);
        return 1;
    }
    if (op == WS_OP_PONG) {
        srv_send(p->c, WS_OP_TEXT, "got pong", 8);
        return 0;
    }
    if (op >= 8)
        return 0;
    if (n == 7 && memcmp(d, "ping-me", 7) == 0) {
        srv_send(p->c, WS_OP_PING, "x", 1);
        return 0;
    }
    if (n == 3 && memcmp(d, "bye", 3) == 0) {
        uint8_t cp[125];
        srv_send(p->c, WS_OP_CLOSE, cp, ws_close_payload(cp, 4000, "done"));
        return 0;
    }
    srv_send(p->c, op, d, n);
    return 0;
}

static size_t srv_data(conn_t *c, uint8_t *d, size_t n)
{
    peer *p = conn_data(c);
    if (!p->upgraded) {
        http_request req;
        int rc = http_parse_request((const char *)d, n, 0, NULL, &req);
        if (rc == HTTP_INCOMPLETE)
            return 0;
        CHECK(rc > 0);
        if (req.target_len == 5 && memcmp(req.target, "/deny", 5) == 0) {
            const char *r = "HTTP/1.1 403 Nope\r\nContent-Length: 0\r\n\r\n";
            conn_write(c, r, strlen(r));
            conn_close(c, 1);
            return n;
        }
        const http_header *k = http_find(req.headers, req.nheaders, "Sec-WebSocket-Key");
        const http_header *x = http_find(req.headers, req.nheaders, "X-Extra");
        CHECK(k && x && http_eq(x->value, x->value_len, "yes"));
        char acc[29], resp[256];
        CHECK_EQ(ws_accept_key(k->value, k->value_len, acc), 0);
        int l = snprintf(resp, sizeof resp,
                         "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Accept: %s\r\n\r\n",
                         acc);
        conn_write(c, resp, (size_t)l);
        p->upgraded = 1;
        return (size_t)rc;
    }
    long r = ws_msg_feed(&p->msg, d, n, srv_msg, p);
    CHECK(r >= 0); /* the client's frames are always well-formed and masked */
    return (size_t)r;
}

static void srv_close(conn_t *c, int err)
{
    (void)err;
    peer *p = conn_data(c);
    ws_msg_free(&p->msg);
    free(p);
}
static const conn_cbs srv_cbs = {.on_data = srv_data, .on_close = srv_close};

static void on_srv_conn(uv_stream_t *s, int status)
{
    CHECK_EQ(status, 0);
    peer *p = calloc(1, sizeof *p);
    ws_msg_init(&p->msg, WS_ROLE_SERVER, 1 << 22);
    p->c = conn_accept(s, NULL, &srv_cbs, p, NULL);
}

/* ---- client side -------------------------------------------------------- */

static int opened, open_http, closed_code, got_echo, got_big, got_pong;
static char close_reason[128];
static uint8_t *big;
#define BIG (1 << 20)

static void c_open(wsc_t *w, int status, int http_status, const char *reason)
{
    (void)reason;
    opened = status == 0 ? 1 : -1;
    open_http = http_status;
    if (status == 0)
        CHECK_EQ(wsc_send(w, WS_OP_TEXT, "hello", 5), 0);
}
static void c_message(wsc_t *w, int op, const uint8_t *d, size_t n)
{
    if (op == WS_OP_TEXT && n == 5 && memcmp(d, "hello", 5) == 0) {
        got_echo = 1;
        CHECK_EQ(wsc_send(w, WS_OP_BINARY, big, BIG), 0);
    } else if (op == WS_OP_BINARY && n == BIG && memcmp(d, big, BIG) == 0) {
        got_big = 1;
        wsc_send(w, WS_OP_TEXT, "ping-me", 7);
    } else if (op == WS_OP_TEXT && n == 8 && memcmp(d, "got pong", 8) == 0) {
        got_pong = 1; /* the client answered the server's ping by itself */
        wsc_send(w, WS_OP_TEXT, "bye", 3);
    }
}
static void c_close(wsc_t *w, int code, const char *reason)
{
    (void)w;
    closed_code = code;
    snprintf(close_reason, sizeof close_reason, "%s", reason);
    uv_close((uv_handle_t *)&srv, NULL);
}
static const wsc_cbs ccbs = {.on_open = c_open, .on_message = c_message, .on_close = c_close};

static void conversation(void)
{
    char err[128];
    loop = uv_default_loop();
    CHECK_EQ(conn_listen(loop, &srv, "127.0.0.1", 0, on_srv_conn, err), 0);
    srv_port = conn_bound_port(&srv);
    big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (uint8_t)(i * 31);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/chat?x=1", srv_port);
    const char *hdrs[] = {"X-Extra: yes", NULL};
    wsc_opts o = {.max_message = 2 * BIG, .conn = conn_default_opts};
    CHECK(wsc_connect(loop, url, NULL, hdrs, &ccbs, NULL, &o) != NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_EQ(opened, 1);
    CHECK(got_echo && got_big && got_pong);
    CHECK_EQ(closed_code, 4000);
    CHECK_STR(close_reason, "done");
    free(big);
}

static void refused(void)
{
    char err[128], url[64];
    CHECK_EQ(conn_listen(loop, &srv, "127.0.0.1", 0, on_srv_conn, err), 0);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/deny", conn_bound_port(&srv));
    opened = 0;
    static const wsc_cbs rc = {.on_open = c_open};
    CHECK(wsc_connect(loop, url, NULL, NULL, &rc, NULL, NULL) != NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    for (int i = 0; i < 200 && !opened; i++)
        uv_run(loop, UV_RUN_ONCE);
    CHECK_EQ(opened, -1);
    CHECK_EQ(open_http, 403);
    uv_close((uv_handle_t *)&srv, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(wsc_connect(loop, "http://x/", NULL, NULL, &rc, NULL, NULL) == NULL); /* not ws:// */
    CHECK(wsc_connect(loop, "wss://x/", NULL, NULL, &rc, NULL, NULL) == NULL);  /* wss needs TLS */
}

int main(void)
{
    TEST(conversation);
    TEST(refused);
    CHECK_EQ(uv_loop_close(loop), 0);
    TEST_MAIN_END();
}
