/* agent: clusterconnect-agent's configuration and shared state, and
 * nothing else: every module has its own header with its own calls.
 *
 * The modules, each using only the ones listed after it (the include
 * graph points downwards, towards the core):
 *   main.c     flags, start-up, health endpoint; wires the rest together
 *   fwd.c      one rendezvous stream served towards the API server
 *   reg.c      heartbeats to the hub (registered mode): relay, tokens,
 *              feature switches, the role-assignment version
 *   authz.c    azure-rbac decisions from the hub, cached briefly
 *   channel.c  listener control channels on the relay; accepted
 *              rendezvous go to a callback (main hands them to fwd)
 *   jwks.c     the trusted issuer's keys fetched from a URL
 *   creds.c    what the agent reads from files: its own token, JWKS
 *              files, the groups file
 *   sign.c     the agent's identity: the JWT it signs for hub calls
 *   ident.c    whom the API server sees for a verified token
 * All of them run on the one loop; none blocks it. */
#ifndef CK_AGENT_H
#define CK_AGENT_H
#include <stdint.h>
#include <uv.h>

#include "httpc.h"
#include "ident.h"
#include "jwt.h"
#include "pxy.h"
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
    const char *api_ca;     /* CA bundle for the API server */
    const char *relay_ca;   /* CA bundle for the relay and the hub (NULL: system store) */
    const char *jwks_ca;    /* CA bundle for --jwks-url (NULL: system store) */
    const char *token_file; /* the agent's own credential for the API server */
    const char *issuer;     /* trusted OIDC issuer (NULL: none) */
    const char *audience;
    const char *jwks_file;
    const char *jwks_url;    /* fetched instead of jwks_file (jwks.c) */
    const char *groups_file; /* group source for tokens with a groups overage */
    ident_opts ident;        /* whom the API server sees (--username-claim, --*-prefix) */
    unsigned authz_ttl_s;    /* how long an azure-rbac decision is reused (authz.c) */
    /* Registered mode (az connectedk8s connect): the hub hands out the
     * relay, the hybrid connection, Listen tokens and feature switches. */
    const char *hub;          /* https://hub */
    const char *resource_id;  /* the connectedCluster's ARM id */
    const char *identity_key; /* PEM private key whose public half the resource holds */
} agent_cfg;

struct channel;
struct reg;
struct sign;
struct authz;

typedef struct agent {
    uv_loop_t *loop;
    agent_cfg cfg;
    pxy_cfg proxy; /* outbound proxy for the relay, the hub and JWKS; never the API server */
    httpc_t *http; /* every HTTP call, and the tunnels of the relay's WebSockets */
    tls_ctx *relay_tls, *api_tls;
    jwt_keyset keys;
    char api_host[256];
    int api_port;
    char token[8192]; /* the agent's own bearer token, re-read periodically (creds.c) */
    int channels_up;
    uint64_t requests, streams;
    struct channel *chans;
    /* channel.c hands each accepted rendezvous address here. */
    void (*on_accept)(struct agent *a, const char *address);
    int stopping;
    /* registered mode (reg.c) */
    int hub_mode;
    char relay_buf[512], hc_buf[256];
    char hub_token[2048];
    int64_t hub_token_exp;
    int cluster_connect;   /* the feature switch: listen or not */
    int azure_rbac;        /* ask the hub before each impersonated request */
    char rbac_version[80]; /* the hub's role-assignment version; a change flushes authz's cache */
    int channels_started;
    char k8s_version[64];
    char hub_issuer[512], hub_audience[256]; /* trusted issuer handed out by the hub */
    struct reg *reg;
    struct sign *sign;
    struct authz *authz;
} agent_t;

#endif
