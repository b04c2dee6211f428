/* tenants: ARM's GET /tenants, the first call `az login` makes for a
 * person who names no tenant: it lists the tenants the caller belongs to,
 * then looks for subscriptions in each. The hub has one tenant (the
 * directory's), and every caller the issuer vouches for belongs to it,
 * whether or not it holds a role anywhere (as on Azure, where a user with
 * no subscription still sees its home tenant). */
#ifndef CK_TENANTS_H
#define CK_TENANTS_H
#include "api.h"

/* ud: the arm_t (its issuer and ARM audience). */
int tenants_route(void *ud, const api_req *req, api_resp *resp);

#endif
