/* proxy: the loop behind `az connectedk8s proxy`.
 *
 * It listens on 127.0.0.1 (and ::1) with TLS that demands this session's
 * client certificate, so only the kubeconfig the proxy wrote can use it.
 * Each kubectl connection becomes one Hybrid Connections sender
 * (wss://RELAY/$hc/NAME?sb-hc-action=connect with the Send token in the
 * ServiceBusAuthorization header). The proxy parses kubectl's HTTP/1.1
 * requests just enough to replace every Authorization header with the real
 * credential and to find where each body ends; responses and upgraded
 * (101) streams pass through as bytes. Both directions are bounded: a full
 * sink pauses its source, so one slow stream never holds up another.
 *
 * A few senders are kept open ahead of demand (the pool) so a new kubectl
 * connection skips the relay handshake. Credentials are refreshed before
 * they expire by a callback run on a worker thread (it may block: in the
 * extension it calls ARM); new connections use the new ones, established
 * streams are left alone, and a failed refresh is retried with backoff
 * while the old credentials still work.
 *
 * proxy_run() blocks until SIGINT or SIGTERM (or proxy_stop()), then
 * closes the listeners and every stream and returns. */
#ifndef CK_PROXY_H
#define CK_PROXY_H
#include <stddef.h>
#include <stdint.h>

#include "sas.h"

#define PROXY_ERRLEN 512

/* Stable failure codes (the extension maps them to azclierror classes). */
enum {
    PROXY_OK = 0,
    PROXY_ERR_PORT_IN_USE = -801,
    PROXY_ERR_LISTEN = -802,
    PROXY_ERR_TLS = -803,
    PROXY_ERR_ARG = -890,
};

typedef struct proxy_creds {
    char relay[256]; /* host[:port]; a bare Azure Relay namespace gets .servicebus.windows.net */
    char hc[256];    /* hybrid connection name */
    char sas[SAS_MAX_TOKEN];
    int64_t sas_expiry;   /* epoch seconds */
    char token[16384];    /* bearer credential put on every request */
    int64_t token_expiry; /* epoch seconds; 0: does not expire (service-account token) */
} proxy_creds;

/* Runs on a worker thread; fills *out or returns -1 with a sentence. */
typedef int (*proxy_refresh_fn)(void *ud, proxy_creds *out, char err[PROXY_ERRLEN]);
/* Events for the user (refresh failures, relay refusals), on the loop
 * thread: short name plus a sentence. */
typedef void (*proxy_event_fn)(void *ud, const char *event, const char *detail);

typedef struct proxy_opts {
    const char *host; /* default 127.0.0.1 (and ::1 when that is free too) */
    int port;         /* 0 picks one */
    const char *server_cert_pem, *server_key_pem, *client_ca_pem;
    const char *relay_ca_file; /* NULL: the system store */
    int pool;                  /* ready senders kept open (default 2; 0 disables) */
    int refresh_margin;        /* seconds before expiry to refresh (default 300) */
    proxy_refresh_fn refresh;
    proxy_event_fn event;
    void *ud;
    /* Called once the listeners accept connections, before the loop runs. */
    void (*on_ready)(void *ud, int port);
} proxy_opts;

typedef struct proxy_stats {
    uint64_t connections, requests, upgrades, pool_hits, pool_misses, refreshes, refresh_failures,
        relay_refusals;
    int stop_signal; /* the signal that ended the run (0: proxy_stop) */
} proxy_stats;

int proxy_run(const proxy_opts *o, const proxy_creds *initial, proxy_stats *stats, char err[PROXY_ERRLEN]);
/* Asks a running proxy to stop (any thread). */
void proxy_stop(void);

#endif
