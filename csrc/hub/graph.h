/* graph: the slice of Microsoft Graph that az asks the hub for, over the
 * demo directory (idp.h). The cloud's Graph endpoint is PUBLIC_URL/graph/
 * (`/metadata/endpoints` says so), and tokens for it have that audience.
 *
 *   GET  /graph/v1.0/me                         az ad signed-in-user show
 *   GET  /graph/v1.0/users/{id or UPN}           az ad user show --id
 *   GET  /graph/v1.0/users?$filter=userPrincipalName eq '...'
 *   GET  /graph/v1.0/servicePrincipals/{id}      az ad sp show --id
 *   GET  /graph/v1.0/servicePrincipals?$filter=appId eq '...'
 *        (or servicePrincipalNames/any(c:c eq '...'), az's form)
 *   POST /graph/v1.0/directoryObjects/getByIds   az role assignment create --assignee
 *   POST /graph/v1.0/{me|users/{id}}/getMemberObjects     a user's groups (the
 *        endpoint a groups-overage token names in _claim_sources)
 *   POST /graph/v1.0/{me|users/{id}}/revokeSignInSessions ends the user's
 *        refresh tokens
 *
 * Every call needs a token from the hub's issuer for the Graph audience.
 * A user reads the directory (as members of an Entra tenant may); only the
 * user itself or a directory owner reads its groups or ends its sessions. */
#ifndef CK_GRAPH_H
#define CK_GRAPH_H
#include "api.h"

/* ud: the idp_t. */
int graph_route(void *ud, const api_req *req, api_resp *resp);

#endif
