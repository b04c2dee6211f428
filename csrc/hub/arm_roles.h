/* arm_roles: Microsoft.Authorization under any scope of a known
 * subscription: role assignments (stored, keyed by their id, listed by
 * principal) and the built-in role definitions (rbac.h). Handlers for
 * arm.c's table. */
#ifndef CK_ARM_ROLES_H
#define CK_ARM_ROLES_H
#include "arm_base.h"

/* Finds /providers/Microsoft.Authorization/<kind>[/<name>] in the path:
 * 0 filled in r, 1 not such a path, -1 malformed. */
int arm_parse_authz(char segs[MAX_SEGS][SEG_MAX], size_t n, authz_ref *r);
/* Whether a scope lies under a known subscription (and a valid group). */
int arm_valid_scope(arm_t *a, const char *scope);

void arm_roledefs_list(arm_call *k, api_resp *resp);
void arm_roledef_get(arm_call *k, api_resp *resp);
void arm_ra_list(arm_call *k, api_resp *resp);
void arm_ra_put(arm_call *k, api_resp *resp);
void arm_ra_get(arm_call *k, api_resp *resp);
void arm_ra_delete(arm_call *k, api_resp *resp);
/* 400 for any other Microsoft.Authorization type. */
void arm_authz_unknown(arm_call *k, api_resp *resp);

#endif
