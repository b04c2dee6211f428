/* agent: clusterconnect-agent's shared state and the two halves that use
 * it: channel.c keeps listener control channels open on the relay, fwd.c
 * serves each accepted rendezvous as an HTTP/1.1 stream forwarded to the
 * API server as the verified caller. */
#ifndef CK_AGENT_H
#define CK_AGENT_H
#include <stdint.h>
#include <uv.h>

#include "ident.h"
#include "jwt.h"
#include "tls.h"

typedef struct agent_cfg {
    const char *relay;    /* wss://host[:port] */
    const char *hc;       /* hybrid connection name */
    const char *key_name; /* Listen SAS rule */
    const char *key;
    unsigned token_ttl; /* seconds a listen token lives; renewed 5 min (or 1/4) before */
    int channels;
    unsigned ping_ms;
    const char *apiserver;  /* https://host:port */
    const char *token_file; /* the agent's own credential for the API server */
    const char *issuer;     /* trusted OIDC issuer (NULL: none) */
    const char *audience;
    const char *jwks_file;
    const char *jwks_url;    /* fetched instead of jwks_file (jwks.c) */
    const char *groups_file; /* group source for tokens with a groups overage */
    ident_opts ident;        /* whom the API server sees (--username-claim, --*-prefix) */
    /* Registered mode (az connectedk8s connect): the hub hands out the
     * relay, the hybrid connection, Listen tokens and feature switches. */
    const char *hub;          /* https://hub */
    const char *resource_id;  /* the connectedCluster's ARM id */
    const char *identity_key; /* PEM private key whose public half the resource holds */
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
    /* registered mode (reg.c) */
    int hub_mode;
    char relay_buf[512], hc_buf[256];
    char hub_token[2048];
    int64_t hub_token_exp;
    int cluster_connect; /* the feature switch: listen or not */
    int azure_rbac;      /* ask the hub before each impersonated request */
    int channels_started;
    char k8s_version[64];
    char hub_issuer[512], hub_audience[256]; /* trusted issuer handed out by the hub */
    struct reg *reg;
    tls_ctx *hub_tls;
    tls_ctx *jwks_tls; /* system store: OIDC providers use public CAs */
} agent_t;

/* Opens the channels; -1 (nothing started) when memory ran out. */
int channel_start_all(agent_t *a);
void channel_tick(agent_t *a);
void channel_stop_all(agent_t *a);
/* cluster-connect off/on: close the channels without stopping the agent,
 * or open them again. */
void channel_pause_all(agent_t *a);
void channel_resume_all(agent_t *a);

/* reg.c: heartbeats to the hub (registered mode). */
int reg_start(agent_t *a, char err[256]);
void reg_tick(agent_t *a);
void reg_stop(agent_t *a);
/* An agent JWT for hub calls (malloc'd), or NULL. */
char *reg_agent_jwt(agent_t *a);

/* jwks.c: keys from --jwks-url. jwks_refresh queues cb(ud, ok) for a
 * fetch (returns -1 when none will happen: no URL, or fetched < 10 s
 * ago); jwks_forget drops a waiter that went away. */
typedef void (*jwks_cb)(void *ud, int ok);
void jwks_start(agent_t *a);
void jwks_tick(agent_t *a);
int jwks_refresh(agent_t *a, jwks_cb cb, void *ud);
void jwks_forget(void *ud);

/* authz.c: azure-rbac checks (registered mode with the feature on). */
typedef struct authz_attrs {
    char verb[24], group[128], resource[128], subresource[64], nspace[254];
    int non_resource;
} authz_attrs;
/* Kubernetes request attributes from method and target, as the API
 * server's RequestInfo derives them. */
void authz_attrs_of(const char *method, size_t ml, const char *target, size_t tl, authz_attrs *out);
typedef void (*authz_cb)(void *ud, int allowed, const char *level, const char *reason);
struct hcli;
/* Asks the hub; cb runs once (allowed < 0: the hub could not answer). */
struct hcli *authz_check(agent_t *a, const char *user, char **groups, size_t ngroups, int overage,
                         const authz_attrs *at, authz_cb cb, void *ud);

/* Serves one accepted rendezvous (address from the accept message). */
void fwd_accept(agent_t *a, const char *address);

int agent_reload_token(agent_t *a);
/* Groups of `oid` from the configured source (--groups-file, a JSON object
 * mapping object ids to arrays of group ids), for tokens whose groups
 * overflowed into an overage claim. Returns the count (>= 0; when > 0,
 * *out is malloc'd, free with agent_free_groups) or -1 when there is no
 * source, no entry, or memory ran out (never a partial list). */
int agent_lookup_groups(agent_t *a, const char *oid, char ***out);
void agent_free_groups(char **g, int n);
int agent_reload_jwks(agent_t *a);

#endif
