/* reg: the agent's registration with arc-hub (registered mode).
 *
 * Every heartbeat interval the agent signs a short JWT with the identity
 * key `az connectedk8s connect` gave it (iss = the cluster's resource id,
 * aud = HUB/agent) and POSTs its version and the Kubernetes version to
 * /agent/v1/heartbeat. The answer names the relay and the cluster's
 * hybrid connection, carries a fresh Listen token (channel.c renews with
 * it) and the feature switches: cluster-connect decides whether the
 * channels are open, azure-rbac whether fwd.c asks the hub before each
 * impersonated request, and roleAssignmentsVersion (when the hub sends
 * it) lets authz.c drop cached decisions as soon as role assignments
 * change. A failed call is retried with backoff; the channels keep
 * running on the token they have. Calls go over httpc: kept alive,
 * through the proxy settings; /version on the API server goes direct. */
#include "reg.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "json.h"
#include "log.h"
#include "sign.h"

#define AGENT_VERSION "0.1.0"

typedef struct reg {
    httpc_req *inflight, *version_call;
    uint64_t next_ms;
    unsigned backoff_s;
    unsigned interval_s;
    int ok_once;
} reg;

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void retry_later(agent_t *a, const char *why)
{
    reg *r = a->reg;
    r->backoff_s = r->backoff_s ? (r->backoff_s * 2 > 60 ? 60 : r->backoff_s * 2) : 2;
    r->next_ms = now_ms() + r->backoff_s * 1000ull;
    char b[16];
    snprintf(b, sizeof b, "%u", r->backoff_s);
    log_kv(LOG_WARN, "reg.failed", "reason", why, "retry_in_s", b, NULL);
}

static void apply(agent_t *a, const cJSON *o)
{
    reg *r = a->reg;
    const cJSON *relay = cJSON_GetObjectItemCaseSensitive(o, "relay");
    const cJSON *hc = cJSON_GetObjectItemCaseSensitive(o, "hybridConnectionName");
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(o, "listenToken");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(o, "expiresOn");
    const cJSON *hb = cJSON_GetObjectItemCaseSensitive(o, "heartbeatSeconds");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "features");
    if (!cJSON_IsString(relay) || !cJSON_IsString(hc) || !cJSON_IsString(tok) || !cJSON_IsNumber(exp) ||
        strlen(relay->valuestring) >= sizeof a->relay_buf || strlen(hc->valuestring) >= sizeof a->hc_buf ||
        strlen(tok->valuestring) >= sizeof a->hub_token) {
        retry_later(a, "the hub's answer lacks relay, hybridConnectionName, listenToken or expiresOn");
        return;
    }
    if (strcmp(a->relay_buf, relay->valuestring) || strcmp(a->hc_buf, hc->valuestring)) {
        if (a->channels_started)
            channel_pause_all(a); /* the entity moved: listen on the new one */
        snprintf(a->relay_buf, sizeof a->relay_buf, "%s", relay->valuestring);
        snprintf(a->hc_buf, sizeof a->hc_buf, "%s", hc->valuestring);
        log_kv(LOG_INFO, "reg.entity", "relay", a->relay_buf, "hc", a->hc_buf, NULL);
    }
    snprintf(a->hub_token, sizeof a->hub_token, "%s", tok->valuestring);
    a->hub_token_exp = (int64_t)exp->valuedouble;
    const cJSON *rv = cJSON_GetObjectItemCaseSensitive(o, "roleAssignmentsVersion");
    if (cJSON_IsString(rv) && strlen(rv->valuestring) < sizeof a->rbac_version &&
        strcmp(rv->valuestring, a->rbac_version)) {
        if (a->rbac_version[0])
            log_kv(LOG_INFO, "reg.role_assignments_changed", "version", rv->valuestring, NULL);
        snprintf(a->rbac_version, sizeof a->rbac_version, "%s", rv->valuestring);
    }
    r->interval_s = cJSON_IsNumber(hb) && hb->valuedouble >= 1 ? (unsigned)hb->valuedouble : 60;
    int cc = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(f, "clusterConnect"));
    int rbac = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "azureRbac"));
    if (rbac != a->azure_rbac)
        log_kv(LOG_INFO, "reg.feature", "azure-rbac", rbac ? "on" : "off", NULL);
    a->azure_rbac = rbac;
    if (cc != a->cluster_connect || !r->ok_once)
        log_kv(LOG_INFO, "reg.feature", "cluster-connect", cc ? "on" : "off", NULL);
    a->cluster_connect = cc;
    if (cc && !a->channels_started) {
        if (channel_start_all(a) < 0) /* the next heartbeat tries again */
            log_kv(LOG_ERROR, "reg.channels", "error", "out of memory", NULL);
    } else if (cc)
        channel_resume_all(a);
    else if (a->channels_started)
        channel_pause_all(a);
    /* The hub's own issuer, unless --issuer named another one. */
    const cJSON *iss = cJSON_GetObjectItemCaseSensitive(o, "issuer");
    const cJSON *aud = cJSON_GetObjectItemCaseSensitive(o, "audience");
    const cJSON *jwks = cJSON_GetObjectItemCaseSensitive(o, "jwks");
    if ((!a->cfg.issuer || a->cfg.issuer == a->hub_issuer) && cJSON_IsString(iss) && cJSON_IsString(aud) &&
        cJSON_IsObject(jwks) && strlen(iss->valuestring) < sizeof a->hub_issuer &&
        strlen(aud->valuestring) < sizeof a->hub_audience) {
        char *text = cJSON_PrintUnformatted(jwks), err[JWT_ERRLEN];
        jwt_keyset ks;
        if (text && jwt_keyset_parse(text, strlen(text), &ks, err) > 0) {
            jwt_keyset_free(&a->keys);
            a->keys = ks;
            snprintf(a->hub_issuer, sizeof a->hub_issuer, "%s", iss->valuestring);
            snprintf(a->hub_audience, sizeof a->hub_audience, "%s", aud->valuestring);
            a->cfg.issuer = a->hub_issuer;
            a->cfg.audience = a->hub_audience;
        }
        free(text);
    }
    r->ok_once = 1;
    r->backoff_s = 0;
    r->next_ms = now_ms() + r->interval_s * 1000ull;
}

static void on_heartbeat(void *ud, int status, const char *body, size_t len, const char *err)
{
    agent_t *a = ud;
    a->reg->inflight = NULL;
    if (status != 200) {
        char why[400];
        snprintf(why, sizeof why, "heartbeat: %s%.*s", status < 0 ? err : "HTTP error ",
                 status < 0 ? 0 : (int)(len > 300 ? 300 : len), body);
        retry_later(a, why);
        return;
    }
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (!o)
        retry_later(a, "heartbeat: the answer is not JSON");
    else
        apply(a, o);
    cJSON_Delete(o);
}

static void on_version(void *ud, int status, const char *body, size_t len, const char *err)
{
    agent_t *a = ud;
    (void)err;
    a->reg->version_call = NULL;
    if (!a->reg->ok_once)
        a->reg->next_ms = 0; /* the first heartbeat waited for this */
    if (status != 200)
        return;
    cJSON *o = cJSON_ParseWithLength(body, len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "gitVersion");
    if (cJSON_IsString(v))
        snprintf(a->k8s_version, sizeof a->k8s_version, "%s", v->valuestring);
    cJSON_Delete(o);
}

static void fetch_version(agent_t *a)
{
    reg *r = a->reg;
    if (a->k8s_version[0] || r->version_call)
        return;
    /* /version is readable by any authenticated identity; the agent needs
     * no extra RBAC for it. */
    char url[600], auth[sizeof a->token + 32];
    snprintf(url, sizeof url, "%s/version", a->cfg.apiserver);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", a->token);
    const char *h[] = {auth, NULL};
    httpc_opts ho = {
        .headers = h, .max_response = 64 * 1024, .timeout_ms = 3000, .ca_file = a->cfg.api_ca, .direct = 1};
    r->version_call = httpc_request(a->http, url, &ho, on_version, a);
}

static void heartbeat(agent_t *a)
{
    reg *r = a->reg;
    fetch_version(a);
    const char *jwt = sign_token(a->sign);
    if (!jwt) {
        retry_later(a, "cannot sign the agent token with --identity-key");
        return;
    }
    char url[600], auth[4200];
    snprintf(url, sizeof url, "%s/agent/v1/heartbeat", a->cfg.hub);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", jwt);
    unsigned mark = json_failures();
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "agentVersion", AGENT_VERSION);
    if (a->k8s_version[0])
        cJSON_AddStringToObject(b, "kubernetesVersion", a->k8s_version);
    char *body = json_print(b, mark, 0);
    cJSON_Delete(b);
    if (!body) {
        retry_later(a, "out of memory building the heartbeat");
        return;
    }
    const char *h[] = {auth, "Content-Type: application/json", NULL};
    httpc_opts ho = {.method = "POST",
                     .headers = h,
                     .body = body,
                     .body_len = strlen(body),
                     .max_response = 64 * 1024,
                     .timeout_ms = 15000,
                     .ca_file = a->cfg.relay_ca};
    r->inflight = httpc_request(a->http, url, &ho, on_heartbeat, a);
    free(body);
    if (!r->inflight)
        retry_later(a, "bad --hub URL");
}

int reg_start(agent_t *a, char err[256])
{
    if (!a->sign) {
        snprintf(err, 256, "registered mode needs --identity-key");
        return -1;
    }
    a->reg = calloc(1, sizeof(reg));
    if (!a->reg) {
        snprintf(err, 256, "out of memory");
        return -1;
    }
    a->hub_mode = 1;
    a->cfg.relay = a->relay_buf;
    a->cfg.hc = a->hc_buf;
    /* The first heartbeat carries the Kubernetes version: it goes once
     * /version answered (or failed, or after 3 s). */
    a->reg->next_ms = now_ms() + 3000;
    fetch_version(a);
    return 0;
}

void reg_tick(agent_t *a)
{
    reg *r = a->reg;
    if (!r || a->stopping || r->inflight || now_ms() < r->next_ms)
        return;
    heartbeat(a);
}

void reg_stop(agent_t *a)
{
    reg *r = a->reg;
    if (!r)
        return;
    httpc_cancel(r->inflight);
    httpc_cancel(r->version_call);
    r->inflight = r->version_call = NULL;
}
