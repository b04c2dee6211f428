/* arm_subs: the subscriptions the directory names, shown to callers who
 * hold a role at or under them, and resource groups (implicit: any valid
 * name under a known subscription exists). Handlers for arm.c's table. */
#ifndef CK_ARM_SUBS_H
#define CK_ARM_SUBS_H
#include "arm_base.h"

void arm_subs_list(arm_call *k, api_resp *resp); /* GET /subscriptions */
void arm_sub_get(arm_call *k, api_resp *resp);   /* GET /subscriptions/{sub} */
void arm_rg_get(arm_call *k, api_resp *resp);    /* GET .../resourceGroups/{group} */

#endif
