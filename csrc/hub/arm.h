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
 * known subscription exists.
 *
 * This is the router (one table of {method, pattern, permission, handler});
 * arm_base.h maps the modules behind it. */
#ifndef CK_ARM_H
#define CK_ARM_H
#include "api.h"
#include "arm_base.h"

/* Registers every stored cluster's hybrid connection with the relay.
 * Returns NULL with a sentence in err. */
arm_t *arm_new(store_t *s, idp_t *idp, relay_t *relay, const arm_opts *o, char err[256]);
void arm_free(arm_t *a);
int arm_route(void *ud, const api_req *req, api_resp *resp);
/* For the front door (ud: the arm_t): the tick writes agents' reports to
 * the store in the background (beats.h). */
extern const api_hooks arm_hooks;

#endif
