/* hub: arc-hub's front door. It terminates TLS, reads request heads and
 * routes them through a table of path prefixes that main.c fills: a
 * takeover route (the relay's /$hc/) gets the connection right after its
 * head; an API route (ARM, agent API, issuer) gets each whole request with
 * its Content-Length body, on kept-alive connections as az's HTTP client
 * expects. /healthz and /metrics are the front door's own.
 *
 * Layering: this file knows api.h and the core only. The parts behind it
 * never include it; what they need from the front door (replies, clock)
 * is in api.h. */
#ifndef CK_HUB_H
#define CK_HUB_H
#include <stdint.h>
#include <uv.h>

#include "api.h"
#include "conn.h"
#include "http.h"
#include "tls.h"

typedef struct hub_opts {
    const char *host;
    int port;
    unsigned head_timeout_ms; /* a client must send its head (and body) within this */
    size_t max_body;          /* API request bodies above this get 413 */
    conn_opts conn;
} hub_opts;

typedef struct hub hub_t;

hub_t *hub_new(uv_loop_t *loop, tls_ctx *tls, const hub_opts *o, char err[128]);
int hub_port(hub_t *h);
/* Stops accepting, closes every connection and runs each part's shutdown
 * hook; the loop then ends. */
void hub_shutdown(hub_t *h);
void hub_free(hub_t *h);

#define HUB_ROUTES_MAX 32
#define HUB_PREFIX_MAX 64
#define HUB_NOCASE 1u /* the prefix matches in any ASCII case */

/* Mounts `fn` on the paths starting with `prefix` (at most
 * HUB_PREFIX_MAX - 1 bytes). Routes are tried in the order they were
 * mounted: the first takeover route whose prefix is followed by at least
 * one byte takes the connection; otherwise every matching API route is
 * asked in turn until one answers, and a request none answers gets an ARM
 * 404. Returns 0, or -1 when the table is full or the prefix too long. */
int hub_mount(hub_t *h, const char *prefix, unsigned flags, api_handler fn, void *ud);
int hub_mount_takeover(hub_t *h, const char *prefix, unsigned flags, api_takeover fn, void *ud);
/* Adds a part's hooks (copied; `ud` is passed to each). Returns 0 or -1. */
int hub_hook(hub_t *h, const api_hooks *hooks, void *ud);

#endif
