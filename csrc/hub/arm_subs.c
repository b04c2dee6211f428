/* arm_subs: subscriptions and resource groups. See arm_subs.h. */
#include "arm_subs.h"

#include <stdio.h>

typedef struct any_walk {
    const char *prefix;
    int found;
} any_walk;

static int any_under(void *ud, const store_row *r)
{
    any_walk *w = ud;
    if (rbac_scope_covers(w->prefix, r->parent) || rbac_scope_covers(r->parent, w->prefix)) {
        w->found = 1;
        return 1;
    }
    return 0;
}

/* A subscription shows for callers holding any role at or under it. */
static int sub_visible(arm_t *a, const caller *who, const idp_subscription *s)
{
    if (idp_is_owner(a->idp, who->oid))
        return 1;
    char prefix[300];
    snprintf(prefix, sizeof prefix, "/subscriptions/%s", s->id);
    arm_lower(prefix);
    any_walk w = {prefix, 0};
    arm_walk_assignments(a, who, any_under, &w);
    return w.found;
}

static cJSON *sub_json(arm_t *a, const idp_subscription *s)
{
    cJSON *o = cJSON_CreateObject();
    char id[300];
    snprintf(id, sizeof id, "/subscriptions/%s", s->id);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "subscriptionId", s->id);
    cJSON_AddStringToObject(o, "tenantId", idp_tenant(a->idp));
    cJSON_AddStringToObject(o, "displayName", s->display_name ? s->display_name : s->id);
    cJSON_AddStringToObject(o, "state", "Enabled");
    cJSON_AddStringToObject(o, "authorizationSource", "RoleBased");
    cJSON *pol = cJSON_AddObjectToObject(o, "subscriptionPolicies");
    cJSON_AddStringToObject(pol, "locationPlacementId", "Public_2014-09-01");
    cJSON_AddStringToObject(pol, "quotaId", "PayAsYouGo_2014-09-01");
    cJSON_AddStringToObject(pol, "spendingLimit", "Off");
    return o;
}

void arm_subs_list(arm_call *k, api_resp *resp)
{
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "value");
    size_t ns;
    const idp_subscription *subs = idp_subscriptions(k->a->idp, &ns);
    for (size_t i = 0; i < ns; i++)
        if (sub_visible(k->a, k->who, &subs[i]))
            cJSON_AddItemToArray(arr, sub_json(k->a, &subs[i]));
    cJSON *cnt = cJSON_CreateObject();
    cJSON_AddNumberToObject(cnt, "type", 0);
    cJSON_AddNumberToObject(cnt, "value", cJSON_GetArraySize(arr));
    cJSON_AddItemToObject(o, "count", cnt);
    api_json(resp, 200, arm_print(o));
}

void arm_sub_get(arm_call *k, api_resp *resp)
{
    if (!sub_visible(k->a, k->who, k->sub))
        api_error(resp, 404, "SubscriptionNotFound", "The subscription '%.64s' could not be found.",
                  k->segs[1]);
    else
        api_json(resp, 200, arm_print(sub_json(k->a, k->sub)));
}

void arm_rg_get(arm_call *k, api_resp *resp)
{
    if (!arm_valid_rg_name(k->segs[3])) {
        api_error(resp, 404, "NotFound", "No route for this path on arc-hub's control plane.");
        return;
    }
    /* Resource groups are implicit; answer az's existence check. */
    cJSON *o = cJSON_CreateObject();
    char id[600];
    snprintf(id, sizeof id, "/subscriptions/%s/resourceGroups/%s", k->sub->id, k->segs[3]);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "name", k->segs[3]);
    cJSON_AddStringToObject(o, "type", "Microsoft.Resources/resourceGroups");
    cJSON_AddStringToObject(o, "location", "local");
    cJSON *p = cJSON_AddObjectToObject(o, "properties");
    cJSON_AddStringToObject(p, "provisioningState", "Succeeded");
    api_json(resp, 200, arm_print(o));
}
