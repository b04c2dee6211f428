/* agent: clusterconnect-agent's shared state and the two halves that use
 * it: channel.c keeps listener control channels open on the relay, fwd.c
 * serves each accepted rendezvous as an HTTP/1.1 stream forwarded to the
 * API server as the verified caller. */
#ifndef CK_AGENT_H
#define CK_AGENT_H
#include <stdint.h>
#include <uv.h>

#include "jwt.h"
#include "tls.h"

typedef struct agent_cfg {
    const char *relay;      /* wss://host[:port] */
    const char *hc;         /* hybrid connection name */
    const char *key_name;   /* Listen SAS rule */
    const char *key;
    unsigned token_ttl;     /* seconds a listen token lives; renewed 5 min (or 1/4) before */
    int channels;
    unsigned ping_ms;
    const char *apiserver;  /* https://host:port */
    const char *token_file; /* the agent's own credential for the API server */
    const char *issuer;     /* trusted OIDC issuer (NULL: none) */
    const char *audience;
    const char *jwks_file;
    const char *groups_file; /* group source for tokens with a groups overage */
} agent_cfg;

typedef struct agent {
    uv_loop_t *loop;
    agent_cfg cfg;
    tls_ctx *relay_tls, *api_tls;
    jwt_keyset keys;
    char api_host[256];
    int api_port;
    char token[8192]; /* the agent's own bearer token, re-read periodically */
    int channels_up;
    uint64_t requests, streams;
    struct channel *chans;
    int stopping;
} agent_t;

void channel_start_all(agent_t *a);
void channel_tick(agent_t *a);
void channel_stop_all(agent_t *a);

/* Serves one accepted rendezvous (address from the accept message). */
void fwd_accept(agent_t *a, const char *address);

int agent_reload_token(agent_t *a);
/* Groups of `oid` from the configured source (--groups-file, a JSON object
 * mapping object ids to arrays of group ids), for tokens whose groups
 * overflowed into an overage claim. Returns the count (>= 0, *out malloc'd,
 * free with agent_free_groups) or -1 when there is no source or no entry. */
int agent_lookup_groups(agent_t *a, const char *oid, char ***out);
void agent_free_groups(char **g, int n);
int agent_reload_jwks(agent_t *a);

#endif
