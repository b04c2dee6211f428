/* wsc: WebSocket client. See wsc.h. */
#include "wsc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc.h"
#include "http.h"
#include "url.h"
#include "ws.h"

enum { W_HANDSHAKE, W_OPEN, W_CLOSING, W_DONE };

#define MAX_REQUEST 8192

struct wsc {
    conn_t *c;
    const wsc_cbs *cbs;
    void *data;
    wsc_opts o;
    int state;
    int paused;
    int opened;
    int close_code;
    char close_reason[124];
    char key[25];
    size_t last_len;
    ws_dec dec; /* stream mode */
    ws_msg msg; /* message mode */
    uint8_t ctl[125];
    size_t ctl_len;
    uint64_t last_rx;
    char err[256];
    char *request;
    size_t request_len;
};

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* Queues one masked frame in chunks. Returns 0 or a negative code; a
 * failure after the first chunk leaves a cut frame queued. */
static int send_frame(wsc_t *w, int opcode, const void *data, size_t len)
{
    uint8_t mask[4], hdr[14];
    if (enc_random(mask, sizeof mask) < 0)
        return UV_EIO;
    size_t hl = ws_header(hdr, 1, opcode, len, mask);
    uint8_t chunk[16384];
    size_t off = 0;
    int first = 1;
    do {
        size_t n = len - off < sizeof chunk ? len - off : sizeof chunk;
        if (n)
            memcpy(chunk, (const uint8_t *)data + off, n);
        ws_mask(chunk, n, mask, off);
        int rc = first ? conn_write2(w->c, hdr, hl, chunk, n) : conn_write(w->c, chunk, n);
        if (rc < 0)
            return rc;
        first = 0;
        off += n;
    } while (off < len);
    return 0;
}

/* A frame could not be queued whole. The peer cannot find the next frame
 * after a cut one, so the connection is dropped at once; on_close reports
 * 1006 and why. */
static void write_failed(wsc_t *w, int rc)
{
    w->state = W_DONE;
    w->close_code = 1006;
    snprintf(w->close_reason, sizeof w->close_reason, "cannot write to the WebSocket: %s",
             conn_error(w->c, rc));
    conn_close(w->c, 0);
}

int wsc_send(wsc_t *w, int opcode, const void *data, size_t len)
{
    if (w->state != W_OPEN)
        return -1;
    int rc = send_frame(w, opcode, data, len);
    if (rc < 0)
        write_failed(w, rc);
    return rc;
}

int wsc_ping(wsc_t *w)
{
    return wsc_send(w, WS_OP_PING, "ck", 2);
}

int wsc_writable(const wsc_t *w)
{
    return w->state == W_OPEN && conn_writable(w->c);
}

static void handle_control(wsc_t *w, int op, const uint8_t *p, size_t n)
{
    if (op == WS_OP_PING) {
        if (w->state == W_OPEN)
            (void)wsc_send(w, WS_OP_PONG, p, n); /* a failure drops the connection */
    } else if (op == WS_OP_CLOSE) {
        w->close_code = n >= 2 ? (p[0] << 8 | p[1]) : 1005;
        snprintf(w->close_reason, sizeof w->close_reason, "%.*s", n > 2 ? (int)(n - 2) : 0,
                 (const char *)p + 2);
        if (w->state == W_OPEN) { /* echo, then finish; best effort, as it closes anyway */
            uint8_t cp[125];
            size_t cl = ws_close_payload(cp, w->close_code == 1005 ? 1000 : w->close_code, NULL);
            (void)send_frame(w, WS_OP_CLOSE, cp, cl);
        }
        w->state = W_DONE;
        conn_close(w->c, 1);
    }
}

static int msg_cb(void *ud, int op, const uint8_t *data, size_t len)
{
    wsc_t *w = ud;
    if (op >= 8) {
        handle_control(w, op, data, len);
        return w->state == W_DONE ? 1 : 0;
    }
    if (w->cbs->on_message)
        w->cbs->on_message(w, op, data, len);
    return w->state == W_OPEN ? 0 : 1;
}

static void protocol_error(wsc_t *w, int code)
{
    uint8_t cp[125];
    size_t cl = ws_close_payload(cp, code, "protocol error");
    (void)send_frame(w, WS_OP_CLOSE, cp, cl); /* best effort: closing anyway */
    w->close_code = 1006;
    snprintf(w->close_reason, sizeof w->close_reason, "protocol error from the server (%d)", code);
    w->state = W_DONE;
    conn_close(w->c, 1);
}

static size_t stream_data(wsc_t *w, uint8_t *data, size_t len)
{
    size_t off = 0;
    while (w->state == W_OPEN && !w->paused) {
        ws_ev ev;
        long n = ws_dec_step(&w->dec, data + off, len - off, &ev);
        if (n < 0) {
            protocol_error(w, (int)-n);
            return len;
        }
        off += (size_t)n;
        if (ev.type == WS_EV_NONE)
            break;
        int op = w->dec.f.opcode;
        if (ev.type == WS_EV_HEADER && op >= 8)
            w->ctl_len = 0;
        else if (ev.type == WS_EV_DATA && op >= 8) {
            memcpy(w->ctl + w->ctl_len, ev.data, ev.len);
            w->ctl_len += ev.len;
        } else if (ev.type == WS_EV_DATA && w->cbs->on_data)
            w->cbs->on_data(w, ev.data, ev.len);
        else if (ev.type == WS_EV_END && op >= 8)
            handle_control(w, op, w->ctl, w->ctl_len);
    }
    return w->state == W_OPEN ? off : len;
}

static void fail_open(wsc_t *w, int status, int http_status, const char *reason)
{
    w->state = W_DONE;
    snprintf(w->err, sizeof w->err, "%s", reason);
    if (w->cbs->on_open && !w->opened) {
        w->opened = 1;
        w->cbs->on_open(w, status, http_status, reason);
    }
    conn_close(w->c, 0);
}

static size_t on_data(conn_t *c, uint8_t *data, size_t len)
{
    wsc_t *w = conn_data(c);
    w->last_rx = now_ms();
    if (w->state == W_HANDSHAKE) {
        http_response res;
        int rc = http_parse_response((const char *)data, len, w->last_len, NULL, &res);
        if (rc == HTTP_INCOMPLETE) {
            w->last_len = len;
            return 0;
        }
        if (rc < 0) {
            fail_open(w, -1, 0, "malformed HTTP response to the WebSocket upgrade");
            return len;
        }
        if (res.status != 101) {
            char reason[160];
            snprintf(reason, sizeof reason, "%.*s", (int)res.reason_len, res.reason);
            fail_open(w, -1, res.status, reason);
            return len;
        }
        const http_header *acc = http_find(res.headers, res.nheaders, "Sec-WebSocket-Accept");
        char want[29];
        ws_accept_key(w->key, 24, want);
        if (!acc || !http_eq(acc->value, acc->value_len, want)) {
            fail_open(w, -1, 101, "bad Sec-WebSocket-Accept");
            return len;
        }
        w->state = W_OPEN;
        w->opened = 1;
        if (w->cbs->on_open)
            w->cbs->on_open(w, 0, 101, "Switching Protocols");
        return (size_t)rc;
    }
    if (w->state != W_OPEN && w->state != W_CLOSING)
        return len;
    if (w->o.stream)
        return stream_data(w, data, len);
    long n = ws_msg_feed(&w->msg, data, len, msg_cb, w);
    if (n < 0) {
        protocol_error(w, (int)-n);
        return len;
    }
    return w->state == W_OPEN || w->state == W_CLOSING ? (size_t)n : len;
}

static void on_drain(conn_t *c)
{
    wsc_t *w = conn_data(c);
    if (w->state == W_OPEN && w->cbs->on_drain)
        w->cbs->on_drain(w);
}

static void on_connect(conn_t *c, int status)
{
    wsc_t *w = conn_data(c);
    if (status < 0) {
        snprintf(w->err, sizeof w->err, "%s", conn_error(c, status));
        if (w->cbs->on_open && !w->opened) {
            w->opened = 1;
            w->cbs->on_open(w, status, 0, w->err);
        }
        w->state = W_DONE;
        return;
    }
    int rc = conn_write(c, w->request, w->request_len);
    free(w->request);
    w->request = NULL;
    if (rc < 0)
        fail_open(w, rc, 0, "cannot send the WebSocket upgrade request");
}

static void on_close(conn_t *c, int err)
{
    wsc_t *w = conn_data(c);
    if (!w->opened && w->cbs->on_open) {
        w->opened = 1;
        w->cbs->on_open(w, err ? err : -1, 0, conn_error(c, err));
    } else if (w->cbs->on_close) {
        if (!w->close_code) {
            w->close_code = 1006;
            snprintf(w->close_reason, sizeof w->close_reason, "%s", conn_error(c, err));
        }
        w->cbs->on_close(w, w->close_code, w->close_reason);
    }
    ws_msg_free(&w->msg);
    free(w->request);
    free(w);
}

static const conn_cbs wsc_conn_cbs = {
    .on_data = on_data,
    .on_drain = on_drain,
    .on_connect = on_connect,
    .on_close = on_close,
};

wsc_t *wsc_connect(uv_loop_t *loop, const char *url, tls_ctx *tls, const char *const *headers,
                   const wsc_cbs *cbs, void *data, const wsc_opts *opts)
{
    url_parts u;
    if (url_parse(url, strlen(url), &u) < 0)
        return NULL;
    int secure = u.scheme.n == 3 && memcmp(u.scheme.p, "wss", 3) == 0;
    if (!secure && !(u.scheme.n == 2 && memcmp(u.scheme.p, "ws", 2) == 0))
        return NULL;
    if (secure && !tls)
        return NULL;
    wsc_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->cbs = cbs;
    w->data = data;
    if (opts)
        w->o = *opts;
    else
        w->o.conn = conn_default_opts;
    if (!w->o.max_message)
        w->o.max_message = 64 * 1024;
    if (!w->o.conn.in_max)
        w->o.conn = conn_default_opts;
    ws_dec_init(&w->dec, WS_ROLE_CLIENT, (uint64_t)1 << 40);
    ws_msg_init(&w->msg, WS_ROLE_CLIENT, w->o.max_message);
    w->last_rx = now_ms();
    char host[256];
    if (u.host.n >= sizeof host || ws_client_key(w->key) < 0) {
        ws_msg_free(&w->msg);
        free(w);
        return NULL;
    }
    memcpy(host, u.host.p, u.host.n);
    host[u.host.n] = '\0';
    w->request = malloc(MAX_REQUEST);
    if (!w->request) {
        ws_msg_free(&w->msg);
        free(w);
        return NULL;
    }
    int n = snprintf(w->request, MAX_REQUEST,
                     "GET %.*s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
                     u.path_query.n ? (int)u.path_query.n : 1, u.path_query.n ? u.path_query.p : "/", host,
                     u.port, w->key);
    for (const char *const *h = headers; h && *h && n > 0 && n < MAX_REQUEST; h++)
        n += snprintf(w->request + n, MAX_REQUEST - (size_t)n, "%s\r\n", *h);
    if (n > 0 && n < MAX_REQUEST - 2)
        n += snprintf(w->request + n, MAX_REQUEST - (size_t)n, "\r\n");
    if (n <= 0 || n >= MAX_REQUEST) {
        free(w->request);
        ws_msg_free(&w->msg);
        free(w);
        return NULL;
    }
    w->request_len = (size_t)n;
    w->c = conn_connect_via(loop, w->o.via, host, u.port, secure ? tls : NULL, w->o.sni, &wsc_conn_cbs, w,
                            &w->o.conn);
    if (!w->c) {
        free(w->request);
        ws_msg_free(&w->msg);
        free(w);
        return NULL;
    }
    return w;
}

void wsc_pause(wsc_t *w)
{
    w->paused = 1;
    conn_pause(w->c);
}

void wsc_resume(wsc_t *w)
{
    w->paused = 0;
    conn_resume(w->c);
}

void wsc_close(wsc_t *w, int code, const char *reason)
{
    if (w->state != W_OPEN) {
        if (w->state == W_HANDSHAKE)
            conn_close(w->c, 0);
        return;
    }
    uint8_t cp[125];
    size_t cl = ws_close_payload(cp, code, reason);
    (void)send_frame(w, WS_OP_CLOSE, cp, cl); /* best effort: the close below ends it either way */
    w->state = W_CLOSING;
    w->close_code = code;
    conn_close(w->c, 1);
}

void wsc_abort(wsc_t *w)
{
    w->state = W_DONE;
    conn_close(w->c, 0);
}

void *wsc_data(const wsc_t *w)
{
    return w->data;
}
void wsc_set_data(wsc_t *w, void *data)
{
    w->data = data;
}
void wsc_set_cbs(wsc_t *w, const wsc_cbs *cbs)
{
    w->cbs = cbs;
}
uint64_t wsc_idle_ms(const wsc_t *w)
{
    return now_ms() - w->last_rx;
}
const char *wsc_error(const wsc_t *w)
{
    return w->err[0] ? w->err : "closed";
}
