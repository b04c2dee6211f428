/* agentapi: heartbeat/registration and azure-rbac checks. See agentapi.h. */
#include "agentapi.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "enc.h"
#include "json.h"
#include "jwt.h"
#include "log.h"
#include "rbac.h"
#include "sas.h"

#define CC_ST "cc"

/* ---- role-assignment version (for the agent's azure-rbac cache) --------
 * A digest of every role assignment the store holds (their ids and
 * bodies, in id order). The heartbeat carries it; an agent that sees it
 * change drops its cached allow/deny decisions at once (agent/authz.h).
 * Computed per heartbeat, by reading: no write path has to remember to
 * bump anything. */
#define RA_ST "ra"

static int ra_digest_row(void *ud, const store_row *r)
{
    EVP_MD_CTX *m = ud;
    return EVP_DigestUpdate(m, r->id, strlen(r->id) + 1) != 1 ||
           EVP_DigestUpdate(m, r->body, strlen(r->body) + 1) != 1;
}

/* 16 hex digits into out[17], or "" when the store could not be read. */
static void ra_version(arm_t *a, char out[17])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    out[0] = '\0';
    if (m && EVP_DigestInit_ex(m, EVP_sha256(), NULL) == 1 &&
        store_list(arm_store(a), RA_ST, NULL, NULL, ra_digest_row, m) >= 0 &&
        EVP_DigestFinal_ex(m, d, &len) == 1 && len >= 8)
        for (int i = 0; i < 8; i++)
            snprintf(out + 2 * i, 3, "%02x", d[i]);
    EVP_MD_CTX_free(m);
}
/* ---- end of role-assignment version ----------------------------------- */

typedef struct row_copy {
    char *body, *secret, *parent;
} row_copy;

static void row_free(row_copy *c)
{
    free(c->body), free(c->secret), free(c->parent);
    c->body = c->secret = c->parent = NULL;
}

/* store_get callback: all of the row or nothing (-1: memory ran out). */
static int copy(void *ud, const store_row *r)
{
    row_copy *c = ud;
    c->body = strdup(r->body);
    c->secret = r->secret ? strdup(r->secret) : NULL;
    c->parent = strdup(r->parent);
    if (!c->body || !c->parent || (r->secret && !c->secret)) {
        row_free(c);
        return -1;
    }
    return 0;
}

static EVP_PKEY *public_key(const char *b64)
{
    size_t n = strlen(b64);
    uint8_t *der = malloc(n);
    long dl = der ? enc_b64_decode(b64, n, der, n) : -1;
    const uint8_t *p = der;
    EVP_PKEY *k = dl > 0 ? d2i_PUBKEY(NULL, &p, dl) : NULL;
    free(der);
    ERR_clear_error();
    return k;
}

/* Verifies the agent's JWT; on success fills the cluster's row. */
static int authenticate(arm_t *a, const api_req *req, row_copy *row, char id[1024], api_resp *resp)
{
    const http_header *h = http_find(req->http->headers, req->http->nheaders, "Authorization");
    if (!h || h->value_len < 8 || strncasecmp(h->value, "Bearer ", 7) != 0) {
        api_error(resp, 401, "AuthenticationFailed", "The agent's bearer token is missing.");
        return -1;
    }
    const char *tok = h->value + 7;
    size_t tl = h->value_len - 7;
    char key[1024];
    if (jwt_peek_issuer(tok, tl, id, 1024) < 0 || strncasecmp(id, "/subscriptions/", 15) != 0) {
        api_error(resp, 401, "InvalidAuthenticationToken", "The agent token does not name a cluster.");
        return -1;
    }
    snprintf(key, sizeof key, "%s", id);
    for (char *c = key; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    int rc = store_get(arm_store(a), key, copy, row);
    if (rc <= 0) {
        api_error(resp, rc < 0 ? 500 : 404, rc < 0 ? "InternalServerError" : "ResourceNotFound",
                  "The cluster %.300s is %s.", id, rc < 0 ? "unreadable" : "not registered (deleted?)");
        return -1;
    }
    cJSON *b = cJSON_Parse(row->body);
    const char *pk = api_jstr(cJSON_GetObjectItemCaseSensitive(b, "properties"), "agentPublicKeyCertificate");
    EVP_PKEY *k = pk ? public_key(pk) : NULL;
    cJSON_Delete(b);
    if (!k) {
        api_error(resp, 401, "InvalidAuthenticationToken",
                  "The cluster has no usable agentPublicKeyCertificate; run az connectedk8s connect again.");
        row_free(row);
        return -1;
    }
    jwt_key jk = {.kid = "agent",
                  .alg = EVP_PKEY_get_base_id(k) == EVP_PKEY_EC ? JWT_ALG_ES256 : JWT_ALG_RS256,
                  .pkey = k};
    jwt_keyset ks = {&jk, 1};
    char aud[700], err[JWT_ERRLEN];
    snprintf(aud, sizeof aud, "%s/agent", arm_options(a)->public_url);
    jwt_expect w = {.issuer = id, .audience = aud, .now = (int64_t)time(NULL), .skew = 60};
    jwt_claims c;
    rc = jwt_verify(tok, tl, &ks, &w, &c, err);
    jwt_claims_free(&c);
    EVP_PKEY_free(k);
    if (rc != JWT_OK) {
        log_kv(LOG_WARN, "agent.auth_failed", "cluster", id, "reason", err, "peer", req->peer, NULL);
        api_error(resp, 401, "InvalidAuthenticationToken", "The agent token is invalid (%s).", err);
        row_free(row);
        return -1;
    }
    return 0;
}

/* Feature switches from properties.arcAgentryConfigurations
 * [{"feature": "cluster-connect", "settings": {"enabled": "true"}}]. */
static int feature_on(const cJSON *props, const char *name, int dflt)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(props, "arcAgentryConfigurations"), *f;
    cJSON_ArrayForEach (f, arr) {
        const char *fn = api_jstr(f, "feature");
        if (!fn || strcasecmp(fn, name) != 0)
            continue;
        const char *en = api_jstr(cJSON_GetObjectItemCaseSensitive(f, "settings"), "enabled");
        return en ? strcasecmp(en, "true") == 0 : dflt;
    }
    return dflt;
}

static void heartbeat(arm_t *a, const api_req *req, api_resp *resp)
{
    row_copy row = {0};
    char id[1024];
    if (authenticate(a, req, &row, id, resp) < 0)
        return;
    cJSON *in = req->body_len ? cJSON_ParseWithLength(req->body, req->body_len) : cJSON_CreateObject();
    cJSON *b = cJSON_Parse(row.body), *sec = cJSON_Parse(row.secret ? row.secret : "{}");
    cJSON *props = cJSON_GetObjectItemCaseSensitive(b, "properties");
    const char *hc = api_jstr(sec, "hc"), *lk = api_jstr(sec, "listenKey");
    if (!cJSON_IsObject(in) || !props || !hc || !lk) {
        api_error(resp, 400, "InvalidRequestContent",
                  "A heartbeat is a JSON object; the cluster needs a relay entity.");
        goto out;
    }
    /* The report goes to memory; beats.c writes it to the store in the
     * background, off the event loop. */
    char key[1024];
    snprintf(key, sizeof key, "%s", id);
    for (char *c = key; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    beat *e = beats_touch(arm_beats(a), key);
    if (!e) {
        api_error(resp, 503, "ServiceUnavailable", "Out of memory; retry.");
        goto out;
    }
    time_t t = time(NULL);
    e->last_heartbeat = (int64_t)t;
    const char *v = api_jstr(in, "agentVersion");
    if (v && strlen(v) < sizeof e->agent_version)
        snprintf(e->agent_version, sizeof e->agent_version, "%s", v);
    v = api_jstr(in, "kubernetesVersion");
    if (v && strlen(v) < sizeof e->k8s_version)
        snprintf(e->k8s_version, sizeof e->k8s_version, "%s", v);
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(in, "totalNodeCount");
    if (cJSON_IsNumber(nodes) && nodes->valuedouble >= 0 && nodes->valuedouble < 1e7)
        e->nodes = (int)nodes->valuedouble;
    beats_changed(arm_beats(a), e);
    int64_t exp = (int64_t)t + 3600;
    char resource[600], tok[SAS_MAX_TOKEN], relay[400];
    snprintf(resource, sizeof resource, "https://%s/%s", arm_sas_host(a), hc);
    if (sas_create(resource, "listen", lk, exp, tok, sizeof tok) < 0) {
        api_error(resp, 500, "InternalServerError", "Could not sign the listen token.");
        goto out;
    }
    snprintf(relay, sizeof relay, "wss://%s", arm_relay_host(a));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "relay", relay);
    cJSON_AddStringToObject(o, "hybridConnectionName", hc);
    cJSON_AddStringToObject(o, "listenToken", tok);
    cJSON_AddNumberToObject(o, "expiresOn", (double)exp);
    cJSON_AddNumberToObject(o, "heartbeatSeconds", arm_options(a)->heartbeat_s);
    char rav[17];
    ra_version(a, rav);
    if (rav[0])
        cJSON_AddStringToObject(o, "roleAssignmentsVersion", rav);
    cJSON *f = cJSON_AddObjectToObject(o, "features");
    const cJSON *aad = cJSON_GetObjectItemCaseSensitive(props, "aadProfile");
    cJSON_AddBoolToObject(f, "clusterConnect", feature_on(props, "cluster-connect", 1));
    cJSON_AddBoolToObject(f, "azureRbac",
                          feature_on(props, "azure-rbac",
                                     cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(aad, "enableAzureRBAC"))));
    cJSON_AddBoolToObject(f, "customLocations", feature_on(props, "custom-locations", 0));
    /* Whom the agent trusts for user tokens: this hub's issuer, so an
     * installed agent needs no key files. */
    cJSON_AddStringToObject(o, "issuer", idp_issuer(arm_idp(a)));
    cJSON_AddStringToObject(o, "audience",
                            arm_options(a)->agent_audience ? arm_options(a)->agent_audience
                                                           : "6256c85f-0aad-4d50-b960-e6e9b21efe35");
    cJSON_AddItemToObject(o, "jwks", cJSON_Parse(idp_jwks(arm_idp(a))));
    api_json(resp, 200, cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
    log_kv(LOG_DEBUG, "agent.heartbeat", "cluster", id, "peer", req->peer, NULL);
out:
    cJSON_Delete(in);
    cJSON_Delete(b);
    cJSON_Delete(sec);
    row_free(&row);
}

static const char *level_name(unsigned need)
{
    return need == RBAC_K8S_VIEW    ? "viewer"
           : need == RBAC_K8S_WRITE ? "writer"
           : need == RBAC_K8S_ADMIN ? "admin"
                                    : "cluster-admin";
}

static void checkaccess(arm_t *a, const api_req *req, api_resp *resp)
{
    row_copy row = {0};
    char id[1024];
    if (authenticate(a, req, &row, id, resp) < 0)
        return;
    row_free(&row);
    cJSON *in = cJSON_ParseWithLength(req->body, req->body_len);
    const char *user = api_jstr(in, "user"), *verb = api_jstr(in, "verb");
    const char *group = api_jstr(in, "group"), *res = api_jstr(in, "resource"),
               *ns = api_jstr(in, "namespace");
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(in, "groups");
    int non_resource = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(in, "nonResource"));
    if (!user || !verb || (!non_resource && !res) || strlen(user) > 128 || (ns && strlen(ns) > 253) ||
        (groups && !cJSON_IsArray(groups)) || cJSON_GetArraySize(groups) > 4096) {
        api_error(resp, 400, "InvalidRequestContent",
                  "checkaccess wants user, verb, resource or nonResource.");
        cJSON_Delete(in);
        return;
    }
    size_t ng = (size_t)cJSON_GetArraySize(groups), k = 0;
    char **gs = calloc(ng + 1, sizeof *gs);
    if (!gs) {
        api_error(resp, 503, "ServiceUnavailable", "Out of memory; retry.");
        cJSON_Delete(in);
        return;
    }
    const cJSON *g;
    cJSON_ArrayForEach (g, groups)
        if (cJSON_IsString(g))
            gs[k++] = g->valuestring;
    char target[1400];
    if (ns && *ns)
        snprintf(target, sizeof target, "%s/namespaces/%s", id, ns);
    else
        snprintf(target, sizeof target, "%s", id);
    unsigned need = rbac_k8s_required(verb, group ? group : "", res ? res : "", ns, non_resource);
    unsigned have =
        arm_perms_of(a, user, gs, k, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(in, "overage")), target);
    int allowed = (have & need) == need;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "allowed", allowed);
    cJSON_AddStringToObject(o, "level", level_name(need));
    char reason[600];
    if (allowed)
        snprintf(reason, sizeof reason, "a role assignment at or above %s grants %s", target,
                 level_name(need));
    else
        snprintf(reason, sizeof reason,
                 "User %s does not have access to %s %s%s%s in Azure (needs an Azure Arc Kubernetes %s role "
                 "at the "
                 "cluster%s). Update role assignment to allow access.",
                 user, verb, non_resource ? "this path" : res, ns && *ns ? " in namespace " : "",
                 ns && *ns ? ns : "",
                 need == RBAC_K8S_VIEW    ? "Viewer"
                 : need == RBAC_K8S_WRITE ? "Writer"
                 : need == RBAC_K8S_ADMIN ? "Admin"
                                          : "Cluster Admin",
                 ns && *ns ? " or namespace" : "");
    cJSON_AddStringToObject(o, "reason", reason);
    api_json(resp, 200, cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
    free(gs);
    cJSON_Delete(in);
}

int agentapi_route(void *ud, const api_req *req, api_resp *resp)
{
    arm_t *a = ud;
    if (req->path.n < 10 || memcmp(req->path.p, "/agent/v1/", 10) != 0)
        return 0;
    if (!api_method(req, "POST")) {
        api_error(resp, 405, "MethodNotAllowed", "Agent calls are POSTs.");
        return 1;
    }
    url_slice rest = {req->path.p + 10, req->path.n - 10};
    if (rest.n == 9 && !memcmp(rest.p, "heartbeat", 9))
        heartbeat(a, req, resp);
    else if (rest.n == 11 && !memcmp(rest.p, "checkaccess", 11))
        checkaccess(a, req, resp);
    else
        api_error(resp, 404, "NotFound", "No such agent call.");
    return 1;
}
