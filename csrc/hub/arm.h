/* arm: arc-hub's ARM-shaped control plane.
 *
 *   GET  /subscriptions[/{sub}]
 *   PUT|GET|PATCH|DELETE .../resourceGroups/{rg}/providers/
 *        Microsoft.Kubernetes/connectedClusters/{name}
 *   GET  .../resourceGroups/{rg}/providers/Microsoft.Kubernetes/connectedClusters
 *   GET  /subscriptions/{sub}/providers/Microsoft.Kubernetes/connectedClusters
 *   POST .../connectedClusters/{name}/listClusterUserCredential
 *   PUT|GET|DELETE {scope}/providers/Microsoft.Authorization/roleAssignments/{id}
 *   GET  {scope}/providers/Microsoft.Authorization/roleAssignments
 *   GET  {scope}/providers/Microsoft.Authorization/roleDefinitions[/{id}]
 *
 * Every call carries a bearer token from the hub's issuer; what it may do
 * follows from role assignments at the resource, its group or the
 * subscription (rbac.h). Each cluster gets its own hybrid connection with
 * its own keys; listClusterUserCredential hands out a Send-only SAS for
 * that one entity. Resource groups are implicit: any valid name under a
 * known subscription exists. */
#ifndef CK_ARM_H
#define CK_ARM_H
#include "api.h"
#include "idp.h"
#include "relay.h"
#include "store.h"

typedef struct arm_opts {
    const char *public_url;     /* https://host[:port] clients use */
    const char *arm_audience;   /* token audience for ARM calls */
    int credential_ttl;         /* seconds a listClusterUserCredential SAS lives */
    int heartbeat_s;            /* agents report this often; three missed: Offline */
    const char *agent_audience; /* audience of user tokens for agents (default: Arc's app id) */
} arm_opts;

typedef struct arm arm_t;

/* Registers every stored cluster's hybrid connection with the relay.
 * Returns NULL with a sentence in err. */
arm_t *arm_new(store_t *s, idp_t *idp, relay_t *relay, const arm_opts *o, char err[256]);
void arm_free(arm_t *a);
int arm_route(void *ud, const api_req *req, api_resp *resp);

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
const char *arm_sas_host(arm_t *a);   /* host, as SAS scopes name it */

#endif
