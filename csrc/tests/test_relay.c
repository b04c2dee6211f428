/* Unit tests for relay: the hub's relay on a loopback socket, driven by raw
 * conn clients, with a front door reduced to what relay_handle needs
 * (replies come from api.c, linked in as the hub links it).
 *
 * A spliced stream whose listener side stops reading: once that side's
 * queue would pass out_max, the write fails (conn.h: -ENOBUFS), and the
 * splice must end on both sides, the sender with a close frame, instead
 * of dropping the payload and carrying on. */
#include <fcntl.h>
#include <signal.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "conn.h"
#include "api.h"
#include "log.h"
#include "relay.h"
#include "sas.h"
#include "ws.h"

static int tests_run;
static uv_loop_t *loop;
static relay_t *relay;
static uv_tcp_t srv;
static int port;

/* Hands each request head to the relay, as hub.c does for /$hc/. */
static size_t front_data(conn_t *c, uint8_t *d, size_t n)
{
    http_request req;
    int rc = http_parse_request((const char *)d, n, 0, NULL, &req);
    if (rc == HTTP_INCOMPLETE)
        return 0;
    CHECK(rc > 0);
    url_slice path, query;
    url_split_target(req.target, req.target_len, &path, &query);
    CHECK(path.n > 5 && memcmp(path.p, "/$hc/", 5) == 0);
    conn_set_cbs(c, &api_answered_cbs);
    relay_handle(relay, c, &req, (url_slice){path.p + 5, path.n - 5}, query);
    return n;
}
static const conn_cbs front_cbs = {.on_data = front_data};

/* The relay's side of every connection: a small out_max under a high
 * water mark it never reaches, so a listener that stops reading turns
 * into a failed write rather than backpressure. */
static const conn_opts hub_side = {.in_max = 64 * 1024,
                                   .high_water = 64 * 1024 * 1024,
                                   .low_water = 64 * 1024,
                                   .out_max = 256 * 1024,
                                   .handshake_ms = 10000};

static void on_front(uv_stream_t *s, int status)
{
    CHECK_EQ(status, 0);
    CHECK(conn_accept(s, NULL, &front_cbs, NULL, &hub_side) != NULL);
}

/* ---- clients --------------------------------------------------------------- */

typedef struct client {
    const char *name;
    conn_t *c;
    char request[4096];
    size_t request_len;
    int status; /* of the upgrade's answer */
    int raw;    /* after the 101, count bytes instead of reading frames */
    ws_msg msg;
    int close_code; /* of a close frame received */
    char close_reason[125];
    uint64_t bytes; /* raw bytes received after the 101 */
    int closed;
} client;

static client ctl, rdv, snd;
static const char ws_key[] = "dGhlIHNhbXBsZSBub25jZQ==";
#define TOTAL ((uint64_t)256 << 20) /* far more than loopback socket buffers hold */
static uint8_t zeros[65536];
static uint64_t snd_sent;
static uv_timer_t guard;

static void upgrade(client *cl, const char *query, const char *token)
{
    int n = snprintf(
        cl->request, sizeof cl->request,
        "GET /$hc/hyco?%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s%s%s\r\n",
        query, port, ws_key, token ? "ServiceBusAuthorization: " : "", token ? token : "",
        token ? "\r\n" : "");
    CHECK(n > 0 && (size_t)n < sizeof cl->request);
    cl->request_len = (size_t)n;
}

static void pump(void)
{
    while (snd_sent < TOTAL && conn_is_open(snd.c) && conn_writable(snd.c)) {
        size_t n = TOTAL - snd_sent < sizeof zeros ? (size_t)(TOTAL - snd_sent) : sizeof zeros;
        if (conn_write(snd.c, zeros, n) < 0)
            break;
        snd_sent += n;
    }
}

static const conn_cbs client_cbs;

static void start(client *cl, const char *name)
{
    cl->name = name;
    ws_msg_init(&cl->msg, WS_ROLE_CLIENT, 64 * 1024);
    cl->c = conn_connect(loop, "127.0.0.1", port, NULL, NULL, &client_cbs, cl, NULL);
    CHECK(cl->c != NULL);
}

static int on_message(void *ud, int op, const uint8_t *data, size_t len)
{
    client *cl = ud;
    if (op == WS_OP_CLOSE) {
        cl->close_code = len >= 2 ? data[0] << 8 | data[1] : 1005;
        snprintf(cl->close_reason, sizeof cl->close_reason, "%.*s", len > 2 ? (int)len - 2 : 0,
                 (const char *)data + 2);
        if (cl == &snd) {
            /* The stream is over: stop sending, then let the paused
             * listener side read what reached it, up to the relay's close. */
            conn_close(snd.c, 0);
            conn_resume(rdv.c);
        }
        return 1;
    }
    if (cl == &ctl && op == WS_OP_TEXT) {
        /* The accept message: take the rendezvous. */
        cJSON *m = cJSON_ParseWithLength((const char *)data, len);
        const cJSON *id =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "accept"), "id");
        CHECK(cJSON_IsString(id));
        char q[128];
        snprintf(q, sizeof q, "sb-hc-action=accept&sb-hc-id=%s", id->valuestring);
        upgrade(&rdv, q, NULL);
        rdv.raw = 1;
        start(&rdv, "rendezvous");
        cJSON_Delete(m);
    }
    return 0;
}

static size_t client_data(conn_t *c, uint8_t *d, size_t n)
{
    client *cl = conn_data(c);
    if (!cl->status) {
        http_response res;
        int rc = http_parse_response((const char *)d, n, 0, NULL, &res);
        if (rc == HTTP_INCOMPLETE)
            return 0;
        CHECK(rc > 0);
        cl->status = res.status;
        CHECK_EQ(res.status, 101);
        if (cl == &rdv)
            conn_pause(c); /* the listener side stops reading */
        if (cl == &snd) {
            uint8_t h[14], mask[4] = {0}; /* masked, with a key that changes nothing */
            size_t hl = ws_header(h, 1, WS_OP_BINARY, TOTAL, mask);
            CHECK_EQ(conn_write(c, h, hl), 0);
            pump();
        }
        return (size_t)rc;
    }
    if (cl->raw) {
        cl->bytes += n;
        return n;
    }
    long used = ws_msg_feed(&cl->msg, d, n, on_message, cl);
    CHECK(used >= 0);
    return cl->close_code ? n : (size_t)used;
}

static void client_drain(conn_t *c)
{
    if (conn_data(c) == &snd)
        pump();
}

static void client_connect(conn_t *c, int status)
{
    client *cl = conn_data(c);
    CHECK_EQ(status, 0);
    CHECK_EQ(conn_write(c, cl->request, cl->request_len), 0);
}

static void client_close(conn_t *c, int err)
{
    (void)err;
    client *cl = conn_data(c);
    cl->closed = 1;
    ws_msg_free(&cl->msg);
    if (cl != &ctl && snd.closed && rdv.closed) {
        conn_close(ctl.c, 1); /* the listener goes; the relay frees it */
    } else if (cl == &ctl) {
        uv_timer_stop(&guard);
        uv_close((uv_handle_t *)&guard, NULL);
        uv_close((uv_handle_t *)&srv, NULL);
    }
}

static const conn_cbs client_cbs = {
    .on_data = client_data, .on_drain = client_drain, .on_connect = client_connect, .on_close = client_close};

static void on_guard(uv_timer_t *t)
{
    (void)t;
    fprintf(stderr, "timed out: sender got close %d, sent %llu, listener side got %llu\n", snd.close_code,
            (unsigned long long)snd_sent, (unsigned long long)rdv.bytes);
    CHECK(0);
}

static void listener_write_fails_both_sides_close(void)
{
    char logpath[] = "/tmp/ck-relay-log-XXXXXX";
    int logfd = mkstemp(logpath);
    CHECK(logfd >= 0);
    log_set_fd(logfd);

    loop = uv_default_loop();
    relay_opts ro = relay_default_opts;
    ro.stall_ms = 0; /* the failed write must end the stream, not the stall timer */
    relay = relay_new(loop, &ro);
    CHECK(relay != NULL);
    sas_rule rule = {"root", "rootkey-0123456789abcdef0123", SAS_RIGHT_LISTEN | SAS_RIGHT_SEND};
    CHECK_EQ(relay_add_hc(relay, "hyco", &rule, 1), 0);
    char err[128];
    CHECK_EQ(conn_listen(loop, &srv, "127.0.0.1", 0, on_front, err), 0);
    port = conn_bound_port(&srv);
    uv_timer_init(loop, &guard);
    uv_timer_start(&guard, on_guard, 60000, 0);

    char tok[SAS_MAX_TOKEN];
    CHECK(sas_create("http://127.0.0.1/hyco", "root", rule.key, (int64_t)time(NULL) + 600, tok, sizeof tok) >
          0);
    upgrade(&ctl, "sb-hc-action=listen", tok);
    start(&ctl, "control");
    /* The sender goes once the control channel is registered. */
    while (relay_listeners(relay, "hyco") < 1)
        uv_run(loop, UV_RUN_ONCE);
    upgrade(&snd, "sb-hc-action=connect", tok);
    start(&snd, "sender");
    uv_run(loop, UV_RUN_DEFAULT);

    CHECK_EQ(snd.close_code, WS_CLOSE_GOING_AWAY);
    CHECK_STR(snd.close_reason, "peer unreachable");
    CHECK(snd.closed && rdv.closed && ctl.closed);
    CHECK(rdv.bytes > 0 && rdv.bytes < TOTAL); /* cut, not completed */
    static char metrics[8192];
    size_t mn = relay_metrics(relay, metrics, sizeof metrics - 1);
    metrics[mn] = '\0';
    CHECK(strstr(metrics, "arc_relay_connections_active 0\n") != NULL);
    CHECK(strstr(metrics, "arc_relay_listeners 0\n") != NULL);

    char logs[16384];
    ssize_t ln = pread(logfd, logs, sizeof logs - 1, 0);
    CHECK(ln > 0);
    logs[ln] = '\0';
    CHECK(strstr(logs, "stream.write_failed") != NULL);
    CHECK(strstr(logs, "listener") != NULL);
    log_set_fd(2);
    close(logfd);
    unlink(logpath);
    relay_free(relay);
    CHECK_EQ(uv_loop_close(loop), 0); /* every connection and handle is gone */
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    TEST(listener_write_fails_both_sides_close);
    TEST_MAIN_END();
}
