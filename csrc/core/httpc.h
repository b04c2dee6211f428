/* httpc: the HTTP client of the core and the daemons, on libcurl's
 * multi-socket API driven by a libuv loop.
 *
 * One httpc_t per loop owns a curl multi handle, and with it curl's
 * connection cache: calls to the same host reuse a kept-alive connection
 * (HTTP/2 where both sides offer it) instead of a new TCP and TLS
 * handshake each. curl tells which sockets to watch (uv_poll) and when to
 * wake it (uv_timer); nothing blocks the loop, name resolution included
 * (curl's threaded resolver).
 *
 * Every request has a deadline and a ceiling on the answer's size; the
 * answer is delivered whole, NUL-terminated, to one callback. Proxies come
 * from the pxy_cfg given at creation (pxy.h): per destination, its scheme
 * picks the HTTPS or HTTP proxy unless the skip list names the host; a
 * request can also insist on going direct (the Kubernetes API server).
 *
 * httpc_tunnel() uses the same machinery for the WebSocket connections:
 * curl dials (through the proxy with CONNECT, authenticating with Basic,
 * Digest, NTLM or Negotiate as the proxy asks, or directly for a skipped
 * host) and then hands over the connected socket; TLS and WebSocket above
 * it stay the caller's (conn_connect_via), so the proxy only ever sees
 * ciphertext.
 *
 * Errors are sentences that name the proxy by scheme://host:port and never
 * carry its credentials. Callbacks are never called from inside the call
 * that started the request; after httpc_cancel() they are not called at
 * all. */
#ifndef CK_HTTPC_H
#define CK_HTTPC_H
#include <stddef.h>
#include <uv.h>

#include "pxy.h"

#define HTTPC_ERRLEN 512

typedef struct httpc httpc_t;
typedef struct httpc_req httpc_req;

/* status: the HTTP status (> 0), or -1 with a sentence in err (connect,
 * proxy, TLS, timeout, oversized answer). body is NUL-terminated and valid
 * during the call only. */
typedef void (*httpc_cb)(void *ud, int status, const char *body, size_t len, const char *err);

typedef struct httpc_opts {
    const char *method;         /* default GET; POST when a body is given */
    const char *const *headers; /* NULL-terminated "Name: value" */
    const char *body;           /* copied; may be NULL */
    size_t body_len;
    size_t max_response; /* default 1 MiB */
    unsigned timeout_ms; /* the whole exchange; default 15 s */
    const char *ca_file; /* trusted CAs for https (NULL: system store) */
    int direct;          /* never through a proxy */
} httpc_opts;

/* proxy may be NULL (everything direct); it is copied. Returns NULL when
 * libcurl or memory fails. */
httpc_t *httpc_new(uv_loop_t *loop, const pxy_cfg *proxy);
/* Fails every pending request and tunnel (each callback runs once, from
 * inside this call, with "shutting down"; owners that must not hear it
 * cancel first) and closes the handles; the memory goes once the loop
 * has run the close callbacks. */
void httpc_free(httpc_t *h);
/* The proxy configuration in use (for deciding, naming). */
const pxy_cfg *httpc_proxy(const httpc_t *h);

/* Starts a request. Returns NULL for an unusable URL (not http:// or
 * https://), when memory ran out, or when h is NULL or being freed; cb is
 * then never called. */
httpc_req *httpc_request(httpc_t *h, const char *url, const httpc_opts *o, httpc_cb cb, void *ud);

/* fd: a connected, non-blocking TCP socket now owned by the callee (close
 * it or give it to uv_tcp_open), or -1 with a sentence in err. */
typedef void (*httpc_tunnel_cb)(void *ud, int fd, const char *err);
/* A TCP connection to host:port, through the proxy that pxy_for() picks
 * for it (secure: the HTTPS proxy), else direct. Returns NULL when memory
 * ran out or the host is unusable. */
httpc_req *httpc_tunnel(httpc_t *h, const char *host, int port, int secure, unsigned timeout_ms,
                        httpc_tunnel_cb cb, void *ud);

/* Abandons a request or tunnel: its callback is not called. */
void httpc_cancel(httpc_req *r);

/* Counters for /metrics: requests started, new connections curl opened
 * (the rest reused a kept-alive one). */
typedef struct httpc_stats {
    unsigned long long requests, connects, tunnels, failures;
} httpc_stats;
void httpc_get_stats(const httpc_t *h, httpc_stats *out);

#endif
