/* arm_base: what the control plane's resource modules share. See
 * arm_base.h. */
#include "arm_base.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "enc.h"
#include "log.h"

static const char *const api_versions[] = {"2021-10-01",         "2024-01-01",         "2024-07-01-preview",
                                           "2024-12-01-preview", "2025-08-01-preview", NULL};

/* ---- small helpers ------------------------------------------------------ */

void arm_lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

void arm_iso_now(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Text for an answer (a tree that lost a member to a failed allocation
 * is refused whole by the front door, hub.c's serve_api); frees o. */
char *arm_print(cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Adds a parsed row to a list, or frees it when the list could not take
 * it (the array was never made). */
void arm_push_row(cJSON *arr, cJSON *b)
{
    if (!cJSON_AddItemToArray(arr, b))
        cJSON_Delete(b);
}

/* Splits and percent-decodes the path into segments. A decoded segment
 * holding '/', '\\', a control byte, or being "." or ".." is refused: the
 * hub builds storage keys and relay entity names from these. */
int arm_split_path(url_slice path, char segs[MAX_SEGS][SEG_MAX], size_t *n)
{
    *n = 0;
    size_t i = 0;
    if (path.n == 0 || path.p[0] != '/')
        return -1;
    i = 1;
    while (i <= path.n) {
        size_t j = i;
        while (j < path.n && path.p[j] != '/')
            j++;
        if (j == i) {
            if (j == path.n)
                break; /* trailing slash */
            return -1; /* empty segment */
        }
        if (*n == MAX_SEGS)
            return -1;
        char *out = segs[*n];
        if (enc_pct_decode(path.p + i, j - i, out, SEG_MAX) < 0)
            return -1;
        if (!strcmp(out, ".") || !strcmp(out, ".."))
            return -1;
        for (const char *c = out; *c; c++)
            if (*c == '/' || *c == '\\' || (unsigned char)*c < 0x20 || *c == 0x7f)
                return -1;
        (*n)++;
        i = j + 1;
    }
    return 0;
}

/* Connected cluster names: Azure's rule (1-63, letters, digits, '-' and
 * '_', starting with a letter or digit). */
int arm_valid_cc_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 63 || !isalnum((unsigned char)s[0]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return 0;
    return 1;
}

/* Resource group names: 1-90 of letters, digits, '_', '-', '.', '(' and
 * ')', not ending in '.'. */
int arm_valid_rg_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 90 || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_-.()", s[i]))
            return 0;
    return 1;
}

const idp_subscription *arm_find_sub(arm_t *a, const char *id)
{
    size_t n;
    const idp_subscription *s = idp_subscriptions(a->idp, &n);
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(s[i].id, id) == 0)
            return &s[i];
    return NULL;
}

int arm_check_api_version(const api_req *req, api_resp *resp)
{
    char v[64];
    if (!api_query(req, "api-version", v, sizeof v)) {
        api_error(resp, 400, "MissingApiVersionParameter",
                  "The api-version query parameter (?api-version=) is required for all requests.");
        return -1;
    }
    for (size_t i = 0; api_versions[i]; i++)
        if (!strcmp(v, api_versions[i]))
            return 0;
    api_error(resp, 400, "InvalidApiVersionParameter",
              "The api-version '%.40s' is invalid. The supported versions are '2021-10-01,2024-01-01,"
              "2024-07-01-preview,2024-12-01-preview,2025-08-01-preview'.",
              v);
    return -1;
}

/* ---- authentication and authorization ----------------------------------- */

int arm_authenticate(arm_t *a, const api_req *req, caller *who, api_resp *resp)
{
    memset(who, 0, sizeof *who);
    const http_header *h = http_find(req->http->headers, req->http->nheaders, "Authorization");
    char www[700];
    snprintf(www, sizeof www,
             "WWW-Authenticate: Bearer authorization_uri=\"%s\", error=\"invalid_token\", "
             "error_description=\"The authentication failed\"\r\n",
             idp_issuer(a->idp));
    if (!h) {
        snprintf(resp->headers, sizeof resp->headers, "%s", www);
        api_error(resp, 401, "AuthenticationFailed",
                  "Authentication failed. The 'Authorization' header is missing.");
        return -1;
    }
    if (h->value_len < 8 || strncasecmp(h->value, "Bearer ", 7) != 0) {
        snprintf(resp->headers, sizeof resp->headers, "%s", www);
        api_error(resp, 401, "AuthenticationFailed",
                  "Authentication failed. The 'Authorization' header is provided in an invalid format.");
        return -1;
    }
    const char *const auds[] = {a->aud, a->aud_noslash, NULL};
    char err[JWT_ERRLEN];
    int rc = verify_token(a->o.verify, h->value + 7, h->value_len - 7, auds, &who->c, err);
    if (rc != JWT_OK) {
        snprintf(resp->headers, sizeof resp->headers, "%s", www);
        log_kv(LOG_WARN, "arm.auth_failed", "peer", req->peer, "reason", err, NULL);
        if (rc == JWT_ERR_EXPIRED)
            api_error(resp, 401, "ExpiredAuthenticationToken",
                      "The access token expiry UTC time is earlier than current UTC time.");
        else
            api_error(resp, 401, "InvalidAuthenticationToken", "The access token is invalid (%s).", err);
        jwt_claims_free(&who->c);
        return -1;
    }
    who->oid = who->c.oid[0] ? who->c.oid : who->c.sub;
    return 0;
}

typedef struct perm_walk {
    const char *target;
    unsigned perms;
} perm_walk;

static int perm_row(void *ud, const store_row *r)
{
    perm_walk *w = ud;
    cJSON *b = cJSON_Parse(r->body);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(b, "properties");
    const cJSON *scope = cJSON_GetObjectItemCaseSensitive(p, "scope");
    const cJSON *rd = cJSON_GetObjectItemCaseSensitive(p, "roleDefinitionId");
    if (cJSON_IsString(scope) && cJSON_IsString(rd) && rbac_scope_covers(scope->valuestring, w->target)) {
        const rbac_role *role = rbac_role_by_id(rd->valuestring);
        if (role)
            w->perms |= role->perms;
    }
    cJSON_Delete(b);
    return 0;
}

/* Walks the role assignments held by the caller directly or through a
 * group: the token's groups, or, when they overflowed into Entra's overage
 * marker, the directory's. */
void arm_walk_assignments(arm_t *a, const caller *who, store_cb cb, void *ud)
{
    char key[128];
    snprintf(key, sizeof key, "%s", who->oid);
    arm_lower(key);
    store_list(a->s, ST_RA, NULL, key, cb, ud);
    const idp_principal *p = who->c.groups_overage ? idp_find(a->idp, who->oid) : NULL;
    size_t n = p ? p->ngroups : who->c.ngroups;
    char **groups = p ? p->groups : who->c.groups;
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%s", groups[i]);
        arm_lower(key);
        store_list(a->s, ST_RA, NULL, key, cb, ud);
    }
}

/* What the caller may do at `target`: owners of the directory hold Owner
 * on every subscription; everyone else what their assignments grant at
 * target or above. */
unsigned arm_perms_of(arm_t *a, const char *oid, char **groups, size_t ngroups, int overage,
                      const char *target)
{
    caller who;
    memset(&who, 0, sizeof who);
    who.oid = oid;
    who.c.groups = groups;
    who.c.ngroups = ngroups;
    who.c.groups_overage = overage;
    return arm_perms_at(a, &who, target);
}

unsigned arm_perms_at(arm_t *a, const caller *who, const char *target)
{
    size_t nr;
    const rbac_role *roles = rbac_roles(&nr);
    if (idp_is_owner(a->idp, who->oid))
        return roles[0].perms | RBAC_K8S_VIEW | RBAC_K8S_WRITE | RBAC_K8S_ADMIN | RBAC_K8S_CLUSTER_ADMIN;
    perm_walk w = {target, 0};
    arm_walk_assignments(a, who, perm_row, &w);
    return w.perms;
}

int arm_require(arm_t *a, const caller *who, const char *target, unsigned need, const char *action,
                api_resp *resp)
{
    if ((arm_perms_at(a, who, target) & need) == need)
        return 0;
    log_kv(LOG_INFO, "arm.forbidden", "oid", who->oid, "action", action, "scope", target, NULL);
    api_error(
        resp, 403, "AuthorizationFailed",
        "The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope "
        "'%.300s' or the scope is invalid. If access was recently granted, please refresh your credentials.",
        who->c.name[0] ? who->c.name : who->oid, who->oid, action, target);
    return -1;
}

void arm_cc_ref(cc_ref *r, const char *sub, const char *rg, const char *name)
{
    snprintf(r->sub, sizeof r->sub, "%s", sub);
    snprintf(r->rg, sizeof r->rg, "%s", rg);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->id, sizeof r->id, "/subscriptions/%s/resourceGroups/%s/providers/" CC_TYPE "/%s", sub, rg,
             name);
    snprintf(r->key, sizeof r->key, "%s", r->id);
    arm_lower(r->key);
    snprintf(r->parent, sizeof r->parent, "/subscriptions/%s/resourcegroups/%s", sub, rg);
    arm_lower(r->parent);
}

/* store_get callback: both strings or neither (-1: memory ran out). */
int arm_copy_row(void *ud, const store_row *r)
{
    got_row *g = ud;
    g->body = strdup(r->body);
    g->secret = r->secret ? strdup(r->secret) : NULL;
    if (!g->body || (r->secret && !g->secret)) {
        free(g->body);
        free(g->secret);
        g->body = g->secret = NULL;
        return -1;
    }
    return 0;
}

/* Fills the live fields (connectivity) into a stored body. */
/* ---- for agentapi.c (declared in arm.h) --------------------------------- */

store_t *arm_store(arm_t *a)
{
    return a->s;
}
idp_t *arm_idp(arm_t *a)
{
    return a->idp;
}
relay_t *arm_relay(arm_t *a)
{
    return a->relay;
}
const arm_opts *arm_options(arm_t *a)
{
    return &a->o;
}
const char *arm_relay_host(arm_t *a)
{
    return a->relay_host;
}
const char *arm_sas_host(arm_t *a)
{
    return a->sas_host;
}

beats_t *arm_beats(arm_t *a)
{
    return a->beats;
}
