/* agentapi: the agents' side of the control plane.
 *
 *   POST /agent/v1/heartbeat    report version and Kubernetes version; get
 *                               the relay, the cluster's hybrid connection,
 *                               a Listen token and the feature switches
 *   POST /agent/v1/checkaccess  azure-rbac: may this user do this request?
 *
 * An agent proves who it is with a short JWT signed by the private key
 * `connect` gave it: iss = the cluster's resource id, aud = PUBLIC_URL/agent,
 * verified with the public key the resource holds
 * (properties.agentPublicKeyCertificate, base64 DER SubjectPublicKeyInfo).
 * No shared secret is stored in the cluster beyond that key. */
#ifndef CK_AGENTAPI_H
#define CK_AGENTAPI_H
#include "api.h"
#include "arm.h"

/* ud: the arm_t. */
int agentapi_route(void *ud, const api_req *req, api_resp *resp);

#endif
