/* arm_roles: role assignments and role definitions. See arm_roles.h. */
#include "arm_roles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "log.h"

static cJSON *role_def_json(const rbac_role *r, const char *sub)
{
    cJSON *o = cJSON_CreateObject();
    char id[300];
    snprintf(id, sizeof id, "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s", sub,
             r->id);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "name", r->id);
    cJSON_AddStringToObject(o, "type", "Microsoft.Authorization/roleDefinitions");
    cJSON *p = cJSON_AddObjectToObject(o, "properties");
    cJSON_AddStringToObject(p, "roleName", r->name);
    cJSON_AddStringToObject(p, "type", "BuiltInRole");
    cJSON_AddStringToObject(p, "description", r->description);
    cJSON *as = cJSON_AddArrayToObject(p, "assignableScopes");
    cJSON_AddItemToArray(as, cJSON_CreateString("/"));
    cJSON *perms = cJSON_AddArrayToObject(p, "permissions");
    cJSON *pe = cJSON_CreateObject();
    cJSON *acts = cJSON_AddArrayToObject(pe, "actions"), *data = cJSON_AddArrayToObject(pe, "dataActions");
    cJSON_AddArrayToObject(pe, "notActions");
    cJSON_AddArrayToObject(pe, "notDataActions");
    if (r->perms & RBAC_WRITE)
        cJSON_AddItemToArray(acts, cJSON_CreateString("*"));
    else if (r->perms & RBAC_READ)
        cJSON_AddItemToArray(acts, cJSON_CreateString("*/read"));
    if (r->perms & RBAC_ASSIGN && !(r->perms & RBAC_WRITE))
        cJSON_AddItemToArray(acts, cJSON_CreateString("Microsoft.Authorization/*"));
    if ((r->perms & RBAC_CRED) && !(r->perms & RBAC_WRITE))
        cJSON_AddItemToArray(
            acts,
            cJSON_CreateString("Microsoft.Kubernetes/connectedClusters/listClusterUserCredential/action"));
    static const struct {
        unsigned bit;
        const char *action;
    } data_actions[] = {
        {RBAC_K8S_VIEW,          "Microsoft.Kubernetes/connectedClusters/*/read"  },
        {RBAC_K8S_WRITE,         "Microsoft.Kubernetes/connectedClusters/*/write" },
        {RBAC_K8S_ADMIN,         "Microsoft.Kubernetes/connectedClusters/*/delete"},
        {RBAC_K8S_CLUSTER_ADMIN, "Microsoft.Kubernetes/connectedClusters/*"       },
    };
    for (size_t i = 0; i < sizeof data_actions / sizeof data_actions[0]; i++)
        if (r->perms & data_actions[i].bit)
            cJSON_AddItemToArray(data, cJSON_CreateString(data_actions[i].action));
    cJSON_AddItemToArray(perms, pe);
    return o;
}

int arm_parse_authz(char segs[MAX_SEGS][SEG_MAX], size_t n, authz_ref *r)
{
    for (size_t i = 0; i + 2 < n + 1 && i + 1 < n; i++) {
        if (strcasecmp(segs[i], "providers") || strcasecmp(segs[i + 1], "Microsoft.Authorization"))
            continue;
        if (i + 2 >= n || i + 4 < n)
            return -1;
        size_t o = 0;
        r->scope[0] = '\0';
        for (size_t k = 0; k < i; k++)
            o += (size_t)snprintf(r->scope + o, sizeof r->scope - o, "/%s", segs[k]);
        if (o == 0)
            snprintf(r->scope, sizeof r->scope, "/");
        snprintf(r->kind, sizeof r->kind, "%s", segs[i + 2]);
        r->has_name = i + 3 < n;
        if (r->has_name)
            snprintf(r->name, sizeof r->name, "%s", segs[i + 3]);
        return 0;
    }
    return 1;
}

int arm_valid_scope(arm_t *a, const char *scope)
{
    char segs[MAX_SEGS][SEG_MAX];
    size_t n;
    url_slice p = {scope, strlen(scope)};
    if (arm_split_path(p, segs, &n) < 0 || n < 2 || strcasecmp(segs[0], "subscriptions") ||
        !arm_find_sub(a, segs[1]))
        return 0;
    if (n >= 4 && !arm_valid_rg_name(segs[3]))
        return 0;
    return 1;
}

typedef struct ra_walk {
    const char *scope;
    const char *principal;
    const char *role_id;
    int at_scope;
    cJSON *arr;
    int dup;
} ra_walk;

static int ra_list_row(void *ud, const store_row *row)
{
    ra_walk *w = ud;
    int above = rbac_scope_covers(row->parent, w->scope), below = rbac_scope_covers(w->scope, row->parent);
    if (!(above || (below && !w->at_scope)))
        return 0;
    cJSON *b = cJSON_Parse(row->body);
    if (b)
        arm_push_row(w->arr, b);
    return 0;
}

static int ra_dup_row(void *ud, const store_row *row)
{
    ra_walk *w = ud;
    cJSON *b = cJSON_Parse(row->body);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(b, "properties");
    const rbac_role *have =
        rbac_role_by_id(api_jstr(p, "roleDefinitionId") ? api_jstr(p, "roleDefinitionId") : "");
    if (strcasecmp(row->parent, w->scope) == 0 && have && strcasecmp(have->id, w->role_id) == 0)
        w->dup = 1;
    cJSON_Delete(b);
    return w->dup;
}

static void ra_put(arm_t *a, const authz_ref *r, const caller *who, const api_req *req, api_resp *resp)
{
    unsigned mark = json_failures(); /* covers the duplicate check's reads too */
    cJSON *in = cJSON_ParseWithLength(req->body, req->body_len);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(in, "properties");
    const char *rd = api_jstr(p, "roleDefinitionId"), *pid = api_jstr(p, "principalId"),
               *ptype = api_jstr(p, "principalType");
    const rbac_role *role = rd ? rbac_role_by_id(rd) : NULL;
    char key[1400], scope_l[1024], pid_l[128], now[32];
    if (!cJSON_IsObject(p) || !rd || !pid) {
        api_error(resp, 400, "InvalidRequestContent",
                  "properties.roleDefinitionId and properties.principalId are required.");
        goto out;
    }
    if (!role) {
        api_error(resp, 400, "RoleDefinitionDoesNotExist",
                  "The specified role definition with ID '%.100s' does not exist.", rd);
        goto out;
    }
    if (strlen(pid) != 36 || strspn(pid, "0123456789abcdefABCDEF-") != 36) {
        api_error(resp, 400, "InvalidPrincipalId",
                  "A valid principal ID must be provided for role assignment.");
        goto out;
    }
    if (strlen(r->name) != 36 || strspn(r->name, "0123456789abcdefABCDEF-") != 36) {
        api_error(resp, 400, "InvalidRoleAssignmentId",
                  "The role assignment ID '%.64s' is not valid: use a GUID.", r->name);
        goto out;
    }
    snprintf(scope_l, sizeof scope_l, "%s", r->scope);
    arm_lower(scope_l);
    snprintf(pid_l, sizeof pid_l, "%s", pid);
    arm_lower(pid_l);
    ra_walk w = {.scope = scope_l, .role_id = role->id};
    store_list(a->s, ST_RA, NULL, pid_l, ra_dup_row, &w);
    if (w.dup) {
        api_error(resp, 409, "RoleAssignmentExists", "The role assignment already exists.");
        goto out;
    }
    arm_iso_now(now);
    cJSON *o = cJSON_CreateObject();
    char id[1400], rdid[300];
    snprintf(id, sizeof id, "%s%s/providers/" RA_TYPE "/%s", strcmp(r->scope, "/") ? r->scope : "", "",
             r->name);
    const char *sub = "";
    char segs[MAX_SEGS][SEG_MAX];
    size_t ns;
    url_slice sp = {r->scope, strlen(r->scope)};
    if (arm_split_path(sp, segs, &ns) == 0 && ns >= 2)
        sub = segs[1];
    snprintf(rdid, sizeof rdid, "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s", sub,
             role->id);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "name", r->name);
    cJSON_AddStringToObject(o, "type", RA_TYPE);
    cJSON *op = cJSON_AddObjectToObject(o, "properties");
    cJSON_AddStringToObject(op, "roleDefinitionId", rdid);
    cJSON_AddStringToObject(op, "principalId", pid);
    cJSON_AddStringToObject(op, "principalType", ptype ? ptype : "User");
    cJSON_AddStringToObject(op, "scope", r->scope);
    cJSON_AddStringToObject(op, "createdOn", now);
    cJSON_AddStringToObject(op, "updatedOn", now);
    cJSON_AddStringToObject(op, "createdBy", who->oid);
    cJSON_AddStringToObject(op, "updatedBy", who->oid);
    char *text = json_print(o, mark, 0);
    snprintf(key, sizeof key, "%s", id);
    arm_lower(key);
    store_row row = {.id = key, .type = ST_RA, .parent = scope_l, .principal = pid_l, .body = text};
    if (!text || store_put(a->s, &row) < 0) {
        api_store_failed(resp, store_error(a->s));
        free(text);
        cJSON_Delete(o);
        goto out;
    }
    log_kv(LOG_INFO, "arm.role_assignment", "scope", r->scope, "principal", pid, "role", role->name, "by",
           who->oid, NULL);
    api_json(resp, 201, text);
    cJSON_Delete(o);
out:
    cJSON_Delete(in);
}

/* The subscription of a valid scope (arm_valid_scope held). */
static void scope_sub(const authz_ref *r, char sub[SEG_MAX])
{
    char segs[MAX_SEGS][SEG_MAX];
    size_t ns;
    url_slice sp = {r->scope, strlen(r->scope)};
    sub[0] = '\0';
    if (arm_split_path(sp, segs, &ns) == 0 && ns >= 2)
        snprintf(sub, SEG_MAX, "%s", segs[1]);
}

void arm_roledefs_list(arm_call *k, api_resp *resp)
{
    char sub[SEG_MAX];
    scope_sub(&k->az, sub);
    size_t n;
    const rbac_role *roles = rbac_roles(&n);
    char filter[512], want[256] = "";
    if (api_query(k->req, "$filter", filter, sizeof filter)) {
        const char *q = strstr(filter, "roleName eq '");
        if (q) {
            snprintf(want, sizeof want, "%s", q + 13);
            char *end = strchr(want, '\'');
            if (end)
                *end = '\0';
        }
    }
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "value");
    for (size_t i = 0; i < n; i++)
        if (!want[0] || !strcasecmp(want, roles[i].name))
            cJSON_AddItemToArray(arr, role_def_json(&roles[i], sub));
    api_json(resp, 200, arm_print(o));
}

void arm_roledef_get(arm_call *k, api_resp *resp)
{
    char sub[SEG_MAX];
    scope_sub(&k->az, sub);
    const rbac_role *role = rbac_role_by_id(k->az.name);
    if (!role)
        api_error(resp, 404, "RoleDefinitionDoesNotExist",
                  "The specified role definition with ID '%.64s' does not exist.", k->az.name);
    else
        api_json(resp, 200, arm_print(role_def_json(role, sub)));
}

void arm_ra_list(arm_call *k, api_resp *resp)
{
    char filter[512] = "", pid[128] = "", scope_l[1024];
    api_query(k->req, "$filter", filter, sizeof filter);
    const char *q = strstr(filter, "principalId eq '");
    if (q) {
        snprintf(pid, sizeof pid, "%s", q + 16);
        char *end = strchr(pid, '\'');
        if (end)
            *end = '\0';
        arm_lower(pid);
    }
    snprintf(scope_l, sizeof scope_l, "%s", k->az.scope);
    arm_lower(scope_l);
    cJSON *o = cJSON_CreateObject();
    ra_walk w = {.scope = scope_l,
                 .at_scope = strstr(filter, "atScope()") != NULL,
                 .arr = cJSON_AddArrayToObject(o, "value")};
    store_list(k->a->s, ST_RA, NULL, pid[0] ? pid : NULL, ra_list_row, &w);
    api_json(resp, 200, arm_print(o));
}

void arm_ra_put(arm_call *k, api_resp *resp)
{
    ra_put(k->a, &k->az, k->who, k->req, resp);
}

/* GET or DELETE of one assignment. */
static void ra_get_or_delete(arm_call *k, int del, api_resp *resp)
{
    arm_t *a = k->a;
    const authz_ref *r = &k->az;
    char id[1400], key[1400];
    snprintf(id, sizeof id, "%s/providers/" RA_TYPE "/%s", strcmp(r->scope, "/") ? r->scope : "", r->name);
    snprintf(key, sizeof key, "%s", id);
    arm_lower(key);
    got_row g = {0};
    int rc = store_get(a->s, key, arm_copy_row, &g);
    if (rc == 0) {
        if (del)
            api_json(resp, 204, NULL);
        else
            api_error(resp, 404, "RoleAssignmentNotFound", "The role assignment '%.64s' is not found.",
                      r->name);
    } else if (rc < 0 || (del && store_delete(a->s, key) < 0)) {
        api_store_failed(resp, store_error(a->s));
    } else {
        if (del)
            log_kv(LOG_INFO, "arm.role_assignment_delete", "id", id, "by", k->who->oid, NULL);
        api_json(resp, 200, g.body);
        g.body = NULL;
    }
    free(g.body);
    free(g.secret);
}

void arm_ra_get(arm_call *k, api_resp *resp)
{
    ra_get_or_delete(k, 0, resp);
}

void arm_ra_delete(arm_call *k, api_resp *resp)
{
    ra_get_or_delete(k, 1, resp);
}

void arm_authz_unknown(arm_call *k, api_resp *resp)
{
    api_error(resp, 400, "InvalidResourceType", "The resource type '%.64s' is not supported.", k->az.kind);
}
