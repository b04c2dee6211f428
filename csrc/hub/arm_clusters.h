/* arm_clusters: Microsoft.Kubernetes/connectedClusters. Each cluster gets
 * its own hybrid connection with its own keys (the relay learns it on PUT
 * and at start); listClusterUserCredential hands out a Send-only SAS for
 * that one entity. connectivityStatus is computed on read, never stored.
 * Handlers for arm.c's table. */
#ifndef CK_ARM_CLUSTERS_H
#define CK_ARM_CLUSTERS_H
#include "arm_base.h"

void arm_cc_get(arm_call *k, api_resp *resp);
void arm_cc_put(arm_call *k, api_resp *resp);
void arm_cc_patch(arm_call *k, api_resp *resp);
void arm_cc_delete(arm_call *k, api_resp *resp);
void arm_cc_credential(arm_call *k, api_resp *resp); /* POST .../listClusterUserCredential */
void arm_cc_list_sub(arm_call *k, api_resp *resp); /* every cluster of the subscription the caller may read */
void arm_cc_list_rg(arm_call *k, api_resp *resp);  /* the same within a resource group */

/* Registers every stored cluster's hybrid connection with the relay.
 * Returns how many, or -1 when the store could not be read. */
int arm_clusters_boot(arm_t *a);

#endif
