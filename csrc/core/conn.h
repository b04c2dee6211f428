/* conn: one TCP connection, optionally TLS, on a libuv loop, with bounded
 * buffers in both directions.
 *
 * Input: decrypted bytes collect in a buffer with a ceiling (in_max). The
 * owner's on_data() sees everything not yet consumed and returns how much
 * it consumed, so parsers work in place on the connection's own buffer and
 * copy nothing. When that buffer is full, or the owner calls conn_pause(),
 * the connection stops reading from the socket: TCP flow control then
 * slows the peer down. conn_resume() delivers what is buffered and reads
 * again.
 *
 * Output: conn_write() queues bytes (encrypting them first with TLS). Once
 * the queue exceeds high_water, conn_writable() is false; once it drains
 * to low_water, on_drain() fires. Owners relaying between two connections
 * pause the source while the sink is not writable, so memory per stream is
 * bounded. A write past out_max fails with -ENOBUFS rather than growing.
 * A queue that makes no progress for stall_ms closes the connection, so a
 * peer that stops reading cannot pin memory forever.
 *
 * Lifetime: the connection owns itself. After conn_close() (or any error
 * or EOF) no more on_data/on_drain calls arrive; on_close() is called
 * exactly once, last, and then the memory is freed. */
#ifndef CK_CONN_H
#define CK_CONN_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "tls.h"

typedef struct conn conn_t;

typedef struct conn_cbs {
    size_t (*on_data)(conn_t *c, uint8_t *data, size_t len);
    void (*on_drain)(conn_t *c);
    /* Client connections: TCP and TLS are up (status 0) or failed (< 0;
     * on_close follows). */
    void (*on_connect)(conn_t *c, int status);
    /* Optional: the peer finished sending and all its bytes were consumed.
     * Without it, EOF closes the connection gracefully. */
    void (*on_eof)(conn_t *c);
    /* err: 0 after a clean close, else a negative libuv code or CONN_ETLS. */
    void (*on_close)(conn_t *c, int err);
} conn_cbs;

#define CONN_ETLS (-10001)
/* The proxy refused or failed the tunnel (conn_error says how). */
#define CONN_EPROXY (-10002)

typedef struct conn_opts {
    size_t in_max;
    size_t high_water, low_water, out_max;
    unsigned stall_ms;     /* 0: no stall detection */
    unsigned handshake_ms; /* connect + TLS deadline */
} conn_opts;

/* 64 KiB in, 256 KiB/64 KiB water marks, 4 MiB hard cap, no stall
 * detection, 10 s handshake. */
extern const conn_opts conn_default_opts;

/* Accepts a pending connection on `server`. tls may be NULL (plain TCP).
 * Returns NULL on failure (the pending connection is dropped). */
conn_t *conn_accept(uv_stream_t *server, tls_ctx *tls, const conn_cbs *cbs, void *data,
                    const conn_opts *opts);
/* Starts connecting; the outcome arrives in on_connect. `sni` names the
 * server for TLS (NULL: use host). Returns NULL only on allocation
 * failure. */
conn_t *conn_connect(uv_loop_t *loop, const char *host, int port, tls_ctx *tls, const char *sni,
                     const conn_cbs *cbs, void *data, const conn_opts *opts);
/* conn_connect through the proxy that via's settings pick for host
 * (tls != NULL: the HTTPS proxy): httpc makes the CONNECT tunnel and hands
 * over the socket, then TLS runs end to end over it as with
 * conn_connect; handshake_ms covers the tunnel too. A host the skip list
 * names, or via NULL, is dialled directly. An https:// proxy is refused
 * (on_connect reports why): curl would keep the TLS session to the proxy,
 * and the socket could not carry this connection's own bytes; such
 * proxies serve httpc_request only. Returns NULL only on allocation
 * failure. */
struct httpc;
conn_t *conn_connect_via(uv_loop_t *loop, struct httpc *via, const char *host, int port, tls_ctx *tls,
                         const char *sni, const conn_cbs *cbs, void *data, const conn_opts *opts);

/* Queues n bytes. Returns 0, or a negative code: -EPIPE (closing or
 * closed), -ENOBUFS (the queue would pass out_max), -ENOMEM, a libuv
 * code, or CONN_ETLS. A failed write queued none of its bytes; when the
 * failure also broke the byte stream (TLS: the record was made but could
 * not be queued), the connection is closed too and on_close follows. An
 * owner that writes a framed stream cannot go on after a failure, since
 * the peer would miss part of it: it closes the stream. */
int conn_write(conn_t *c, const void *p, size_t n);
/* Writes two pieces as one unit (one TLS record when small): both are
 * queued or neither. Returns as conn_write. */
int conn_write2(conn_t *c, const void *a, size_t an, const void *b, size_t bn);
int conn_writable(const conn_t *c);
size_t conn_queued(const conn_t *c);

void conn_pause(conn_t *c);
void conn_resume(conn_t *c);
/* graceful: flush queued output, send close_notify and FIN, then close.
 * Otherwise drop at once. */
void conn_close(conn_t *c, int graceful);
int conn_is_open(const conn_t *c);

void *conn_data(const conn_t *c);
void conn_set_data(conn_t *c, void *data);
void conn_set_cbs(conn_t *c, const conn_cbs *cbs);
void conn_set_stall(conn_t *c, unsigned ms);
/* "ip:port" of the peer. */
const char *conn_peer(const conn_t *c);
/* The peer's IP and port separately. */
const char *conn_peer_ip(const conn_t *c);
int conn_peer_port(const conn_t *c);
/* Sentence describing why the connection failed (TLS or socket). */
const char *conn_error(const conn_t *c, int err);
/* The TLS session (NULL for plain TCP). */
tls_sess *conn_tls(const conn_t *c);
uint64_t conn_bytes_in(const conn_t *c);
uint64_t conn_bytes_out(const conn_t *c);

/* Binds and listens on `host`, an IPv4 or IPv6 address literal (names are
 * not resolved); port 0 picks a free one (conn_bound_port tells).
 *
 * Handle contract: conn_listen initialises `srv` before anything can fail,
 * so whatever it returns, `srv` is a live handle that the caller owns and
 * must uv_close() (and let the loop run before freeing its memory), after a
 * failure as after use. This is libuv's own rule for a handle whose bind
 * failed. Returns 0, or a negative libuv code with a sentence in err. */
int conn_listen(uv_loop_t *loop, uv_tcp_t *srv, const char *host, int port, uv_connection_cb cb,
                char err[128]);
int conn_bound_port(uv_tcp_t *srv);

/* Splits a listen address as flags take it, "IP:PORT" or "[IPv6]:PORT",
 * into a NUL-terminated IP literal in host (cap bytes) and a port in
 * 0..65535, checking that conn_listen would accept the address. Returns 0,
 * or -1 with a sentence in err that quotes `spec` and shows a form that
 * works, for the caller to prefix with its flag's name. */
int conn_parse_addr(const char *spec, char *host, size_t cap, int *port, char err[128]);
#endif
