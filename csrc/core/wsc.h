/* wsc: a WebSocket client on a conn (TCP + TLS), as the agent's listener
 * channels and the proxy's senders use it.
 *
 * wsc_connect() dials a ws:// or wss:// URL, sends the upgrade with the
 * caller's extra headers (e.g. ServiceBusAuthorization) and checks the
 * 101 and its Sec-WebSocket-Accept. Then, in message mode, each complete
 * data message reaches on_message; in stream mode, payload bytes reach
 * on_data as they arrive, frame boundaries ignored (a rendezvous carrying
 * an HTTP byte stream). Pings are answered and a peer's close is echoed
 * here. Everything the client sends is masked, as RFC 6455 requires.
 *
 * Backpressure: a stream-mode owner calls wsc_pause() from on_data when
 * its sink is full; the rest of the input stays buffered until
 * wsc_resume(). wsc_writable() and on_drain() cover the other direction.
 * on_close() is called exactly once, last; then the object is freed. */
#ifndef CK_WSC_H
#define CK_WSC_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "conn.h"
#include "tls.h"

typedef struct wsc wsc_t;

typedef struct wsc_cbs {
    /* 0: open. Otherwise < 0; http_status is the refusal's status (or 0
     * when no response came) and reason its reason phrase. */
    void (*on_open)(wsc_t *w, int status, int http_status, const char *reason);
    void (*on_message)(wsc_t *w, int opcode, const uint8_t *data, size_t len);
    void (*on_data)(wsc_t *w, const uint8_t *data, size_t len);
    void (*on_drain)(wsc_t *w);
    /* code: the peer's close code, 1006 when the connection just ended. */
    void (*on_close)(wsc_t *w, int code, const char *reason);
} wsc_cbs;

typedef struct wsc_opts {
    int stream;         /* stream mode (on_data) instead of messages */
    size_t max_message; /* message mode ceiling (default 64 KiB) */
    const char *sni;    /* TLS name if not the URL's host */
    struct httpc *via;  /* dial through its proxy settings (conn_connect_via); NULL: direct */
    conn_opts conn;
} wsc_opts;

/* `headers`: NULL-terminated "Name: value" strings added to the upgrade.
 * Returns NULL only for a bad URL or allocation failure. */
wsc_t *wsc_connect(uv_loop_t *loop, const char *url, tls_ctx *tls, const char *const *headers,
                   const wsc_cbs *cbs, void *data, const wsc_opts *opts);

/* Queues one data or control frame. Returns 0; -1 when the WebSocket is
 * not open (nothing happens); or another negative code when the frame
 * could not be queued whole (see conn_write), and then the connection is
 * dropped at once, since the peer cannot parse past a cut frame: on_close
 * follows with 1006. */
int wsc_send(wsc_t *w, int opcode, const void *data, size_t len);
/* wsc_send of a ping. */
int wsc_ping(wsc_t *w);
int wsc_writable(const wsc_t *w);
void wsc_pause(wsc_t *w);
void wsc_resume(wsc_t *w);
/* Sends a close frame, flushes what is queued and ends the connection
 * (without waiting for the peer's echo). */
void wsc_close(wsc_t *w, int code, const char *reason);
/* Drops the connection at once. */
void wsc_abort(wsc_t *w);

void *wsc_data(const wsc_t *w);
void wsc_set_data(wsc_t *w, void *data);
/* Hands the connection to another owner (a pooled sender becoming a
 * stream): callbacks and data change together, between events. */
void wsc_set_cbs(wsc_t *w, const wsc_cbs *cbs);
/* Milliseconds since anything arrived (for dead-peer detection). */
uint64_t wsc_idle_ms(const wsc_t *w);
const char *wsc_error(const wsc_t *w);

#endif
