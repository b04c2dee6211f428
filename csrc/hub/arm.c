/* arm: connectedClusters, subscriptions and role assignments. See arm.h. */
#include "arm.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "enc.h"
#include "json.h"
#include "log.h"
#include "rbac.h"
#include "sas.h"

#define MAX_SEGS 24
#define SEG_MAX 256
#define CC_TYPE "Microsoft.Kubernetes/connectedClusters"
#define RA_TYPE "Microsoft.Authorization/roleAssignments"
#define ST_CC "cc"
#define ST_RA "ra"

static const char *const api_versions[] = {"2021-10-01",         "2024-01-01",         "2024-07-01-preview",
                                           "2024-12-01-preview", "2025-08-01-preview", NULL};

struct arm {
    store_t *s;
    idp_t *idp;
    relay_t *relay;
    arm_opts o;
    char public_url[512];
    char relay_host[256]; /* host[:port] of the relay, as clients dial it */
    char sas_host[256];   /* host only: what SAS scopes name */
    char aud[512];
    char aud_noslash[512];
};

/* The authenticated caller. */
typedef struct caller {
    jwt_claims c;
    const char *oid;
} caller;

/* ---- small helpers ------------------------------------------------------ */

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static void iso_now(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Text for an answer (a tree that lost a member to a failed allocation
 * is refused whole by the front door, hub.c's serve_api); frees o. */
static char *print(cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Adds a parsed row to a list, or frees it when the list could not take
 * it (the array was never made). */
static void push_row(cJSON *arr, cJSON *b)
{
    if (!cJSON_AddItemToArray(arr, b))
        cJSON_Delete(b);
}

/* Splits and percent-decodes the path into segments. A decoded segment
 * holding '/', '\\', a control byte, or being "." or ".." is refused: the
 * hub builds storage keys and relay entity names from these. */
static int split_path(url_slice path, char segs[MAX_SEGS][SEG_MAX], size_t *n)
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
static int valid_cc_name(const char *s)
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
static int valid_rg_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 90 || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_-.()", s[i]))
            return 0;
    return 1;
}

static const idp_subscription *find_sub(arm_t *a, const char *id)
{
    size_t n;
    const idp_subscription *s = idp_subscriptions(a->idp, &n);
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(s[i].id, id) == 0)
            return &s[i];
    return NULL;
}

static int check_api_version(const api_req *req, api_resp *resp)
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

static unsigned perms_at(arm_t *a, const caller *who, const char *target);

static int authenticate(arm_t *a, const api_req *req, caller *who, api_resp *resp)
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
    int rc = idp_verify(a->idp, h->value + 7, h->value_len - 7, auds, &who->c, err);
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
static void walk_assignments(arm_t *a, const caller *who, store_cb cb, void *ud)
{
    char key[128];
    snprintf(key, sizeof key, "%s", who->oid);
    lower(key);
    store_list(a->s, ST_RA, NULL, key, cb, ud);
    const idp_principal *p = who->c.groups_overage ? idp_find(a->idp, who->oid) : NULL;
    size_t n = p ? p->ngroups : who->c.ngroups;
    char **groups = p ? p->groups : who->c.groups;
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%s", groups[i]);
        lower(key);
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
    return perms_at(a, &who, target);
}

static unsigned perms_at(arm_t *a, const caller *who, const char *target)
{
    size_t nr;
    const rbac_role *roles = rbac_roles(&nr);
    if (idp_is_owner(a->idp, who->oid))
        return roles[0].perms | RBAC_K8S_VIEW | RBAC_K8S_WRITE | RBAC_K8S_ADMIN | RBAC_K8S_CLUSTER_ADMIN;
    perm_walk w = {target, 0};
    walk_assignments(a, who, perm_row, &w);
    return w.perms;
}

static int require(arm_t *a, const caller *who, const char *target, unsigned need, const char *action,
                   api_resp *resp)
{
    if ((perms_at(a, who, target) & need) == need)
        return 0;
    log_kv(LOG_INFO, "arm.forbidden", "oid", who->oid, "action", action, "scope", target, NULL);
    api_error(
        resp, 403, "AuthorizationFailed",
        "The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope "
        "'%.300s' or the scope is invalid. If access was recently granted, please refresh your credentials.",
        who->c.name[0] ? who->c.name : who->oid, who->oid, action, target);
    return -1;
}

/* ---- connected clusters ------------------------------------------------- */

typedef struct cc_ref {
    char sub[SEG_MAX], rg[SEG_MAX], name[SEG_MAX];
    char id[1024];  /* canonical casing of the path */
    char key[1024]; /* lowercased */
    char parent[600];
} cc_ref;

static void cc_make_ref(cc_ref *r, const char *sub, const char *rg, const char *name)
{
    snprintf(r->sub, sizeof r->sub, "%s", sub);
    snprintf(r->rg, sizeof r->rg, "%s", rg);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->id, sizeof r->id, "/subscriptions/%s/resourceGroups/%s/providers/" CC_TYPE "/%s", sub, rg,
             name);
    snprintf(r->key, sizeof r->key, "%s", r->id);
    lower(r->key);
    snprintf(r->parent, sizeof r->parent, "/subscriptions/%s/resourcegroups/%s", sub, rg);
    lower(r->parent);
}

typedef struct got_row {
    char *body, *secret;
} got_row;

/* store_get callback: both strings or neither (-1: memory ran out). */
static int copy_row(void *ud, const store_row *r)
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
static void cc_live(arm_t *a, cJSON *body, const char *secret)
{
    cJSON *props = cJSON_GetObjectItemCaseSensitive(body, "properties");
    cJSON *sec = secret ? cJSON_Parse(secret) : NULL;
    const char *hc = api_jstr(sec, "hc");
    int listeners = hc ? relay_listeners(a->relay, hc) : -1;
    const char *last = api_jstr(props, "lastConnectivityTime");
    /* Connected while the agent listens or has reported within three
     * heartbeat intervals (it may have cluster-connect turned off);
     * Offline once it has been seen and then missed them. */
    const cJSON *hb = cJSON_GetObjectItemCaseSensitive(sec, "lastHeartbeat");
    int recent = cJSON_IsNumber(hb) && (double)time(NULL) - hb->valuedouble <= 3.0 * a->o.heartbeat_s;
    if (recent && !api_jstr(props, "agentVersion"))
        recent = 0;
    const char *status = listeners > 0 || recent ? "Connected" : (last && *last) ? "Offline" : "Connecting";
    if (hb && !cJSON_IsNumber(hb))
        status = "Connecting";
    if (listeners > 0) {
        char now[32];
        iso_now(now);
        api_set_str(props, "lastConnectivityTime", now);
    }
    api_set_str(props, "connectivityStatus", status);
    cJSON_Delete(sec);
}

/* Which properties a PUT or PATCH may set; everything else is the hub's. */
static const char *const writable_props[] = {"agentPublicKeyCertificate",
                                             "distribution",
                                             "distributionVersion",
                                             "infrastructure",
                                             "azureHybridBenefit",
                                             "privateLinkState",
                                             "privateLinkScopeResourceId",
                                             "aadProfile",
                                             "arcAgentProfile",
                                             "arcAgentryConfigurations",
                                             "provisioningState",
                                             "gateway",
                                             "oidcIssuerProfile",
                                             "securityProfile",
                                             "kind",
                                             NULL};

static int prop_writable(const char *name)
{
    for (size_t i = 0; writable_props[i]; i++)
        if (!strcmp(writable_props[i], name))
            return 1;
    return 0;
}

/* Stores the cluster; -1 also when a cJSON allocation failed since `mark`
 * (when the handler began reading), so that no tree missing a member is
 * ever stored. */
static int cc_save(arm_t *a, const cc_ref *r, cJSON *body, const char *secret, unsigned mark)
{
    /* connectivityStatus is computed on read; never store a stale one. */
    cJSON *props = cJSON_GetObjectItemCaseSensitive(body, "properties");
    cJSON_DeleteItemFromObjectCaseSensitive(props, "connectivityStatus");
    char *text = json_print(body, mark, 0);
    store_row row = {.id = r->key, .type = ST_CC, .parent = r->parent, .body = text, .secret = secret};
    int rc = text ? store_put(a->s, &row) : -1;
    free(text);
    return rc;
}

static int rand_key(char out[64])
{
    uint8_t raw[32];
    return enc_random(raw, sizeof raw) < 0 || enc_b64_encode(raw, sizeof raw, out, 64) < 0 ? -1 : 0;
}

static int register_hc(arm_t *a, const char *secret)
{
    cJSON *s = cJSON_Parse(secret);
    const char *hc = api_jstr(s, "hc"), *sk = api_jstr(s, "sendKey"), *lk = api_jstr(s, "listenKey");
    int rc = -1;
    if (hc && sk && lk) {
        sas_rule rules[2] = {
            {"send",   sk, SAS_RIGHT_SEND  },
            {"listen", lk, SAS_RIGHT_LISTEN}
        };
        rc = relay_add_hc(a->relay, hc, rules, 2);
    }
    cJSON_Delete(s);
    return rc;
}

static void cc_put(arm_t *a, const cc_ref *r, const caller *who, const api_req *req, api_resp *resp)
{
    /* From here: a failed allocation while reading the request or the old
     * row (its principalId) or building the new one stores nothing. */
    unsigned mark = json_failures();
    cJSON *in = cJSON_ParseWithLength(req->body, req->body_len);
    if (!cJSON_IsObject(in)) {
        api_error(resp, 400, "InvalidRequestContent",
                  "The request content was invalid and could not be deserialized.");
        cJSON_Delete(in);
        return;
    }
    const char *location = api_jstr(in, "location");
    cJSON *props = cJSON_GetObjectItemCaseSensitive(in, "properties");
    if (!location || !*location || strlen(location) > 64) {
        api_error(resp, 400, "LocationRequired", "The location property is required for this definition.");
        cJSON_Delete(in);
        return;
    }
    if (!cJSON_IsObject(props) || !api_jstr(props, "agentPublicKeyCertificate")) {
        api_error(resp, 400, "InvalidParameter",
                  "properties.agentPublicKeyCertificate is required: the agent's public key (base64 DER).");
        cJSON_Delete(in);
        return;
    }
    const cJSON *it;
    cJSON_ArrayForEach (it, props)
        if (!prop_writable(it->string)) {
            api_error(resp, 400, "InvalidRequestContent", "Property 'properties.%.64s' is read-only.",
                      it->string);
            cJSON_Delete(in);
            return;
        }
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(in, "tags");
    if (tags && !cJSON_IsObject(tags)) {
        api_error(resp, 400, "InvalidRequestContent", "tags must be an object of strings.");
        cJSON_Delete(in);
        return;
    }
    got_row old = {0};
    int exists = store_get(a->s, r->key, copy_row, &old);
    if (exists < 0) {
        api_store_failed(resp, store_error(a->s));
        cJSON_Delete(in);
        return;
    }
    cJSON *prev = exists ? cJSON_Parse(old.body) : NULL;
    char now[32];
    iso_now(now);
    const char *by_type = strcmp(who->c.sub, who->oid) == 0 && who->c.name[0] ? "User" : "Application";
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "id", r->id);
    cJSON_AddStringToObject(body, "name", r->name);
    cJSON_AddStringToObject(body, "type", CC_TYPE);
    cJSON_AddStringToObject(body, "location", location);
    cJSON_AddItemToObject(body, "tags", tags ? cJSON_Duplicate(tags, 1) : cJSON_CreateObject());
    const char *kind = api_jstr(in, "kind");
    if (kind)
        cJSON_AddStringToObject(body, "kind", kind);
    cJSON *idn = cJSON_AddObjectToObject(body, "identity");
    cJSON *pidn =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(prev, "identity"), "principalId");
    char pid[37];
    if (cJSON_IsString(pidn))
        snprintf(pid, sizeof pid, "%s", pidn->valuestring);
    else
        enc_uuid4(pid);
    cJSON_AddStringToObject(idn, "type", "SystemAssigned");
    cJSON_AddStringToObject(idn, "principalId", pid);
    cJSON_AddStringToObject(idn, "tenantId", idp_tenant(a->idp));
    cJSON *sd = cJSON_AddObjectToObject(body, "systemData");
    cJSON *psd = cJSON_GetObjectItemCaseSensitive(prev, "systemData");
    cJSON_AddStringToObject(sd, "createdBy",
                            api_jstr(psd, "createdBy") ? api_jstr(psd, "createdBy") : who->oid);
    cJSON_AddStringToObject(sd, "createdByType",
                            api_jstr(psd, "createdByType") ? api_jstr(psd, "createdByType") : by_type);
    cJSON_AddStringToObject(sd, "createdAt", api_jstr(psd, "createdAt") ? api_jstr(psd, "createdAt") : now);
    cJSON_AddStringToObject(sd, "lastModifiedBy", who->oid);
    cJSON_AddStringToObject(sd, "lastModifiedByType", by_type);
    cJSON_AddStringToObject(sd, "lastModifiedAt", now);
    cJSON *np = cJSON_Duplicate(props, 1);
    cJSON *pp = cJSON_GetObjectItemCaseSensitive(prev, "properties");
    /* What the agent reports survives a re-PUT of the resource. */
    static const char *const reported[] = {"kubernetesVersion",
                                           "totalNodeCount",
                                           "totalCoreCount",
                                           "agentVersion",
                                           "lastConnectivityTime",
                                           "managedIdentityCertificateExpirationTime",
                                           NULL};
    for (size_t i = 0; reported[i]; i++) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(pp, reported[i]);
        if (v)
            cJSON_AddItemToObject(np, reported[i], cJSON_Duplicate(v, 1));
    }
    cJSON_DeleteItemFromObjectCaseSensitive(np, "provisioningState");
    cJSON_AddStringToObject(np, "provisioningState", "Succeeded");
    if (!cJSON_GetObjectItemCaseSensitive(np, "privateLinkState"))
        cJSON_AddStringToObject(np, "privateLinkState", "Disabled");
    if (!cJSON_GetObjectItemCaseSensitive(np, "azureHybridBenefit"))
        cJSON_AddStringToObject(np, "azureHybridBenefit", "NotApplicable");
    if (!cJSON_GetObjectItemCaseSensitive(np, "distribution"))
        cJSON_AddStringToObject(np, "distribution", "generic");
    if (!cJSON_GetObjectItemCaseSensitive(np, "infrastructure"))
        cJSON_AddStringToObject(np, "infrastructure", "generic");
    cJSON_AddItemToObject(body, "properties", np);

    char *secret = old.secret ? strdup(old.secret) : NULL;
    if (old.secret && !secret) { /* new keys would lock the installed agent out */
        api_error(resp, 503, "ServiceUnavailable", "Out of memory; retry.");
        goto out;
    }
    if (!secret) {
        char hc[40], sk[64], lk[64];
        if (enc_uuid4(hc) < 0 || rand_key(sk) < 0 || rand_key(lk) < 0) {
            api_error(resp, 500, "InternalServerError", "No randomness for the relay keys.");
            goto out;
        }
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "hc", hc);
        cJSON_AddStringToObject(s, "sendKey", sk);
        cJSON_AddStringToObject(s, "listenKey", lk);
        secret = json_print(s, mark, 0);
        cJSON_Delete(s);
        if (!secret) {
            api_error(resp, 503, "ServiceUnavailable", "Out of memory; retry.");
            goto out;
        }
    }
    if (cc_save(a, r, body, secret, mark) < 0) {
        api_store_failed(resp, store_error(a->s));
        goto out;
    }
    if (register_hc(a, secret) < 0) {
        /* Stored, but the relay does not know the entity: the agent could
         * not listen. A retried PUT registers it. */
        api_error(resp, 503, "ServiceUnavailable", "The relay could not take the cluster's entity; retry.");
        goto out;
    }
    log_kv(LOG_INFO, "arm.cluster_put", "id", r->id, "by", who->oid, "created", exists ? "false" : "true",
           NULL);
    cc_live(a, body, secret);
    api_json(resp, exists ? 200 : 201, cJSON_PrintUnformatted(body));
out:
    free(secret);
    cJSON_Delete(body);
    cJSON_Delete(prev);
    cJSON_Delete(in);
    free(old.body);
    free(old.secret);
}

static void not_found(api_resp *resp, const cc_ref *r)
{
    api_error(resp, 404, "ResourceNotFound",
              "The Resource '" CC_TYPE
              "/%.63s' under resource group '%.90s' was not found. For more details please "
              "go to https://aka.ms/ARMResourceNotFoundFix",
              r->name, r->rg);
}

/* Reads the cluster into *g; otherwise answers 404 or 500 and returns 0. */
static int load_cluster(arm_t *a, const cc_ref *r, got_row *g, api_resp *resp)
{
    int rc = store_get(a->s, r->key, copy_row, g);
    if (rc < 0)
        api_store_failed(resp, store_error(a->s));
    else if (rc == 0)
        not_found(resp, r);
    return rc > 0;
}

static void cc_get(arm_t *a, const cc_ref *r, api_resp *resp)
{
    got_row g = {0};
    if (!load_cluster(a, r, &g, resp))
        return;
    cJSON *b = cJSON_Parse(g.body);
    cc_live(a, b, g.secret);
    api_json(resp, 200, print(b));
    free(g.body);
    free(g.secret);
}

static void cc_patch(arm_t *a, const cc_ref *r, const caller *who, const api_req *req, api_resp *resp)
{
    unsigned mark = json_failures(); /* see cc_put */
    cJSON *in = cJSON_ParseWithLength(req->body, req->body_len);
    got_row g = {0};
    cJSON *b = NULL;
    if (!cJSON_IsObject(in)) {
        api_error(resp, 400, "InvalidRequestContent",
                  "The request content was invalid and could not be deserialized.");
        goto out;
    }
    const cJSON *it, *props = cJSON_GetObjectItemCaseSensitive(in, "properties");
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(in, "tags");
    cJSON_ArrayForEach (it, in)
        if (strcmp(it->string, "properties") && strcmp(it->string, "tags")) {
            api_error(resp, 400, "InvalidRequestContent",
                      "PATCH may change 'tags' and 'properties', not '%.64s'.", it->string);
            goto out;
        }
    if ((props && !cJSON_IsObject(props)) || (tags && !cJSON_IsObject(tags))) {
        api_error(resp, 400, "InvalidRequestContent", "'tags' and 'properties' must be objects.");
        goto out;
    }
    cJSON_ArrayForEach (it, props)
        if (!prop_writable(it->string) || !strcmp(it->string, "provisioningState")) {
            api_error(resp, 400, "InvalidRequestContent", "Property 'properties.%.64s' cannot be updated.",
                      it->string);
            goto out;
        }
    if (!load_cluster(a, r, &g, resp))
        goto out;
    b = cJSON_Parse(g.body);
    if (tags)
        cJSON_ReplaceItemInObjectCaseSensitive(b, "tags", cJSON_Duplicate(tags, 1));
    cJSON *bp = cJSON_GetObjectItemCaseSensitive(b, "properties");
    cJSON_ArrayForEach (it, props) {
        cJSON_DeleteItemFromObjectCaseSensitive(bp, it->string);
        cJSON_AddItemToObject(bp, it->string, cJSON_Duplicate(it, 1));
    }
    cJSON *sd = cJSON_GetObjectItemCaseSensitive(b, "systemData");
    char now[32];
    iso_now(now);
    api_set_str(sd, "lastModifiedBy", who->oid);
    api_set_str(sd, "lastModifiedAt", now);
    if (cc_save(a, r, b, g.secret, mark) < 0) {
        api_store_failed(resp, store_error(a->s));
        goto out;
    }
    log_kv(LOG_INFO, "arm.cluster_patch", "id", r->id, "by", who->oid, NULL);
    cc_live(a, b, g.secret);
    api_json(resp, 200, cJSON_PrintUnformatted(b));
out:
    cJSON_Delete(in);
    cJSON_Delete(b);
    free(g.body);
    free(g.secret);
}

static void cc_delete(arm_t *a, const cc_ref *r, const caller *who, api_resp *resp)
{
    got_row g = {0};
    int rc = store_get(a->s, r->key, copy_row, &g);
    if (rc == 0) {
        api_json(resp, 204, NULL);
        return;
    }
    if (rc < 0 || store_delete(a->s, r->key) < 0) {
        api_store_failed(resp, store_error(a->s));
    } else {
        cJSON *s = g.secret ? cJSON_Parse(g.secret) : NULL;
        if (api_jstr(s, "hc"))
            relay_remove_hc(a->relay, api_jstr(s, "hc"));
        cJSON_Delete(s);
        log_kv(LOG_INFO, "arm.cluster_delete", "id", r->id, "by", who->oid, NULL);
        api_json(resp, 200, NULL);
    }
    free(g.body);
    free(g.secret);
}

typedef struct list_walk {
    arm_t *a;
    const caller *who;
    cJSON *arr;
} list_walk;

static int list_row(void *ud, const store_row *r)
{
    list_walk *w = ud;
    if (!(perms_at(w->a, w->who, r->id) & RBAC_READ))
        return 0;
    cJSON *b = cJSON_Parse(r->body);
    if (b) {
        cc_live(w->a, b, r->secret);
        push_row(w->arr, b);
    }
    return 0;
}

static void cc_list(arm_t *a, const caller *who, const char *parent_prefix, api_resp *resp)
{
    cJSON *o = cJSON_CreateObject();
    list_walk w = {a, who, cJSON_AddArrayToObject(o, "value")};
    if (store_list(a->s, ST_CC, parent_prefix, NULL, list_row, &w) < 0) {
        cJSON_Delete(o);
        api_store_failed(resp, store_error(a->s));
        return;
    }
    api_json(resp, 200, print(o));
}

static char *b64(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(ENC_B64_LEN(n) + 1);
    if (out && enc_b64_encode((const uint8_t *)s, n, out, ENC_B64_LEN(n) + 1) < 0) {
        free(out);
        return NULL;
    }
    return out;
}

static void cc_credential(arm_t *a, const cc_ref *r, const caller *who, const api_req *req, api_resp *resp)
{
    cJSON *in = req->body_len ? cJSON_ParseWithLength(req->body, req->body_len) : cJSON_CreateObject();
    got_row g = {0};
    cJSON *sec = NULL;
    if (!cJSON_IsObject(in)) {
        api_error(resp, 400, "InvalidRequestContent",
                  "The request content was invalid and could not be deserialized.");
        goto out;
    }
    const char *method = api_jstr(in, "authenticationMethod");
    if (method && strcasecmp(method, "AAD") && strcasecmp(method, "Token")) {
        api_error(resp, 400, "InvalidParameter", "authenticationMethod must be 'AAD' or 'Token'.");
        goto out;
    }
    const cJSON *cp = cJSON_GetObjectItemCaseSensitive(in, "clientProxy");
    int client_proxy = !cp || cJSON_IsTrue(cp);
    if (!load_cluster(a, r, &g, resp))
        goto out;
    sec = cJSON_Parse(g.secret ? g.secret : "{}");
    const char *hc = api_jstr(sec, "hc"), *sk = api_jstr(sec, "sendKey");
    if (!hc || !sk) {
        api_error(resp, 500, "InternalServerError", "The cluster has no relay entity.");
        goto out;
    }
    int64_t exp = (int64_t)time(NULL) + a->o.credential_ttl;
    char resource[600], tok[SAS_MAX_TOKEN];
    snprintf(resource, sizeof resource, "https://%s/%s", a->sas_host, hc);
    if (sas_create(resource, "send", sk, exp, tok, sizeof tok) < 0) {
        api_error(resp, 500, "InternalServerError", "Could not sign the relay token.");
        goto out;
    }
    char kc[2048], user[700];
    snprintf(user, sizeof user, "clusterUser_%s_%s", r->rg, r->name);
    snprintf(kc, sizeof kc,
             "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://127.0.0.1:47011\n  "
             "name: %s\n"
             "contexts:\n- context:\n    cluster: %s\n    user: %s\n  name: %s\ncurrent-context: %s\n"
             "users:\n- name: %s\n  user: {}\npreferences: {}\n",
             r->name, r->name, user, r->name, r->name, user);
    char *kc64 = b64(kc);
    if (!kc64) { /* an empty kubeconfig would look like a valid answer */
        api_error(resp, 503, "ServiceUnavailable", "Out of memory; retry.");
        goto out;
    }
    cJSON *o = cJSON_CreateObject();
    if (client_proxy) {
        cJSON *h = cJSON_AddObjectToObject(o, "hybridConnectionConfig");
        cJSON_AddNumberToObject(h, "expirationTime", (double)exp);
        cJSON_AddStringToObject(h, "hybridConnectionName", hc);
        cJSON_AddStringToObject(h, "relay", a->relay_host);
        cJSON_AddStringToObject(h, "token", tok);
        cJSON_AddStringToObject(h, "relayTid", idp_tenant(a->idp));
        cJSON_AddStringToObject(h, "relayType", "ArcHub");
    }
    cJSON *kcs = cJSON_AddArrayToObject(o, "kubeconfigs");
    cJSON *k = cJSON_CreateObject();
    cJSON_AddStringToObject(k, "name", "credentialUser");
    cJSON_AddStringToObject(k, "value", kc64);
    cJSON_AddItemToArray(kcs, k);
    free(kc64);
    char es[24];
    snprintf(es, sizeof es, "%lld", (long long)exp);
    log_kv(LOG_INFO, "arm.credential", "id", r->id, "by", who->oid, "method", method ? method : "AAD",
           "expires", es, NULL);
    api_json(resp, 200, print(o));
out:
    cJSON_Delete(in);
    cJSON_Delete(sec);
    free(g.body);
    free(g.secret);
}

/* ---- subscriptions ------------------------------------------------------ */

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
    lower(prefix);
    any_walk w = {prefix, 0};
    walk_assignments(a, who, any_under, &w);
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

/* ---- role assignments and definitions ----------------------------------- */

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

/* The scope part of a path that continues with
 * /providers/Microsoft.Authorization/<kind>[/<name>]. */
typedef struct authz_ref {
    char scope[1024];
    char kind[32]; /* roleAssignments | roleDefinitions */
    char name[SEG_MAX];
    int has_name;
} authz_ref;

static int parse_authz(char segs[MAX_SEGS][SEG_MAX], size_t n, authz_ref *r)
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

static int valid_scope(arm_t *a, const char *scope)
{
    char segs[MAX_SEGS][SEG_MAX];
    size_t n;
    url_slice p = {scope, strlen(scope)};
    if (split_path(p, segs, &n) < 0 || n < 2 || strcasecmp(segs[0], "subscriptions") || !find_sub(a, segs[1]))
        return 0;
    if (n >= 4 && !valid_rg_name(segs[3]))
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
        push_row(w->arr, b);
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
    lower(scope_l);
    snprintf(pid_l, sizeof pid_l, "%s", pid);
    lower(pid_l);
    ra_walk w = {.scope = scope_l, .role_id = role->id};
    store_list(a->s, ST_RA, NULL, pid_l, ra_dup_row, &w);
    if (w.dup) {
        api_error(resp, 409, "RoleAssignmentExists", "The role assignment already exists.");
        goto out;
    }
    iso_now(now);
    cJSON *o = cJSON_CreateObject();
    char id[1400], rdid[300];
    snprintf(id, sizeof id, "%s%s/providers/" RA_TYPE "/%s", strcmp(r->scope, "/") ? r->scope : "", "",
             r->name);
    const char *sub = "";
    char segs[MAX_SEGS][SEG_MAX];
    size_t ns;
    url_slice sp = {r->scope, strlen(r->scope)};
    if (split_path(sp, segs, &ns) == 0 && ns >= 2)
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
    lower(key);
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

static void authz_route(arm_t *a, const authz_ref *r, const caller *who, const api_req *req, api_resp *resp)
{
    if (!valid_scope(a, r->scope)) {
        api_error(resp, 400, "InvalidScope",
                  "The scope '%.300s' is not valid here: it must be under a known subscription.", r->scope);
        return;
    }
    char sub[SEG_MAX];
    {
        char segs[MAX_SEGS][SEG_MAX];
        size_t ns;
        url_slice sp = {r->scope, strlen(r->scope)};
        split_path(sp, segs, &ns);
        snprintf(sub, sizeof sub, "%s", segs[1]);
    }
    if (!strcasecmp(r->kind, "roleDefinitions")) {
        if (!api_method(req, "GET")) {
            api_error(resp, 405, "MethodNotAllowed", "Role definitions are built in and read-only here.");
            return;
        }
        size_t n;
        const rbac_role *roles = rbac_roles(&n);
        if (r->has_name) {
            const rbac_role *role = rbac_role_by_id(r->name);
            if (!role)
                api_error(resp, 404, "RoleDefinitionDoesNotExist",
                          "The specified role definition with ID '%.64s' does not exist.", r->name);
            else
                api_json(resp, 200, print(role_def_json(role, sub)));
            return;
        }
        char filter[512], want[256] = "";
        if (api_query(req, "$filter", filter, sizeof filter)) {
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
        api_json(resp, 200, print(o));
        return;
    }
    if (strcasecmp(r->kind, "roleAssignments")) {
        api_error(resp, 400, "InvalidResourceType", "The resource type '%.64s' is not supported.", r->kind);
        return;
    }
    if (!r->has_name) {
        if (!api_method(req, "GET")) {
            api_error(resp, 405, "MethodNotAllowed", "Use GET to list role assignments.");
            return;
        }
        if (require(a, who, r->scope, RBAC_READ, "Microsoft.Authorization/roleAssignments/read", resp) < 0)
            return;
        char filter[512] = "", pid[128] = "", scope_l[1024];
        api_query(req, "$filter", filter, sizeof filter);
        const char *q = strstr(filter, "principalId eq '");
        if (q) {
            snprintf(pid, sizeof pid, "%s", q + 16);
            char *end = strchr(pid, '\'');
            if (end)
                *end = '\0';
            lower(pid);
        }
        snprintf(scope_l, sizeof scope_l, "%s", r->scope);
        lower(scope_l);
        cJSON *o = cJSON_CreateObject();
        ra_walk w = {.scope = scope_l,
                     .at_scope = strstr(filter, "atScope()") != NULL,
                     .arr = cJSON_AddArrayToObject(o, "value")};
        store_list(a->s, ST_RA, NULL, pid[0] ? pid : NULL, ra_list_row, &w);
        api_json(resp, 200, print(o));
        return;
    }
    char id[1400], key[1400];
    snprintf(id, sizeof id, "%s/providers/" RA_TYPE "/%s", strcmp(r->scope, "/") ? r->scope : "", r->name);
    snprintf(key, sizeof key, "%s", id);
    lower(key);
    if (api_method(req, "PUT")) {
        if (require(a, who, r->scope, RBAC_ASSIGN, "Microsoft.Authorization/roleAssignments/write", resp) ==
            0)
            ra_put(a, r, who, req, resp);
        return;
    }
    if (api_method(req, "GET") || api_method(req, "DELETE")) {
        int del = api_method(req, "DELETE");
        if (require(a, who, r->scope, del ? RBAC_ASSIGN : RBAC_READ,
                    del ? "Microsoft.Authorization/roleAssignments/delete"
                        : "Microsoft.Authorization/roleAssignments/read",
                    resp) < 0)
            return;
        got_row g = {0};
        int rc = store_get(a->s, key, copy_row, &g);
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
                log_kv(LOG_INFO, "arm.role_assignment_delete", "id", id, "by", who->oid, NULL);
            api_json(resp, 200, g.body);
            g.body = NULL;
        }
        free(g.body);
        free(g.secret);
        return;
    }
    api_error(resp, 405, "MethodNotAllowed", "Role assignments take PUT, GET and DELETE.");
}

/* ---- routing ------------------------------------------------------------ */

/* ARM's cloud metadata (GET /metadata/endpoints), which `az cloud register
 * --endpoint-resource-manager` reads to find the sign-in authority and
 * audiences: the old shape (graphEndpoint, authentication) and the 2022
 * one (name, resourceManager, suffixes) in one document. az adds the path
 * to an endpoint ending in '/', so "//metadata/endpoints" arrives too. */
static int metadata(arm_t *a, const api_req *req, api_resp *resp)
{
    const char *p = req->path.p;
    size_t n = req->path.n;
    while (n > 1 && p[0] == '/' && p[1] == '/')
        p++, n--;
    if (n != 19 || memcmp(p, "/metadata/endpoints", 19) != 0)
        return 0;
    char u[700];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "ArcHub");
    snprintf(u, sizeof u, "%s/", a->public_url);
    cJSON_AddStringToObject(o, "resourceManager", u);
    cJSON_AddStringToObject(o, "galleryEndpoint", "");
    cJSON_AddStringToObject(o, "portalEndpoint", "");
    snprintf(u, sizeof u, "%s/graph/", a->public_url);
    cJSON_AddStringToObject(o, "graphEndpoint", u);
    cJSON_AddStringToObject(o, "graphAudience", u);
    cJSON_AddStringToObject(o, "microsoftGraphResourceId", u);
    cJSON *au = cJSON_AddObjectToObject(o, "authentication");
    cJSON_AddStringToObject(au, "loginEndpoint", idp_issuer(a->idp));
    cJSON *aud = cJSON_AddArrayToObject(au, "audiences");
    cJSON_AddItemToArray(aud, cJSON_CreateString(a->aud));
    cJSON_AddStringToObject(au, "tenant", "adfs");
    cJSON_AddStringToObject(au, "identityProvider", "ADFS");
    /* The same, shaped as `az cloud register --cloud-config @file` reads
     * it: az 2.45 takes the Microsoft Graph endpoint from there only. */
    cJSON *ep = cJSON_AddObjectToObject(o, "endpoints");
    snprintf(u, sizeof u, "%s/", a->public_url);
    cJSON_AddStringToObject(ep, "resourceManager", u);
    cJSON_AddStringToObject(ep, "management", a->aud);
    cJSON_AddStringToObject(ep, "activeDirectory", idp_issuer(a->idp));
    cJSON_AddStringToObject(ep, "activeDirectoryResourceId", a->aud);
    snprintf(u, sizeof u, "%s/graph/", a->public_url);
    cJSON_AddStringToObject(ep, "activeDirectoryGraphResourceId", u);
    cJSON_AddStringToObject(ep, "microsoftGraphResourceId", u);
    cJSON_AddObjectToObject(o, "suffixes");
    api_json(resp, 200, print(o));
    return 1;
}

int arm_route(void *ud, const api_req *req, api_resp *resp)
{
    arm_t *a = ud;
    if (api_method(req, "GET") && metadata(a, req, resp))
        return 1;
    if (req->path.n < 14 || strncasecmp(req->path.p, "/subscriptions", 14) != 0)
        return 0;
    char(*segs)[SEG_MAX] = malloc(MAX_SEGS * SEG_MAX);
    size_t n = 0;
    if (!segs) {
        api_error(resp, 503, "ServerBusy", "Out of memory.");
        return 1;
    }
    caller who;
    memset(&who, 0, sizeof who);
    if (split_path(req->path, segs, &n) < 0) {
        api_error(resp, 400, "InvalidResourceId",
                  "The resource path is not valid: empty, '.' or '..' segments and encoded '/' or control "
                  "characters "
                  "are refused.");
        goto out;
    }
    if (authenticate(a, req, &who, resp) < 0)
        goto out;
    if (n == 1) {
        cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "value");
        size_t ns;
        const idp_subscription *subs = idp_subscriptions(a->idp, &ns);
        for (size_t i = 0; i < ns; i++)
            if (sub_visible(a, &who, &subs[i]))
                cJSON_AddItemToArray(arr, sub_json(a, &subs[i]));
        cJSON *cnt = cJSON_CreateObject();
        cJSON_AddNumberToObject(cnt, "type", 0);
        cJSON_AddNumberToObject(cnt, "value", cJSON_GetArraySize(arr));
        cJSON_AddItemToObject(o, "count", cnt);
        api_json(resp, 200, print(o));
        goto out;
    }
    const idp_subscription *sub = find_sub(a, segs[1]);
    if (!sub) {
        api_error(resp, 404, "SubscriptionNotFound", "The subscription '%.64s' could not be found.", segs[1]);
        goto out;
    }
    if (n == 2) {
        if (!sub_visible(a, &who, sub))
            api_error(resp, 404, "SubscriptionNotFound", "The subscription '%.64s' could not be found.",
                      segs[1]);
        else
            api_json(resp, 200, print(sub_json(a, sub)));
        goto out;
    }
    authz_ref ar;
    int az = parse_authz(segs, n, &ar);
    if (az == 0) {
        authz_route(a, &ar, &who, req, resp);
        goto out;
    }
    if (az < 0) {
        api_error(resp, 400, "InvalidResourceId", "The Microsoft.Authorization path is not valid.");
        goto out;
    }
    /* /subscriptions/S/providers/Microsoft.Kubernetes/connectedClusters */
    if (n == 5 && !strcasecmp(segs[2], "providers") && !strcasecmp(segs[3], "Microsoft.Kubernetes") &&
        !strcasecmp(segs[4], "connectedClusters")) {
        if (check_api_version(req, resp) < 0)
            goto out;
        if (!api_method(req, "GET")) {
            api_error(resp, 405, "MethodNotAllowed", "Use GET to list connected clusters.");
            goto out;
        }
        char prefix[300];
        snprintf(prefix, sizeof prefix, "/subscriptions/%s/", sub->id);
        lower(prefix);
        cc_list(a, &who, prefix, resp);
        goto out;
    }
    if (n >= 7 && !strcasecmp(segs[2], "resourceGroups") && !strcasecmp(segs[4], "providers") &&
        !strcasecmp(segs[5], "Microsoft.Kubernetes") && !strcasecmp(segs[6], "connectedClusters")) {
        if (check_api_version(req, resp) < 0)
            goto out;
        if (!valid_rg_name(segs[3])) {
            api_error(resp, 400, "InvalidResourceGroupName",
                      "Resource group names are 1-90 letters, digits, '_', '-', '.', '(' or ')' and cannot "
                      "end in '.'.");
            goto out;
        }
        if (n == 7) {
            if (!api_method(req, "GET")) {
                api_error(resp, 405, "MethodNotAllowed", "Use GET to list connected clusters.");
                goto out;
            }
            char prefix[600];
            snprintf(prefix, sizeof prefix, "/subscriptions/%s/resourcegroups/%s", sub->id, segs[3]);
            lower(prefix);
            cc_list(a, &who, prefix, resp);
            goto out;
        }
        if (!valid_cc_name(segs[7])) {
            api_error(resp, 400, "InvalidResourceName",
                      "Connected cluster names are 1-63 letters, digits, '-' or '_', starting with a letter "
                      "or digit.");
            goto out;
        }
        cc_ref r;
        cc_make_ref(&r, sub->id, segs[3], segs[7]);
        if (n == 9 && !strcasecmp(segs[8], "listClusterUserCredential")) {
            if (!api_method(req, "POST"))
                api_error(resp, 405, "MethodNotAllowed", "Use POST for listClusterUserCredential.");
            else if (require(a, &who, r.id, RBAC_CRED,
                             "Microsoft.Kubernetes/connectedClusters/listClusterUserCredential/action",
                             resp) == 0)
                cc_credential(a, &r, &who, req, resp);
            goto out;
        }
        if (n != 8) {
            api_error(resp, 404, "NotFound", "No route for this connectedClusters path.");
            goto out;
        }
        if (api_method(req, "GET")) {
            if (require(a, &who, r.id, RBAC_READ, "Microsoft.Kubernetes/connectedClusters/read", resp) == 0)
                cc_get(a, &r, resp);
        } else if (api_method(req, "PUT")) {
            if (require(a, &who, r.id, RBAC_WRITE, "Microsoft.Kubernetes/connectedClusters/write", resp) == 0)
                cc_put(a, &r, &who, req, resp);
        } else if (api_method(req, "PATCH")) {
            if (require(a, &who, r.id, RBAC_WRITE, "Microsoft.Kubernetes/connectedClusters/write", resp) == 0)
                cc_patch(a, &r, &who, req, resp);
        } else if (api_method(req, "DELETE")) {
            if (require(a, &who, r.id, RBAC_WRITE, "Microsoft.Kubernetes/connectedClusters/delete", resp) ==
                0)
                cc_delete(a, &r, &who, resp);
        } else {
            api_error(resp, 405, "MethodNotAllowed", "connectedClusters take GET, PUT, PATCH and DELETE.");
        }
        goto out;
    }
    if (n >= 3 && !strcasecmp(segs[2], "resourceGroups")) {
        if (n == 4 && valid_rg_name(segs[3]) && api_method(req, "GET")) {
            /* Resource groups are implicit; answer az's existence check. */
            cJSON *o = cJSON_CreateObject();
            char id[600];
            snprintf(id, sizeof id, "/subscriptions/%s/resourceGroups/%s", sub->id, segs[3]);
            cJSON_AddStringToObject(o, "id", id);
            cJSON_AddStringToObject(o, "name", segs[3]);
            cJSON_AddStringToObject(o, "type", "Microsoft.Resources/resourceGroups");
            cJSON_AddStringToObject(o, "location", "local");
            cJSON *p = cJSON_AddObjectToObject(o, "properties");
            cJSON_AddStringToObject(p, "provisioningState", "Succeeded");
            api_json(resp, 200, print(o));
            goto out;
        }
    }
    api_error(resp, 404, "NotFound", "No route for this path on arc-hub's control plane.");
out:
    jwt_claims_free(&who.c);
    free(segs);
    return 1;
}

typedef struct boot_walk {
    arm_t *a;
    int n, failed;
} boot_walk;

static int boot_row(void *ud, const store_row *r)
{
    boot_walk *w = ud;
    if (!r->secret || register_hc(w->a, r->secret) < 0)
        w->failed++;
    else
        w->n++;
    return 0;
}

arm_t *arm_new(store_t *s, idp_t *idp, relay_t *relay, const arm_opts *o, char err[256])
{
    arm_t *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, 256, "out of memory");
        return NULL;
    }
    a->s = s;
    a->idp = idp;
    a->relay = relay;
    a->o = *o;
    if (a->o.credential_ttl <= 0)
        a->o.credential_ttl = 3600;
    if (a->o.heartbeat_s <= 0)
        a->o.heartbeat_s = 60;
    snprintf(a->public_url, sizeof a->public_url, "%s", o->public_url);
    url_parts up;
    if (url_parse(o->public_url, strlen(o->public_url), &up) < 0 || up.host.n >= sizeof a->sas_host) {
        snprintf(err, 256, "public URL %s is not https://host[:port]", o->public_url);
        free(a);
        return NULL;
    }
    const char *hs = up.host.p;
    size_t hl = up.path_query.p ? (size_t)(up.path_query.p - hs) : strlen(hs);
    snprintf(a->relay_host, sizeof a->relay_host, "%.*s", (int)hl, hs);
    snprintf(a->sas_host, sizeof a->sas_host, "%.*s", (int)up.host.n, up.host.p);
    lower(a->sas_host);
    if (o->arm_audience)
        snprintf(a->aud, sizeof a->aud, "%s", o->arm_audience);
    else
        snprintf(a->aud, sizeof a->aud, "%s/", o->public_url);
    snprintf(a->aud_noslash, sizeof a->aud_noslash, "%s", a->aud);
    size_t al = strlen(a->aud_noslash);
    if (al && a->aud_noslash[al - 1] == '/')
        a->aud_noslash[al - 1] = '\0';
    boot_walk w = {a, 0, 0};
    if (store_list(s, ST_CC, NULL, NULL, boot_row, &w) < 0) {
        snprintf(err, 256, "cannot read clusters from the state store: %s", store_error(s));
        free(a);
        return NULL;
    }
    char nb[16];
    snprintf(nb, sizeof nb, "%d", w.n);
    log_kv(LOG_INFO, "arm.start", "clusters", nb, "audience", a->aud, NULL);
    return a;
}

void arm_free(arm_t *a)
{
    free(a);
}

/* ---- for agentapi.c ----------------------------------------------------- */

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
