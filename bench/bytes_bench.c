/* bytes_bench: the shared bulk byte path in one process, for instruction
 * counts under callgrind.
 *
 * The real core pieces the proxy, arc-hub and the agent use, on loopback
 * TCP with TLS on every hop: a sender WebSocket (wsc, as the proxy opens
 * it) pushes N MiB of binary messages to the hub's relay (relay.c, as
 * arc-hub runs it), which splices them frame by frame to the listener's
 * rendezvous WebSocket (wsc in stream mode, as the agent opens it). Every
 * byte is masked once, encrypted twice and decrypted twice, which is the
 * crypto the path cannot avoid; everything else is what this measures.
 *
 *   bytes_bench MIB [MSG_KIB [text]]
 *     MSG_KIB: size of each wsc_send (64); "text": ASCII text messages,
 *     which the relay checks for UTF-8, instead of binary ones
 *
 * Run it twice with different sizes and subtract: the difference divided
 * by the MiB between them is the steady-state cost per MiB, without the
 * handshakes and key generation (bench/bytes does exactly that). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cert.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "relay.h"
#include "sas.h"
#include "tls.h"
#include "url.h"
#include "ws.h"
#include "wsc.h"

static uv_loop_t *loop;
static relay_t *relay;
static uv_tcp_t srv;
static int port;
static tls_ctx *srv_tls, *cli_tls;
static char token[SAS_MAX_TOKEN + 64];
static wsc_t *ctl, *snd, *rdv;
static uint64_t total, sent, got;
static size_t msg_size;
static int opcode = WS_OP_BINARY;
static uint8_t *payload;
static int failed;

/* ---- the hub's front door, reduced to what relay_handle needs ---------- */

uint64_t hub_now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static size_t discard(conn_t *c, uint8_t *d, size_t n)
{
    (void)c, (void)d;
    return n;
}
const conn_cbs hub_answered_cbs = {.on_data = discard};

void hub_reply(conn_t *c, int status, const char *reason, const char *ctype, const char *body)
{
    char head[512];
    size_t bl = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                     status, reason ? reason : "", ctype, bl);
    (void)conn_write2(c, head, (size_t)n, body, bl);
    conn_close(c, 1);
}

static size_t front_data(conn_t *c, uint8_t *d, size_t n)
{
    http_request req;
    int rc = http_parse_request((const char *)d, n, 0, NULL, &req);
    if (rc == HTTP_INCOMPLETE)
        return 0;
    url_slice path, query;
    url_split_target(req.target, req.target_len, &path, &query);
    if (rc < 0 || path.n <= 5 || memcmp(path.p, "/$hc/", 5) != 0) {
        conn_close(c, 0);
        return n;
    }
    conn_set_cbs(c, &hub_answered_cbs);
    relay_handle(relay, c, &req, (url_slice){path.p + 5, path.n - 5}, query);
    return n;
}
static const conn_cbs front_cbs = {.on_data = front_data};

static void on_front(uv_stream_t *s, int status)
{
    if (status == 0)
        (void)conn_accept(s, srv_tls, &front_cbs, NULL, NULL);
}

/* ---- the three WebSockets ------------------------------------------------ */

static void finish(void)
{
    if (snd)
        wsc_abort(snd);
    if (rdv)
        wsc_abort(rdv);
    if (ctl)
        wsc_abort(ctl);
    snd = rdv = ctl = NULL;
    uv_close((uv_handle_t *)&srv, NULL);
}

static void pump(void)
{
    while (snd && sent < total && wsc_writable(snd)) {
        size_t n = total - sent < msg_size ? (size_t)(total - sent) : msg_size;
        if (wsc_send(snd, opcode, payload, n) < 0) {
            failed = 1;
            return;
        }
        sent += n;
    }
}

static void snd_open(wsc_t *w, int status, int http_status, const char *reason)
{
    (void)w;
    if (status < 0) {
        fprintf(stderr, "sender: %d %s\n", http_status, reason ? reason : "");
        failed = 1;
        finish();
        return;
    }
    pump();
}

static void snd_drain(wsc_t *w)
{
    (void)w;
    pump();
}

static void any_close(wsc_t *w, int code, const char *reason)
{
    if (w == snd)
        snd = NULL;
    if (w == rdv)
        rdv = NULL;
    if (w == ctl)
        ctl = NULL;
    if (got < total) {
        fprintf(stderr, "closed early (%d %s) after %llu bytes\n", code, reason ? reason : "",
                (unsigned long long)got);
        failed = 1;
        finish();
    }
}

static void rdv_data(wsc_t *w, const uint8_t *d, size_t n)
{
    (void)w;
    /* Touch the bytes, as a reader would: the check also proves the path
     * delivered them unmasked and in order. */
    for (size_t i = 0; i < n; i += 4096) {
        if (d[i] != payload[(got + i) % msg_size]) {
            fprintf(stderr, "payload mismatch at %llu\n", (unsigned long long)(got + i));
            failed = 1;
            finish();
            return;
        }
    }
    got += n;
    if (got >= total)
        finish();
}

static void rdv_open(wsc_t *w, int status, int http_status, const char *reason)
{
    (void)w;
    if (status < 0) {
        fprintf(stderr, "rendezvous: %d %s\n", http_status, reason ? reason : "");
        failed = 1;
        finish();
    }
}

static const wsc_cbs snd_cbs = {.on_open = snd_open, .on_drain = snd_drain, .on_close = any_close};
static const wsc_cbs rdv_cbs = {.on_open = rdv_open, .on_data = rdv_data, .on_close = any_close};

static void ctl_message(wsc_t *w, int op, const uint8_t *data, size_t len)
{
    (void)w;
    if (op != WS_OP_TEXT)
        return;
    cJSON *m = cJSON_ParseWithLength((const char *)data, len);
    const cJSON *addr =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "accept"), "address");
    if (cJSON_IsString(addr)) {
        wsc_opts o = {.stream = 1, .conn = conn_default_opts};
        rdv = wsc_connect(loop, addr->valuestring, cli_tls, NULL, &rdv_cbs, NULL, &o);
    }
    cJSON_Delete(m);
}

static void ctl_open(wsc_t *w, int status, int http_status, const char *reason)
{
    (void)w;
    if (status < 0) {
        fprintf(stderr, "listener: %d %s\n", http_status, reason ? reason : "");
        failed = 1;
        finish();
    }
}

static const wsc_cbs ctl_cbs = {.on_open = ctl_open, .on_message = ctl_message, .on_close = any_close};

static int make_tls(void)
{
    char err[CERT_ERRLEN], terr[TLS_ERRLEN];
    EVP_PKEY *cak, *k;
    X509 *ca, *crt;
    if (cert_make_ca("bench CA", 1, &cak, &ca, err) < 0 ||
        cert_make_leaf(cak, ca, "127.0.0.1", "IP:127.0.0.1", 1, 1, &k, &crt, err) < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    char *cp = cert_pem(crt), *kp = cert_key_pem(k);
    srv_tls = tls_server_ctx_mem(cp, kp, NULL, terr);
    free(cp);
    free(kp);
    char capath[] = "/tmp/ck-bench-ca-XXXXXX";
    int fd = mkstemp(capath);
    if (fd < 0)
        return -1;
    close(fd);
    if (!srv_tls || cert_write_pem(capath, ca, NULL, err) < 0)
        return -1;
    cli_tls = tls_client_ctx(capath, NULL, NULL, terr);
    unlink(capath);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(k);
    X509_free(ca);
    X509_free(crt);
    return cli_tls ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bytes_bench MIB [MSG_KIB [text]]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    total = (uint64_t)strtoull(argv[1], NULL, 10) << 20;
    msg_size = (argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 64) << 10;
    payload = malloc(msg_size);
    if (!payload || msg_size == 0)
        return 2;
    if (argc > 3 && strcmp(argv[3], "text") == 0)
        opcode = WS_OP_TEXT;
    for (size_t i = 0; i < msg_size; i++)
        payload[i] = opcode == WS_OP_TEXT ? (uint8_t)('a' + i % 26) : (uint8_t)(i * 131 + 7);
    int devnull = open("/dev/null", 1);
    log_set_fd(devnull);
    if (make_tls() < 0) {
        fprintf(stderr, "cannot make TLS contexts\n");
        return 1;
    }
    loop = uv_default_loop();
    relay_opts ro = relay_default_opts;
    relay = relay_new(loop, &ro);
    sas_rule rule = {"root", "rootkey-0123456789abcdef0123", SAS_RIGHT_LISTEN | SAS_RIGHT_SEND};
    if (!relay || relay_add_hc(relay, "hyco", &rule, 1) != 0)
        return 1;
    char err[128];
    if (conn_listen(loop, &srv, "127.0.0.1", 0, on_front, err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    port = conn_bound_port(&srv);
    char tok[SAS_MAX_TOKEN];
    if (sas_create("http://127.0.0.1/hyco", "root", rule.key, (int64_t)time(NULL) + 600, tok, sizeof tok) <=
        0)
        return 1;
    snprintf(token, sizeof token, "ServiceBusAuthorization: %s", tok);
    const char *hdrs[] = {token, NULL};
    char url[256];
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/$hc/hyco?sb-hc-action=listen", port);
    wsc_opts mo = {.conn = conn_default_opts};
    ctl = wsc_connect(loop, url, cli_tls, hdrs, &ctl_cbs, NULL, &mo);
    while (!failed && relay_listeners(relay, "hyco") < 1)
        uv_run(loop, UV_RUN_ONCE);
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/$hc/hyco?sb-hc-action=connect", port);
    wsc_opts so = {.stream = 1, .conn = conn_default_opts};
    snd = wsc_connect(loop, url, cli_tls, hdrs, &snd_cbs, NULL, &so);
    uv_run(loop, UV_RUN_DEFAULT);
    relay_free(relay);
    tls_ctx_free(srv_tls);
    tls_ctx_free(cli_tls);
    free(payload);
    printf("bytes_bench: %llu MiB in %zu KiB messages: %s\n", (unsigned long long)(got >> 20), msg_size >> 10,
           failed || got < total ? "FAILED" : "ok");
    return failed || got < total ? 1 : 0;
}
