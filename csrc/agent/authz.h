/* authz: azure-rbac for the agent.
 *
 * Kubernetes request attributes are derived from the request line as the
 * API server's RequestInfo derives them; the hub decides from Azure role
 * assignments (POST /agent/v1/checkaccess with the agent JWT from sign.h,
 * over a kept-alive connection).
 *
 * Decisions are cached: an allow or a deny for the same caller (object id,
 * groups, overage) and the same attributes is reused for
 * cfg.authz_ttl_s seconds (--authz-cache-ttl, default 10; 0 turns the
 * cache off), and the whole cache is dropped as soon as a heartbeat
 * reports a different role-assignment version (a->rbac_version), so a
 * granted or revoked role takes effect at the next heartbeat at the
 * latest, and within the TTL in any case. Failures (the hub unreachable)
 * are never cached. The cache holds AUTHZ_CACHE_SLOTS entries keyed by a
 * SHA-256 of the question; a full slot is overwritten. */
#ifndef CK_AUTHZ_H
#define CK_AUTHZ_H
#include <stddef.h>

#include "agent.h"

#define AUTHZ_CACHE_SLOTS 1024
#define AUTHZ_DEFAULT_TTL_S 10

typedef struct authz_attrs {
    char verb[24], group[128], resource[128], subresource[64], nspace[254];
    int non_resource;
} authz_attrs;

/* Kubernetes request attributes from method and target. */
void authz_attrs_of(const char *method, size_t ml, const char *target, size_t tl, authz_attrs *out);

typedef struct authz_call authz_call;
/* allowed: 1, 0, or < 0 when the hub could not answer. */
typedef void (*authz_cb)(void *ud, int allowed, const char *level, const char *reason);

typedef struct authz_result {
    int allowed; /* 1, 0 */
    char level[24];
    char reason[600];
} authz_result;

/* The decision for this question: from the cache (returns NULL with
 * *cached = 1 and the decision in *hit; cb is not called) or from the hub
 * (returns the call; cb runs once, later). NULL with *cached = 0: the
 * question could not be asked (memory, signing). */
authz_call *authz_check(agent_t *a, const char *user, char **groups, size_t ngroups, int overage,
                        const authz_attrs *at, authz_cb cb, void *ud, int *cached, authz_result *hit);
/* Abandons a call: its cb is not called. */
void authz_cancel(authz_call *c);

/* The cache alone, for tests: the key of a question, lookup and store.
 * now_ms is a monotonic clock. */
typedef struct authz_key {
    unsigned char d[32];
} authz_key;
int authz_key_of(const char *user, char **groups, size_t ngroups, int overage, const authz_attrs *at,
                 authz_key *out);
int authz_cache_get(agent_t *a, const authz_key *k, uint64_t now_ms, int *allowed, const char **level,
                    const char **reason);
void authz_cache_put(agent_t *a, const authz_key *k, uint64_t now_ms, int allowed, const char *level,
                     const char *reason);
/* Cache hits, misses (questions sent) so far. */
void authz_counts(const agent_t *a, uint64_t *hits, uint64_t *misses);
void authz_stop(agent_t *a);

#endif
