/* arm_clusters: connected clusters. See arm_clusters.h. */
#include "arm_clusters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "enc.h"
#include "json.h"
#include "log.h"
#include "sas.h"

/* What the agent reported since the row was last written (beats.h). */
static void overlay_beat(const beat *e, cJSON *props, cJSON *sec)
{
    char when[32];
    time_t t = (time_t)e->last_heartbeat;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    api_set_str(props, "lastConnectivityTime", when);
    if (e->agent_version[0])
        api_set_str(props, "agentVersion", e->agent_version);
    if (e->k8s_version[0])
        api_set_str(props, "kubernetesVersion", e->k8s_version);
    if (e->nodes >= 0) {
        cJSON_DeleteItemFromObjectCaseSensitive(props, "totalNodeCount");
        cJSON_AddNumberToObject(props, "totalNodeCount", e->nodes);
    }
    cJSON *prof = cJSON_GetObjectItemCaseSensitive(props, "arcAgentProfile");
    if (!cJSON_IsObject(prof)) {
        cJSON_DeleteItemFromObjectCaseSensitive(props, "arcAgentProfile");
        prof = cJSON_AddObjectToObject(props, "arcAgentProfile");
    }
    api_set_str(prof, "agentState", "Succeeded");
    cJSON_DeleteItemFromObjectCaseSensitive(sec, "lastHeartbeat");
    cJSON_AddNumberToObject(sec, "lastHeartbeat", (double)e->last_heartbeat);
}

/* Fills the live fields (connectivity, the agent's latest report) into a
 * stored body; `key` is the cluster's store key. */
static void cc_live(arm_t *a, const char *key, cJSON *body, const char *secret)
{
    cJSON *props = cJSON_GetObjectItemCaseSensitive(body, "properties");
    cJSON *sec = secret ? cJSON_Parse(secret) : NULL;
    const beat *e = props && sec ? beats_find(a->beats, key) : NULL;
    if (e)
        overlay_beat(e, props, sec);
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
        arm_iso_now(now);
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
    int exists = store_get(a->s, r->key, arm_copy_row, &old);
    if (exists < 0) {
        api_store_failed(resp, store_error(a->s));
        cJSON_Delete(in);
        return;
    }
    cJSON *prev = exists ? cJSON_Parse(old.body) : NULL;
    if (!exists) /* reports held for an earlier cluster of this name are not this one's */
        beats_drop(a->beats, r->key);
    char now[32];
    arm_iso_now(now);
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
    cc_live(a, r->key, body, secret);
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
    int rc = store_get(a->s, r->key, arm_copy_row, g);
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
    cc_live(a, r->key, b, g.secret);
    api_json(resp, 200, arm_print(b));
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
    arm_iso_now(now);
    api_set_str(sd, "lastModifiedBy", who->oid);
    api_set_str(sd, "lastModifiedAt", now);
    if (cc_save(a, r, b, g.secret, mark) < 0) {
        api_store_failed(resp, store_error(a->s));
        goto out;
    }
    log_kv(LOG_INFO, "arm.cluster_patch", "id", r->id, "by", who->oid, NULL);
    cc_live(a, r->key, b, g.secret);
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
    int rc = store_get(a->s, r->key, arm_copy_row, &g);
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
        beats_drop(a->beats, r->key);
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
    if (!(arm_perms_at(w->a, w->who, r->id) & RBAC_READ))
        return 0;
    cJSON *b = cJSON_Parse(r->body);
    if (b) {
        cc_live(w->a, r->id, b, r->secret);
        arm_push_row(w->arr, b);
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
    api_json(resp, 200, arm_print(o));
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
    api_json(resp, 200, arm_print(o));
out:
    cJSON_Delete(in);
    cJSON_Delete(sec);
    free(g.body);
    free(g.secret);
}

/* ---- for the router's table --------------------------------------------- */

void arm_cc_get(arm_call *k, api_resp *resp)
{
    cc_get(k->a, &k->cc, resp);
}

void arm_cc_put(arm_call *k, api_resp *resp)
{
    cc_put(k->a, &k->cc, k->who, k->req, resp);
}

void arm_cc_patch(arm_call *k, api_resp *resp)
{
    cc_patch(k->a, &k->cc, k->who, k->req, resp);
}

void arm_cc_delete(arm_call *k, api_resp *resp)
{
    cc_delete(k->a, &k->cc, k->who, resp);
}

void arm_cc_credential(arm_call *k, api_resp *resp)
{
    cc_credential(k->a, &k->cc, k->who, k->req, resp);
}

void arm_cc_list_sub(arm_call *k, api_resp *resp)
{
    char prefix[300];
    snprintf(prefix, sizeof prefix, "/subscriptions/%s/", k->sub->id);
    arm_lower(prefix);
    cc_list(k->a, k->who, prefix, resp);
}

void arm_cc_list_rg(arm_call *k, api_resp *resp)
{
    char prefix[600];
    snprintf(prefix, sizeof prefix, "/subscriptions/%s/resourcegroups/%s", k->sub->id, k->segs[3]);
    arm_lower(prefix);
    cc_list(k->a, k->who, prefix, resp);
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

int arm_clusters_boot(arm_t *a)
{
    boot_walk w = {a, 0, 0};
    return store_list(a->s, ST_CC, NULL, NULL, boot_row, &w) < 0 ? -1 : w.n;
}
