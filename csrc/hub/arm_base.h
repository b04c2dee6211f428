/* arm_base: what the control plane's modules share, below all of them.
 *
 *   arm.c           the router: one table of {method, pattern, permission,
 *                   handler}, authentication, arm_new
 *   arm_subs.c      subscriptions and (implicit) resource groups
 *   arm_clusters.c  connectedClusters and listClusterUserCredential
 *   arm_roles.c     role assignments and role definitions
 *   arm_base.c      this: the arm_t, the caller, path and name checks,
 *                   the permission walk, for all of the above and agentapi.c
 *
 * The resource modules never call the router or each other. */
#ifndef CK_ARM_BASE_H
#define CK_ARM_BASE_H
#include <cjson/cJSON.h>
#include <stdint.h>

#include "api.h"
#include "beats.h"
#include "idp.h"
#include "rbac.h"
#include "relay.h"
#include "store.h"
#include "verify.h"

typedef struct arm_opts {
    const char *public_url;     /* https://host[:port] clients use */
    const char *arm_audience;   /* token audience for ARM calls */
    int credential_ttl;         /* seconds a listClusterUserCredential SAS lives */
    int heartbeat_s;            /* agents report this often; three missed: Offline */
    const char *agent_audience; /* audience of user tokens for agents (default: Arc's app id) */
    uv_loop_t *loop;            /* where agents' reports are written from (default: uv_default_loop) */
    const verify_t *verify;     /* the issuers whose tokens ARM callers may bring (required) */
} arm_opts;

typedef struct arm arm_t;

/* Shared with agentapi.c (the agents' side of the control plane). */
/* Role-derived rights of a principal (and its groups; overage: take them
 * from the directory) at `target`. */
unsigned arm_perms_of(arm_t *a, const char *oid, char **groups, size_t ngroups, int overage,
                      const char *target);
store_t *arm_store(arm_t *a);
idp_t *arm_idp(arm_t *a);
relay_t *arm_relay(arm_t *a);
const arm_opts *arm_options(arm_t *a);
const char *arm_relay_host(arm_t *a); /* host[:port] */
const char *arm_sas_host(arm_t *a);
beats_t *arm_beats(arm_t *a); /* host, as SAS scopes name it */

#define MAX_SEGS 24
#define SEG_MAX 256
#define CC_TYPE "Microsoft.Kubernetes/connectedClusters"
#define RA_TYPE "Microsoft.Authorization/roleAssignments"
#define ST_CC "cc"
#define ST_RA "ra"

struct arm {
    store_t *s;
    idp_t *idp;
    relay_t *relay;
    beats_t *beats; /* agents' reports, in memory */
    arm_opts o;
    char public_url[512];
    char relay_host[256]; /* host[:port] of the relay, as clients dial it */
    char sas_host[256];   /* host only: what SAS scopes name */
    char aud[512];
    char aud_noslash[512];
};

/* The authenticated caller. */
typedef struct caller {
    jwt_claims c;
    const char *oid;
} caller;

/* A connected cluster (or the group a list names). */
typedef struct cc_ref {
    char sub[SEG_MAX], rg[SEG_MAX], name[SEG_MAX];
    char id[1024];  /* canonical casing of the path */
    char key[1024]; /* lowercased */
    char parent[600];
} cc_ref;

/* The scope part of a path that continues with
 * /providers/Microsoft.Authorization/<kind>[/<name>]. */
typedef struct authz_ref {
    char scope[1024];
    char kind[32]; /* roleAssignments | roleDefinitions */
    char name[SEG_MAX];
    int has_name;
} authz_ref;

/* One routed call, as the router hands it to a resource's handler: the
 * caller is authenticated, the subscription exists, the path's names are
 * valid and the route's permission is held at `target`. */
typedef struct arm_call {
    arm_t *a;
    const api_req *req;
    const caller *who;
    char (*segs)[SEG_MAX]; /* decoded path segments */
    size_t n;
    const idp_subscription *sub; /* segs[1]'s subscription (n >= 2) */
    cc_ref cc;                   /* when the route names a cluster ({cluster}) */
    authz_ref az;                /* when the route is under {scope} */
    const char *note;            /* the route's note, e.g. the 405 text */
} arm_call;

typedef void (*arm_handler)(arm_call *k, api_resp *resp);

typedef struct got_row {
    char *body, *secret;
} got_row;

/* ---- small helpers ------------------------------------------------------ */
void arm_lower(char *s);
void arm_iso_now(char out[32]);
/* Text for an answer (a tree that lost a member to a failed allocation
 * is refused whole by the front door); frees o. */
char *arm_print(cJSON *o);
/* Adds a parsed row to a list, or frees it when the list could not take
 * it. */
void arm_push_row(cJSON *arr, cJSON *b);
/* Splits and percent-decodes the path into segments. A decoded segment
 * holding '/', '\\', a control byte, or being "." or ".." is refused: the
 * hub builds storage keys and relay entity names from these. */
int arm_split_path(url_slice path, char segs[MAX_SEGS][SEG_MAX], size_t *n);
/* Azure's naming rules for connected clusters and resource groups. */
int arm_valid_cc_name(const char *s);
int arm_valid_rg_name(const char *s);
const idp_subscription *arm_find_sub(arm_t *a, const char *id);
/* 0, or -1 with ARM's 400 in resp. */
int arm_check_api_version(const api_req *req, api_resp *resp);
void arm_cc_ref(cc_ref *r, const char *sub, const char *rg, const char *name);
/* store_get callback into a got_row: both strings or neither (-1: memory
 * ran out). */
int arm_copy_row(void *ud, const store_row *r);

/* ---- authentication and authorization ----------------------------------- */
/* Verifies the bearer token; 0, or -1 with the 401 in resp. */
int arm_authenticate(arm_t *a, const api_req *req, caller *who, api_resp *resp);
/* Walks the role assignments held by the caller directly or through a
 * group (the token's, or on overage the directory's). */
void arm_walk_assignments(arm_t *a, const caller *who, store_cb cb, void *ud);
unsigned arm_perms_at(arm_t *a, const caller *who, const char *target);
/* 0 when the caller holds `need` at target, else -1 with ARM's 403. */
int arm_require(arm_t *a, const caller *who, const char *target, unsigned need, const char *action,
                api_resp *resp);

#endif
