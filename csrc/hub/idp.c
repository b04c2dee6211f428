/* idp: test/demo OIDC issuer and bearer-token verifier. See idp.h. */
#include "idp.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cert.h"
#include "enc.h"
#include "json.h"
#include "log.h"

#define DIRECTORY_MAX (16 << 20) /* a directory with thousands of group ids */

struct idp {
    char issuer[512];
    char public_url[512];
    char tenant[64];
    char kid[17];
    EVP_PKEY *key;
    jwt_keyset ks;
    char *jwks;
    idp_principal *principals;
    size_t nprincipals;
    idp_subscription *subs;
    size_t nsubs;
    char **owners;
    size_t nowners;
    int msi;
};

/* A copy of o[name] when it is a string, else NULL; sets *oom when the
 * string is there but could not be copied. */
static char *dupstr(const cJSON *o, const char *name, int *oom)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    char *s = cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
    if (cJSON_IsString(v) && !s)
        *oom = 1;
    return s;
}

static char *read_all(const char *path, size_t max, size_t *n, char err[256])
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, 256, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(max + 1);
    size_t got = buf ? fread(buf, 1, max + 1, f) : 0;
    fclose(f);
    if (!buf || got > max) {
        if (buf)
            snprintf(err, 256, "%s is larger than %zu bytes", path, max);
        else
            snprintf(err, 256, "out of memory reading %s", path);
        free(buf);
        return NULL;
    }
    buf[got] = '\0';
    *n = got;
    return buf;
}

static int load_directory(idp_t *p, const char *path, char err[256])
{
    size_t n;
    char *text = read_all(path, DIRECTORY_MAX, &n, err);
    if (!text)
        return -1;
    cJSON *root = cJSON_ParseWithLength(text, n);
    free(text);
    if (!cJSON_IsObject(root)) {
        snprintf(err, 256, "%s is not a JSON object", path);
        cJSON_Delete(root);
        return -1;
    }
    const cJSON *tid = cJSON_GetObjectItemCaseSensitive(root, "tenantId");
    if (!cJSON_IsString(tid) || strlen(tid->valuestring) >= sizeof p->tenant) {
        snprintf(err, 256, "%s: \"tenantId\" must be a string", path);
        cJSON_Delete(root);
        return -1;
    }
    snprintf(p->tenant, sizeof p->tenant, "%s", tid->valuestring);
    p->msi = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "msiEndpoint"));
    const cJSON *subs = cJSON_GetObjectItemCaseSensitive(root, "subscriptions");
    const cJSON *prs = cJSON_GetObjectItemCaseSensitive(root, "principals");
    const cJSON *owners = cJSON_GetObjectItemCaseSensitive(root, "owners");
    size_t ns = cJSON_IsArray(subs) ? (size_t)cJSON_GetArraySize(subs) : 0;
    size_t np = cJSON_IsArray(prs) ? (size_t)cJSON_GetArraySize(prs) : 0;
    size_t no = cJSON_IsArray(owners) ? (size_t)cJSON_GetArraySize(owners) : 0;
    p->subs = calloc(ns + 1, sizeof *p->subs);
    p->principals = calloc(np + 1, sizeof *p->principals);
    p->owners = calloc(no + 1, sizeof *p->owners);
    const cJSON *it;
    /* A directory read in part would hold principals without their
     * groups or owners: out of memory fails the whole load. */
    int oom = !p->subs || !p->principals || !p->owners, bad = 0;
    if (!oom)
        cJSON_ArrayForEach (it, subs) {
            idp_subscription *s = &p->subs[p->nsubs];
            s->id = dupstr(it, "subscriptionId", &oom);
            s->display_name = dupstr(it, "displayName", &oom);
            p->nsubs++; /* counted first, so that idp_free takes what was copied */
            if (oom || !s->id) {
                bad = 1;
                break;
            }
        }
    if (!bad && !oom)
        cJSON_ArrayForEach (it, prs) {
            idp_principal *r = &p->principals[p->nprincipals];
            r->name = dupstr(it, "name", &oom);
            r->type = dupstr(it, "type", &oom);
            r->object_id = dupstr(it, "objectId", &oom);
            r->app_id = dupstr(it, "appId", &oom);
            r->secret = dupstr(it, "secret", &oom);
            r->password = dupstr(it, "password", &oom);
            p->nprincipals++;
            if (!oom && (!r->name || !r->object_id))
                bad = 1;
            if (!oom && !bad && !r->type && !(r->type = strdup("User")))
                oom = 1;
            const cJSON *gs = cJSON_GetObjectItemCaseSensitive(it, "groups"), *g;
            size_t ng = cJSON_IsArray(gs) ? (size_t)cJSON_GetArraySize(gs) : 0;
            if (!oom && !bad && !(r->groups = calloc(ng + 1, sizeof *r->groups)))
                oom = 1;
            if (!oom && !bad)
                cJSON_ArrayForEach (g, gs)
                    if (cJSON_IsString(g)) {
                        if (!(r->groups[r->ngroups] = strdup(g->valuestring))) {
                            oom = 1;
                            break;
                        }
                        r->ngroups++;
                    }
            if (oom || bad)
                break;
        }
    if (!bad && !oom)
        cJSON_ArrayForEach (it, owners)
            if (cJSON_IsString(it)) {
                if (!(p->owners[p->nowners] = strdup(it->valuestring))) {
                    oom = 1;
                    break;
                }
                p->nowners++;
            }
    cJSON_Delete(root);
    if (oom) {
        snprintf(err, 256, "out of memory reading %s", path);
        return -1;
    }
    if (bad) {
        snprintf(err, 256,
                 "%s: each subscription needs \"subscriptionId\", each principal \"name\" and \"objectId\"",
                 path);
        return -1;
    }
    return 0;
}

static EVP_PKEY *load_or_make_key(const char *path, char err[256])
{
    FILE *f = fopen(path, "r");
    if (f) {
        EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA) {
            snprintf(err, 256, "%s is not an RSA private key (PEM)", path);
            EVP_PKEY_free(k);
            return NULL;
        }
        return k;
    }
    EVP_PKEY *k = EVP_RSA_gen(2048);
    char cerr[CERT_ERRLEN];
    if (!k || cert_write_pem(path, NULL, k, cerr) != 0) {
        snprintf(err, 256, "cannot create the token signing key %s: %s", path, k ? cerr : "keygen failed");
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}

idp_t *idp_new(const char *directory_path, const char *key_path, const char *public_url, char err[256])
{
    idp_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, 256, "out of memory");
        return NULL;
    }
    snprintf(p->public_url, sizeof p->public_url, "%s", public_url);
    snprintf(p->issuer, sizeof p->issuer, "%s/adfs", public_url);
    if (load_directory(p, directory_path, err) < 0 || !(p->key = load_or_make_key(key_path, err))) {
        idp_free(p);
        return NULL;
    }
    char jwk[2048], jerr[JWT_ERRLEN];
    if (jwt_kid_rsa(p->key, p->kid) < 0 || jwt_jwk_rsa(p->key, p->kid, jwk, sizeof jwk) < 0 ||
        !(p->jwks = malloc(strlen(jwk) + 16))) {
        snprintf(err, 256, "cannot export the signing key");
        idp_free(p);
        return NULL;
    }
    sprintf(p->jwks, "{\"keys\":[%s]}", jwk);
    if (jwt_keyset_parse(p->jwks, strlen(p->jwks), &p->ks, jerr) != 1) {
        snprintf(err, 256, "signing key unusable: %s", jerr);
        idp_free(p);
        return NULL;
    }
    if (p->msi)
        log_kv(LOG_WARN, "idp.msi_enabled", "note",
               "the managed-identity test endpoint mints tokens for any principal; never expose it", NULL);
    return p;
}

void idp_free(idp_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nprincipals; i++) {
        idp_principal *r = &p->principals[i];
        free(r->name), free(r->type), free(r->object_id), free(r->app_id), free(r->secret), free(r->password);
        for (size_t g = 0; g < r->ngroups; g++)
            free(r->groups[g]);
        free(r->groups);
    }
    for (size_t i = 0; i < p->nsubs; i++)
        free(p->subs[i].id), free(p->subs[i].display_name);
    for (size_t i = 0; i < p->nowners; i++)
        free(p->owners[i]);
    free(p->principals), free(p->subs), free(p->owners);
    free(p->jwks);
    jwt_keyset_free(&p->ks);
    EVP_PKEY_free(p->key);
    free(p);
}

const char *idp_issuer(const idp_t *p)
{
    return p->issuer;
}
const char *idp_tenant(const idp_t *p)
{
    return p->tenant;
}
const jwt_keyset *idp_keys(const idp_t *p)
{
    return &p->ks;
}
const char *idp_jwks(const idp_t *p)
{
    return p->jwks;
}

const idp_subscription *idp_subscriptions(const idp_t *p, size_t *n)
{
    *n = p->nsubs;
    return p->subs;
}

int idp_is_owner(const idp_t *p, const char *object_id)
{
    for (size_t i = 0; i < p->nowners; i++)
        if (strcasecmp(p->owners[i], object_id) == 0)
            return 1;
    return 0;
}

const idp_principal *idp_find(const idp_t *p, const char *object_id)
{
    for (size_t i = 0; i < p->nprincipals; i++)
        if (strcasecmp(p->principals[i].object_id, object_id) == 0)
            return &p->principals[i];
    return NULL;
}

static const idp_principal *find_by(const idp_t *p, const char *app_or_name)
{
    for (size_t i = 0; i < p->nprincipals; i++) {
        const idp_principal *r = &p->principals[i];
        if ((r->app_id && strcasecmp(r->app_id, app_or_name) == 0) ||
            strcasecmp(r->object_id, app_or_name) == 0 || strcasecmp(r->name, app_or_name) == 0)
            return r;
    }
    return NULL;
}

/* Constant-time comparison so a secret cannot be guessed byte by byte. */
static int secret_eq(const char *have, const char *given)
{
    if (!have || !given || !*have)
        return 0;
    size_t a = strlen(have), b = strlen(given);
    return a == b && CRYPTO_memcmp(have, given, a) == 0;
}

char *idp_mint(const idp_t *p, const idp_principal *who, const char *aud, int ttl, int64_t *expires_on)
{
    int64_t now = (int64_t)time(NULL);
    unsigned mark = json_failures(); /* never sign claims that lost one (groups, the overage marker) */
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "aud", aud);
    cJSON_AddStringToObject(c, "iss", p->issuer);
    cJSON_AddNumberToObject(c, "iat", (double)now);
    cJSON_AddNumberToObject(c, "nbf", (double)now);
    cJSON_AddNumberToObject(c, "exp", (double)(now + ttl));
    cJSON_AddStringToObject(c, "oid", who->object_id);
    cJSON_AddStringToObject(c, "sub", who->object_id);
    cJSON_AddStringToObject(c, "tid", p->tenant);
    int is_user = strcmp(who->type, "User") == 0;
    cJSON_AddStringToObject(c, "idtyp", is_user ? "user" : "app");
    if (who->app_id)
        cJSON_AddStringToObject(c, "appid", who->app_id);
    cJSON_AddStringToObject(c, "name", who->name);
    if (is_user) {
        /* az shows unique_name as the signed-in user. */
        cJSON_AddStringToObject(c, "unique_name", who->name);
        cJSON_AddStringToObject(c, "upn", who->name);
    }
    if (who->ngroups > IDP_GROUPS_INLINE_MAX) {
        /* Entra's overage marker: the groups are not in the token. */
        char ep[700];
        snprintf(ep, sizeof ep, "%s/graph/v1.0/users/%s/getMemberObjects", p->public_url, who->object_id);
        cJSON *names = cJSON_AddObjectToObject(c, "_claim_names");
        cJSON_AddStringToObject(names, "groups", "src1");
        cJSON *srcs = cJSON_AddObjectToObject(c, "_claim_sources");
        cJSON *s1 = cJSON_AddObjectToObject(srcs, "src1");
        cJSON_AddStringToObject(s1, "endpoint", ep);
    } else if (who->ngroups) {
        cJSON *g = cJSON_AddArrayToObject(c, "groups");
        for (size_t i = 0; i < who->ngroups; i++)
            cJSON_AddItemToArray(g, cJSON_CreateString(who->groups[i]));
    }
    char *payload = json_print(c, mark, 0);
    cJSON_Delete(c);
    if (!payload)
        return NULL;
    size_t cap = strlen(payload) * 4 / 3 + 1024;
    char *tok = malloc(cap);
    if (tok && jwt_sign_rs256(p->key, p->kid, payload, tok, cap) < 0) {
        free(tok);
        tok = NULL;
    }
    free(payload);
    if (expires_on)
        *expires_on = now + ttl;
    return tok;
}

int idp_verify(const idp_t *p, const char *token, size_t n, const char *const *auds, jwt_claims *out,
               char err[JWT_ERRLEN])
{
    int rc = JWT_ERR_AUDIENCE;
    for (size_t i = 0; auds[i]; i++) {
        jwt_claims_free(out);
        jwt_expect w = {.issuer = p->issuer, .audience = auds[i], .now = (int64_t)time(NULL), .skew = 60};
        rc = jwt_verify(token, n, &p->ks, &w, out, err);
        if (rc != JWT_ERR_AUDIENCE)
            return rc;
    }
    return rc;
}

/* The audience a scope names: "https://h//.default" -> "https://h/",
 * "api://x/.default" -> "api://x"; several scopes: the first that is not
 * an OIDC scope. */
static void scope_to_aud(const char *scope, char *aud, size_t cap)
{
    aud[0] = '\0';
    const char *s = scope;
    while (*s) {
        while (*s == ' ')
            s++;
        const char *e = strchr(s, ' ');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n && !((n == 6 && !memcmp(s, "openid", 6)) || (n == 7 && !memcmp(s, "profile", 7)) ||
                   (n == 14 && !memcmp(s, "offline_access", 14)))) {
            if (n >= 9 && !memcmp(s + n - 9, "/.default", 9))
                n -= 9;
            if (n >= cap)
                n = cap - 1;
            memcpy(aud, s, n);
            aud[n] = '\0';
            /* "https://h/" + "/.default" arrives as "https://h//.default". */
            return;
        }
        s += n;
    }
}

static void token_answer(const idp_t *p, api_resp *resp, const idp_principal *who, const char *aud,
                         int msi_shape, const char *client_id)
{
    int64_t exp;
    char *tok = idp_mint(p, who, aud, 3600, &exp);
    if (!tok) {
        api_error(resp, 500, "server_error", "Could not sign the token.");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "access_token", tok);
    cJSON_AddStringToObject(o, "token_type", "Bearer");
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)exp);
    if (msi_shape) {
        cJSON_AddStringToObject(o, "expires_on", num);
        cJSON_AddStringToObject(o, "expires_in", "3600");
        cJSON_AddStringToObject(o, "resource", aud);
    } else {
        cJSON_AddNumberToObject(o, "expires_in", 3600);
        cJSON_AddNumberToObject(o, "ext_expires_in", 3600);
        if (client_id && strcmp(who->type, "User") == 0) {
            /* MSAL builds the signed-in account from an id_token. */
            unsigned mark = json_failures();
            cJSON *c = cJSON_CreateObject();
            int64_t now = (int64_t)time(NULL);
            cJSON_AddStringToObject(c, "aud", client_id);
            cJSON_AddStringToObject(c, "iss", p->issuer);
            cJSON_AddNumberToObject(c, "iat", (double)now);
            cJSON_AddNumberToObject(c, "exp", (double)(now + 3600));
            cJSON_AddStringToObject(c, "sub", who->object_id);
            cJSON_AddStringToObject(c, "oid", who->object_id);
            cJSON_AddStringToObject(c, "tid", p->tenant);
            cJSON_AddStringToObject(c, "upn", who->name);
            cJSON_AddStringToObject(c, "unique_name", who->name);
            char *pl = json_print(c, mark, 0);
            cJSON_Delete(c);
            char idt[4096];
            if (pl && jwt_sign_rs256(p->key, p->kid, pl, idt, sizeof idt) > 0)
                cJSON_AddStringToObject(o, "id_token", idt);
            free(pl);
        }
    }
    api_json(resp, 200, cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
    log_kv(LOG_INFO, "idp.token", "principal", who->name, "oid", who->object_id, "aud", aud, NULL);
    free(tok);
}

static void oauth_error(api_resp *resp, int status, const char *code, const char *desc)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", code);
    cJSON_AddStringToObject(o, "error_description", desc);
    api_json(resp, status, cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
}

static void token_endpoint(idp_t *p, const api_req *req, api_resp *resp)
{
    char grant[64], scope[1024], aud[1024], id[256], secret[512];
    if (!api_form(req, "grant_type", grant, sizeof grant)) {
        oauth_error(resp, 400, "invalid_request", "grant_type is missing.");
        return;
    }
    if (!api_form(req, "scope", scope, sizeof scope) && !api_form(req, "resource", scope, sizeof scope)) {
        oauth_error(resp, 400, "invalid_request", "scope is missing.");
        return;
    }
    scope_to_aud(scope, aud, sizeof aud);
    if (!aud[0]) {
        oauth_error(resp, 400, "invalid_scope", "No resource scope was requested.");
        return;
    }
    const idp_principal *who = NULL;
    char client_id[256] = "";
    api_form(req, "client_id", client_id, sizeof client_id);
    if (!strcmp(grant, "client_credentials")) {
        who = client_id[0] ? find_by(p, client_id) : NULL;
        if (!who || strcmp(who->type, "ServicePrincipal") != 0 ||
            !secret_eq(who->secret, api_form(req, "client_secret", secret, sizeof secret))) {
            log_kv(LOG_WARN, "idp.denied", "grant", grant, "client", client_id, "peer", req->peer, NULL);
            oauth_error(resp, 401, "invalid_client", "The client id or secret is wrong.");
            return;
        }
    } else if (!strcmp(grant, "password")) {
        const char *u = api_form(req, "username", id, sizeof id);
        who = u ? find_by(p, u) : NULL;
        if (!who || strcmp(who->type, "User") != 0 ||
            !secret_eq(who->password, api_form(req, "password", secret, sizeof secret))) {
            log_kv(LOG_WARN, "idp.denied", "grant", grant, "user", u ? u : "", "peer", req->peer, NULL);
            oauth_error(resp, 400, "invalid_grant", "The user name or password is wrong.");
            return;
        }
    } else {
        oauth_error(resp, 400, "unsupported_grant_type",
                    "Only client_credentials and password are supported.");
        return;
    }
    token_answer(p, resp, who, aud, 0, client_id[0] ? client_id : NULL);
}

static void msi_endpoint(idp_t *p, const api_req *req, api_resp *resp)
{
    char aud[1024], id[256];
    if (!p->msi) {
        api_error(resp, 404, "NotFound",
                  "The managed-identity test endpoint is off (\"msiEndpoint\" in the directory).");
        return;
    }
    if (!api_form(req, "resource", aud, sizeof aud) && !api_query(req, "resource", aud, sizeof aud)) {
        oauth_error(resp, 400, "invalid_request", "resource is missing.");
        return;
    }
    /* Which identity: the form (msrestazure's POST) or the query (MSAL's
     * App Service style GET), by client, object or resource id. */
    const idp_principal *who = NULL;
    static const char *const sel[] = {"client_id", "object_id", "msi_res_id", "mi_res_id", NULL};
    int chosen = 0;
    for (size_t i = 0; sel[i] && !chosen; i++)
        chosen = api_form(req, sel[i], id, sizeof id) || api_query(req, sel[i], id, sizeof id);
    if (chosen)
        who = find_by(p, id);
    else
        who = p->nprincipals ? &p->principals[0] : NULL;
    if (!who) {
        oauth_error(resp, 400, "invalid_request", "No such identity in the directory.");
        return;
    }
    token_answer(p, resp, who, aud, 1, NULL);
}

static int path_is(const api_req *req, const char *lit)
{
    size_t n = strlen(lit);
    return req->path.n == n && memcmp(req->path.p, lit, n) == 0;
}

/* ---- a sliver of Microsoft Graph ----------------------------------------
 * What `az role assignment create --assignee X` asks to turn X into an
 * object id: users by userPrincipalName, service principals by appId
 * (servicePrincipalNames), directory objects by id. Signed-in callers
 * only. */

static cJSON *graph_object(const idp_principal *r)
{
    int user = strcmp(r->type, "User") == 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "@odata.type",
                            user ? "#microsoft.graph.user" : "#microsoft.graph.servicePrincipal");
    cJSON_AddStringToObject(o, "id", r->object_id);
    cJSON_AddStringToObject(o, "displayName", r->name);
    if (user) {
        cJSON_AddStringToObject(o, "userPrincipalName", r->name);
    } else if (r->app_id) {
        cJSON_AddStringToObject(o, "appId", r->app_id);
        cJSON *n = cJSON_AddArrayToObject(o, "servicePrincipalNames");
        cJSON_AddItemToArray(n, cJSON_CreateString(r->app_id));
    }
    return o;
}

/* The quoted value after `prefix` in a $filter ("... eq 'v'"). */
static int filter_value(const char *filter, const char *prefix, char *out, size_t cap)
{
    const char *q = strstr(filter, prefix);
    if (!q)
        return 0;
    q += strlen(prefix);
    const char *e = strchr(q, '\'');
    if (!e || (size_t)(e - q) >= cap)
        return 0;
    memcpy(out, q, (size_t)(e - q));
    out[e - q] = '\0';
    return 1;
}

static void graph(idp_t *p, const api_req *req, api_resp *resp)
{
    const http_header *h = http_find(req->http->headers, req->http->nheaders, "Authorization");
    char aud1[600], aud2[600], err[JWT_ERRLEN];
    snprintf(aud1, sizeof aud1, "%s/graph/", p->public_url);
    snprintf(aud2, sizeof aud2, "%s/graph", p->public_url);
    const char *const auds[] = {aud1, aud2, NULL};
    jwt_claims c;
    memset(&c, 0, sizeof c);
    if (!h || h->value_len < 8 || strncasecmp(h->value, "Bearer ", 7) != 0 ||
        idp_verify(p, h->value + 7, h->value_len - 7, auds, &c, err) != JWT_OK) {
        jwt_claims_free(&c);
        api_error(resp, 401, "InvalidAuthenticationToken", "Access token is empty or invalid.");
        return;
    }
    jwt_claims_free(&c);
    const char *path = req->path.p + 11; /* after /graph/v1.0 */
    size_t pn = req->path.n - 11;
    cJSON *out = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(out, "value");
    char filter[512] = "", want[256];
    api_query(req, "$filter", filter, sizeof filter);
    if (pn == 6 && !memcmp(path, "/users", 6) && api_method(req, "GET")) {
        if (filter_value(filter, "userPrincipalName eq '", want, sizeof want))
            for (size_t i = 0; i < p->nprincipals; i++)
                if (!strcmp(p->principals[i].type, "User") && !strcasecmp(p->principals[i].name, want))
                    cJSON_AddItemToArray(arr, graph_object(&p->principals[i]));
    } else if (pn == 18 && !memcmp(path, "/servicePrincipals", 18) && api_method(req, "GET")) {
        if (filter_value(filter, "c eq '", want, sizeof want))
            for (size_t i = 0; i < p->nprincipals; i++)
                if (p->principals[i].app_id && !strcasecmp(p->principals[i].app_id, want))
                    cJSON_AddItemToArray(arr, graph_object(&p->principals[i]));
    } else if (pn == 26 && !memcmp(path, "/directoryObjects/getByIds", 26) && api_method(req, "POST")) {
        cJSON *in = cJSON_ParseWithLength(req->body, req->body_len);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(in, "ids"), *id;
        cJSON_ArrayForEach (id, ids)
            if (cJSON_IsString(id)) {
                const idp_principal *r = idp_find(p, id->valuestring);
                if (r)
                    cJSON_AddItemToArray(arr, graph_object(r));
            }
        cJSON_Delete(in);
    } else {
        cJSON_Delete(out);
        api_error(resp, 404, "Request_ResourceNotFound",
                  "This hub serves users, servicePrincipals and "
                  "directoryObjects/getByIds of Microsoft Graph only.");
        return;
    }
    api_json(resp, 200, cJSON_PrintUnformatted(out));
    cJSON_Delete(out);
}

int idp_route(void *ud, const api_req *req, api_resp *resp)
{
    idp_t *p = ud;
    if (req->path.n > 12 && !memcmp(req->path.p, "/graph/v1.0/", 12)) {
        graph(p, req, resp);
        return 1;
    }
    if (path_is(req, "/adfs/.well-known/openid-configuration")) {
        cJSON *o = cJSON_CreateObject();
        char u[700];
        cJSON_AddStringToObject(o, "issuer", p->issuer);
        snprintf(u, sizeof u, "%s/oauth2/authorize", p->issuer);
        cJSON_AddStringToObject(o, "authorization_endpoint", u);
        snprintf(u, sizeof u, "%s/oauth2/token", p->issuer);
        cJSON_AddStringToObject(o, "token_endpoint", u);
        snprintf(u, sizeof u, "%s/discovery/keys", p->issuer);
        cJSON_AddStringToObject(o, "jwks_uri", u);
        cJSON *a = cJSON_AddArrayToObject(o, "id_token_signing_alg_values_supported");
        cJSON_AddItemToArray(a, cJSON_CreateString("RS256"));
        a = cJSON_AddArrayToObject(o, "grant_types_supported");
        cJSON_AddItemToArray(a, cJSON_CreateString("client_credentials"));
        cJSON_AddItemToArray(a, cJSON_CreateString("password"));
        api_json(resp, 200, cJSON_PrintUnformatted(o));
        cJSON_Delete(o);
        return 1;
    }
    if (path_is(req, "/adfs/discovery/keys")) {
        char *keys = strdup(p->jwks);
        if (keys)
            api_json(resp, 200, keys);
        else
            api_error(resp, 503, "ServiceUnavailable", "Out of memory; retry.");
        return 1;
    }
    if (path_is(req, "/msi/token") && api_method(req, "GET")) {
        msi_endpoint(p, req, resp);
        return 1;
    }
    if (path_is(req, "/adfs/oauth2/token") || path_is(req, "/msi/token")) {
        if (!api_method(req, "POST")) {
            api_error(resp, 405, "MethodNotAllowed", "Use POST with a form body.");
            return 1;
        }
        if (path_is(req, "/msi/token"))
            msi_endpoint(p, req, resp);
        else
            token_endpoint(p, req, resp);
        return 1;
    }
    return 0;
}

int idp_write_dev_directory(const char *path, char err[256])
{
    char tenant[37], sub[37], oid[37], app[37];
    uint8_t raw[24];
    char secret[64];
    if (enc_uuid4(tenant) || enc_uuid4(sub) || enc_uuid4(oid) || enc_uuid4(app) ||
        enc_random(raw, sizeof raw) || enc_b64url_encode(raw, sizeof raw, secret, sizeof secret) < 0) {
        snprintf(err, 256, "no randomness");
        return -1;
    }
    unsigned mark = json_failures(); /* a directory missing its owner or admin is not written */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "tenantId", tenant);
    cJSON *subs = cJSON_AddArrayToObject(o, "subscriptions");
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "subscriptionId", sub);
    cJSON_AddStringToObject(s, "displayName", "connectedk8s-dev");
    cJSON_AddItemToArray(subs, s);
    cJSON *owners = cJSON_AddArrayToObject(o, "owners");
    cJSON_AddItemToArray(owners, cJSON_CreateString(oid));
    cJSON_AddBoolToObject(o, "msiEndpoint", 1);
    cJSON *prs = cJSON_AddArrayToObject(o, "principals");
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "name", "admin");
    cJSON_AddStringToObject(a, "type", "ServicePrincipal");
    cJSON_AddStringToObject(a, "objectId", oid);
    cJSON_AddStringToObject(a, "appId", app);
    cJSON_AddStringToObject(a, "secret", secret);
    if (!cJSON_AddItemToArray(prs, a))
        cJSON_Delete(a);
    char *text = json_print(o, mark, 1);
    cJSON_Delete(o);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t len = text ? strlen(text) : 0;
    int ok = fd >= 0 && text && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    free(text);
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, 256, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
