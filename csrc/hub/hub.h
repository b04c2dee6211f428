/* hub: arc-hub's front door. It terminates TLS, reads request heads and
 * routes them: /$hc/... to the relay (the connection is the relay's from
 * then on), /healthz and /metrics to itself, everything else with its
 * Content-Length body to the API handler (identity provider and ARM), on
 * kept-alive connections as az's HTTP client expects. */
#ifndef CK_HUB_H
#define CK_HUB_H
#include <stdint.h>
#include <uv.h>

#include "api.h"
#include "conn.h"
#include "http.h"
#include "relay.h"
#include "tls.h"

typedef struct hub_opts {
    const char *host;
    int port;
    unsigned head_timeout_ms; /* a client must send its head (and body) within this */
    size_t max_body;          /* API request bodies above this get 413 */
    api_handler api;          /* everything that is not relay, healthz or metrics */
    void *api_ud;
    conn_opts conn;
} hub_opts;

typedef struct hub hub_t;

hub_t *hub_new(uv_loop_t *loop, tls_ctx *tls, relay_t *relay, const hub_opts *o, char err[128]);
int hub_port(hub_t *h);
/* Stops accepting and closes every connection; the loop then ends. */
void hub_shutdown(hub_t *h);
void hub_free(hub_t *h);

/* Writes a complete response (Connection: close) and closes gracefully.
 * `reason` replaces the standard phrase when non-NULL (Azure Relay puts
 * its error description there); it is sanitised to printable ASCII. */
void hub_reply(conn_t *c, int status, const char *reason, const char *ctype, const char *body);
/* Owner for a connection that is being answered and closed: whatever else
 * arrives is discarded. */
extern const conn_cbs hub_answered_cbs;

/* Monotonic milliseconds. */
uint64_t hub_now_ms(void);

#endif
