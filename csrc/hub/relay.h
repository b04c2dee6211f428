/* relay: the Azure Relay Hybrid Connections protocol, relay side.
 *
 * Listeners hold a control channel (sb-hc-action=listen); a sender's
 * upgrade (sb-hc-action=connect) becomes an `accept` message on one
 * listener's channel with a single-use rendezvous address; when the
 * listener upgrades that address (sb-hc-action=accept), both upgrades are
 * answered with 101 and the relay splices WebSocket frames between them,
 * frame by frame (payload streamed, never whole messages), with
 * backpressure in both directions. */
#ifndef CK_RELAY_H
#define CK_RELAY_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "api.h"
#include "conn.h"
#include "http.h"
#include "hubcfg.h"
#include "sas.h"
#include "url.h"

typedef struct relay_opts {
    unsigned ping_interval_ms; /* ping idle control channels this often */
    unsigned rendezvous_ms;    /* an accept address lives this long */
    unsigned stall_ms;         /* close a spliced peer that stops reading */
    int max_listeners;         /* per hybrid connection (Azure: 25) */
    int max_pending;           /* rendezvous in flight, whole relay */
    size_t max_control_msg;    /* control channel message ceiling */
    uint64_t max_frame;        /* spliced frame payload ceiling */
} relay_opts;

extern const relay_opts relay_default_opts;

typedef struct relay relay_t;

relay_t *relay_new(uv_loop_t *loop, const relay_opts *o);
void relay_free(relay_t *r);
/* Replaces the namespace-level rules. */
int relay_set_ns_rules(relay_t *r, const sas_rule *rules, size_t n);
/* Adds (or replaces the rules of) a hybrid connection. */
int relay_add_hc(relay_t *r, const char *name, const sas_rule *rules, size_t n);
/* Removes a hybrid connection; its listeners are closed with 1001. */
int relay_remove_hc(relay_t *r, const char *name);
int relay_load_cfg(relay_t *r, const hubcfg *cfg);
/* Listeners connected to a hybrid connection now (-1: no such entity).
 * The control plane reports a cluster Connected while its agent listens. */
int relay_listeners(relay_t *r, const char *name);

/* Takes over a connection whose request head targets /$hc/<rest>. `path`
 * is <rest> still percent-encoded. The head's slices are only read during
 * the call. */
void relay_handle(relay_t *r, conn_t *c, const http_request *req, url_slice path, url_slice query);

/* relay_handle as the front door's takeover route (mounted on /$hc/). */
void relay_take(void *relay, conn_t *c, const http_request *req, url_slice rest, url_slice query);
/* relay_tick, relay_metrics and relay_shutdown as the front door's hooks
 * (ud: the relay_t). */
extern const api_hooks relay_hooks;

/* Housekeeping, about once a second: pings, dead channels, token expiry,
 * expired rendezvous. */
void relay_tick(relay_t *r, uint64_t now_ms);
/* Prometheus text exposition; returns the length written. */
size_t relay_metrics(relay_t *r, char *out, size_t cap);
/* Closes every listener and stream (going away). */
void relay_shutdown(relay_t *r);

#endif
