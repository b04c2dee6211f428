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
#include "grants.h"
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
    /* People's sign-in sessions (idp_sessions); NULL: only applications
     * and managed identities get tokens. */
    grants_t *grants;
    int token_ttl, rt_ttl;
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
    p->token_ttl = 3600;
    p->rt_ttl = 86400;
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
    grants_free(p->grants);
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

const char *idp_public_url(const idp_t *p)
{
    return p->public_url;
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

static const idp_principal *find_by(const idp_t *p, const char *app_or_name);

const idp_principal *idp_principals(const idp_t *p, size_t *n)
{
    *n = p->nprincipals;
    return p->principals;
}

int idp_sessions(idp_t *p, store_t *s, int token_ttl, int rt_ttl)
{
    grants_free(p->grants);
    if (!(p->grants = grants_new(s, rt_ttl)))
        return -1;
    p->token_ttl = token_ttl > 0 ? token_ttl : 3600;
    p->rt_ttl = rt_ttl > 0 ? rt_ttl : 86400;
    return 0;
}

int idp_revoke_sessions(idp_t *p, const char *object_id)
{
    int n = p->grants ? grants_revoke(p->grants, object_id) : 0;
    if (n >= 0) {
        char num[16];
        snprintf(num, sizeof num, "%d", n);
        log_kv(LOG_INFO, "idp.sessions_revoked", "oid", object_id, "refresh_tokens", num, NULL);
    }
    return n < 0 ? -1 : n;
}

static int is_user(const idp_principal *r)
{
    return strcmp(r->type, "User") == 0;
}

static int is_oidc_scope(const char *s, size_t n)
{
    return (n == 6 && !memcmp(s, "openid", 6)) || (n == 7 && !memcmp(s, "profile", 7)) ||
           (n == 14 && !memcmp(s, "offline_access", 14));
}

const idp_principal *idp_lookup(const idp_t *p, const char *app_or_name)
{
    return find_by(p, app_or_name);
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
        /* Delegated permission, as Entra writes into a user's token. */
        cJSON_AddStringToObject(c, "scp", "user_impersonation");
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
        if (n && !is_oidc_scope(s, n)) {
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

/* The requested scopes without openid/profile/offline_access: what the
 * answer's "scope" says was granted. MSAL files the access token under
 * exactly these, and looks it up by them later. */
static void resource_scopes(const char *scope, char *out, size_t cap)
{
    size_t o = 0;
    const char *s = scope;
    out[0] = '\0';
    while (*s) {
        while (*s == ' ')
            s++;
        const char *e = strchr(s, ' ');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n && !is_oidc_scope(s, n) && o + n + 2 <= cap) {
            if (o)
                out[o++] = ' ';
            memcpy(out + o, s, n);
            o += n;
            out[o] = '\0';
        }
        s += n;
    }
}

static void oauth_error(api_resp *resp, int status, const char *code, const char *desc)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", code);
    cJSON_AddStringToObject(o, "error_description", desc);
    api_json(resp, status, cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
}

/* Tokens for an application (client credentials) or a managed identity:
 * an access token and nothing to sign in with later. */
static void app_answer(const idp_t *p, api_resp *resp, const idp_principal *who, const char *aud,
                       int msi_shape)
{
    int64_t exp;
    char *tok = idp_mint(p, who, aud, p->token_ttl, &exp);
    if (!tok) {
        api_error(resp, 500, "server_error", "Could not sign the token.");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "access_token", tok);
    cJSON_AddStringToObject(o, "token_type", "Bearer");
    char num[32];
    if (msi_shape) {
        snprintf(num, sizeof num, "%lld", (long long)exp);
        cJSON_AddStringToObject(o, "expires_on", num);
        snprintf(num, sizeof num, "%d", p->token_ttl);
        cJSON_AddStringToObject(o, "expires_in", num);
        cJSON_AddStringToObject(o, "resource", aud);
    } else {
        cJSON_AddNumberToObject(o, "expires_in", p->token_ttl);
        cJSON_AddNumberToObject(o, "ext_expires_in", p->token_ttl);
    }
    api_json(resp, 200, cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
    log_kv(LOG_INFO, "idp.token", "principal", who->name, "oid", who->object_id, "aud", aud, NULL);
    free(tok);
}

/* The id_token MSAL builds the signed-in account from: aud is the client
 * (az's application id), upn what az shows as the user name, tid the
 * tenant az files the subscriptions under. Returns a malloc'd token. */
static char *id_token(const idp_t *p, const idp_principal *who, const char *client_id)
{
    unsigned mark = json_failures();
    cJSON *c = cJSON_CreateObject();
    int64_t now = (int64_t)time(NULL);
    cJSON_AddStringToObject(c, "aud", client_id);
    cJSON_AddStringToObject(c, "iss", p->issuer);
    cJSON_AddNumberToObject(c, "iat", (double)now);
    cJSON_AddNumberToObject(c, "nbf", (double)now);
    cJSON_AddNumberToObject(c, "exp", (double)(now + p->token_ttl));
    cJSON_AddStringToObject(c, "sub", who->object_id);
    cJSON_AddStringToObject(c, "oid", who->object_id);
    cJSON_AddStringToObject(c, "tid", p->tenant);
    cJSON_AddStringToObject(c, "upn", who->name);
    cJSON_AddStringToObject(c, "preferred_username", who->name);
    cJSON_AddStringToObject(c, "unique_name", who->name);
    cJSON_AddStringToObject(c, "name", who->name);
    cJSON_AddStringToObject(c, "ver", "1.0");
    char *pl = json_print(c, mark, 0);
    cJSON_Delete(c);
    size_t cap = pl ? strlen(pl) * 4 / 3 + 1024 : 0;
    char *idt = pl ? malloc(cap) : NULL;
    if (idt && jwt_sign_rs256(p->key, p->kid, pl, idt, cap) < 0) {
        free(idt);
        idt = NULL;
    }
    free(pl);
    return idt;
}

/* Tokens for a person who signed in (password, device code or refresh
 * token): an access token for the audience the scope names, an id_token
 * and client_info (base64url {"uid","utid"}: MSAL keys the account by
 * uid.utid, so every answer must carry the same), and a refresh token
 * that gets tokens for any other audience later. `rt` is the one the
 * caller presented (given back unchanged) or NULL for a fresh sign-in. */
static void user_answer(idp_t *p, api_resp *resp, const idp_principal *who, const char *scope,
                        const char *client_id, const char *rt, const char *grant)
{
    char aud[1024], granted[1024], fresh[GRANTS_RT_LEN];
    scope_to_aud(scope, aud, sizeof aud);
    resource_scopes(scope, granted, sizeof granted);
    if (!aud[0]) {
        oauth_error(resp, 400, "invalid_scope",
                    "AADSTS70011: The provided value for the input parameter 'scope' names no resource.");
        return;
    }
    if (!rt) {
        if (grants_issue_refresh(p->grants, who->object_id, client_id, fresh) != GRANTS_OK) {
            api_error(resp, 500, "server_error", "Could not record the sign-in session; see the hub's log.");
            log_kv(LOG_ERROR, "idp.session_failed", "oid", who->object_id, NULL);
            return;
        }
        rt = fresh;
    }
    int64_t exp;
    char *tok = idp_mint(p, who, aud, p->token_ttl, &exp);
    char *idt = id_token(p, who, client_id);
    char ci_json[300], ci[420];
    snprintf(ci_json, sizeof ci_json, "{\"uid\":\"%s\",\"utid\":\"%s\"}", who->object_id, p->tenant);
    if (!tok || !idt || enc_b64url_encode((const uint8_t *)ci_json, strlen(ci_json), ci, sizeof ci) < 0) {
        free(tok), free(idt);
        api_error(resp, 500, "server_error", "Could not sign the token.");
        return;
    }
    unsigned mark = json_failures();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "token_type", "Bearer");
    cJSON_AddStringToObject(o, "scope", granted);
    cJSON_AddNumberToObject(o, "expires_in", p->token_ttl);
    cJSON_AddNumberToObject(o, "ext_expires_in", p->token_ttl);
    cJSON_AddStringToObject(o, "access_token", tok);
    cJSON_AddStringToObject(o, "refresh_token", rt);
    cJSON_AddNumberToObject(o, "refresh_token_expires_in", p->rt_ttl);
    cJSON_AddStringToObject(o, "id_token", idt);
    cJSON_AddStringToObject(o, "client_info", ci);
    char *body = json_print(o, mark, 0);
    cJSON_Delete(o);
    OPENSSL_cleanse(fresh, sizeof fresh);
    free(tok), free(idt);
    if (!body) {
        api_error(resp, 503, "ServiceUnavailable", "Out of memory; retry.");
        return;
    }
    api_json(resp, 200, body);
    log_kv(LOG_INFO, "idp.token", "principal", who->name, "oid", who->object_id, "aud", aud, "grant", grant,
           NULL);
}

static const idp_principal *user_by_password(const idp_t *p, const char *user, const char *password)
{
    const idp_principal *who = user ? find_by(p, user) : NULL;
    /* Compared even for an unknown user, so timing does not tell which
     * names exist. */
    int ok = secret_eq(who && who->password ? who->password : "\x01", password ? password : "");
    return who && ok && is_user(who) ? who : NULL;
}

static void token_endpoint(idp_t *p, const api_req *req, api_resp *resp)
{
    char grant[128], scope[1024], id[256], secret[512], client_id[GRANTS_CLIENT_LEN] = "";
    if (!api_form(req, "grant_type", grant, sizeof grant)) {
        oauth_error(resp, 400, "invalid_request", "AADSTS900144: The request body must contain grant_type.");
        return;
    }
    int have_scope =
        api_form(req, "scope", scope, sizeof scope) || api_form(req, "resource", scope, sizeof scope);
    api_form(req, "client_id", client_id, sizeof client_id);
    if (!p->grants && strcmp(grant, "client_credentials") != 0) {
        oauth_error(resp, 400, "unsupported_grant_type", "This hub lets applications sign in, not people.");
        return;
    }
    if (!strcmp(grant, "urn:ietf:params:oauth:grant-type:device_code")) {
        char code[GRANTS_DEVICE_CODE_LEN + 8], oid[GRANTS_OID_LEN], asked[GRANTS_SCOPE_LEN];
        if (!api_form(req, "device_code", code, sizeof code) && !api_form(req, "code", code, sizeof code)) {
            oauth_error(resp, 400, "invalid_request",
                        "AADSTS900144: The request body must contain device_code.");
            return;
        }
        int rc = grants_device_poll(p->grants, code, client_id, oid, asked);
        const idp_principal *who = rc == GRANTS_OK ? idp_find(p, oid) : NULL;
        if (rc == GRANTS_PENDING)
            oauth_error(resp, 400, "authorization_pending",
                        "AADSTS70016: The user has not yet completed the sign-in at the device login page.");
        else if (rc == GRANTS_EXPIRED)
            oauth_error(resp, 400, "expired_token",
                        "AADSTS70020: The device code has expired; start the sign-in again.");
        else if (!who)
            oauth_error(resp, 400, "invalid_grant", "AADSTS70019: The device code is not known or was used.");
        else
            user_answer(p, resp, who, have_scope ? scope : asked, client_id, NULL, "device_code");
        return;
    }
    if (!have_scope) {
        oauth_error(resp, 400, "invalid_request", "AADSTS900144: The request body must contain scope.");
        return;
    }
    if (!strcmp(grant, "client_credentials")) {
        char aud[1024];
        scope_to_aud(scope, aud, sizeof aud);
        const idp_principal *who = client_id[0] ? find_by(p, client_id) : NULL;
        if (!aud[0]) {
            oauth_error(resp, 400, "invalid_scope", "No resource scope was requested.");
            return;
        }
        if (!who || strcmp(who->type, "ServicePrincipal") != 0 ||
            !secret_eq(who->secret, api_form(req, "client_secret", secret, sizeof secret))) {
            log_kv(LOG_WARN, "idp.denied", "grant", grant, "client", client_id, "peer", req->peer, NULL);
            oauth_error(resp, 401, "invalid_client", "The client id or secret is wrong.");
            return;
        }
        app_answer(p, resp, who, aud, 0);
        return;
    }
    if (!client_id[0]) {
        oauth_error(resp, 400, "invalid_request", "AADSTS900144: The request body must contain client_id.");
        return;
    }
    if (!strcmp(grant, "password")) {
        const char *u = api_form(req, "username", id, sizeof id);
        const idp_principal *who = user_by_password(p, u, api_form(req, "password", secret, sizeof secret));
        OPENSSL_cleanse(secret, sizeof secret);
        if (!who) {
            log_kv(LOG_WARN, "idp.denied", "grant", grant, "user", u ? u : "", "peer", req->peer, NULL);
            oauth_error(resp, 400, "invalid_grant",
                        "AADSTS50126: Error validating credentials due to invalid username or password.");
            return;
        }
        user_answer(p, resp, who, scope, client_id, NULL, "password");
        return;
    }
    if (!strcmp(grant, "refresh_token")) {
        char rt[GRANTS_RT_LEN + 8], oid[GRANTS_OID_LEN];
        int rc = api_form(req, "refresh_token", rt, sizeof rt)
                     ? grants_redeem_refresh(p->grants, rt, client_id, oid)
                     : GRANTS_UNKNOWN;
        const idp_principal *who = rc == GRANTS_OK ? idp_find(p, oid) : NULL;
        if (rc == GRANTS_FAILED) {
            api_error(resp, 500, "server_error",
                      "The sign-in sessions could not be read; see the hub's log.");
        } else if (rc == GRANTS_EXPIRED) {
            log_kv(LOG_INFO, "idp.refresh_refused", "reason", "expired", "peer", req->peer, NULL);
            oauth_error(resp, 400, "invalid_grant",
                        "AADSTS700082: The refresh token has expired. Sign in again with az login.");
        } else if (!who || !is_user(who)) {
            log_kv(LOG_INFO, "idp.refresh_refused", "reason", "unknown or revoked", "peer", req->peer, NULL);
            oauth_error(resp, 400, "invalid_grant",
                        "AADSTS50173: The provided grant is not valid: it was revoked (the user's sign-in "
                        "sessions were ended) or never issued. Sign in again with az login.");
        } else {
            user_answer(p, resp, who, scope, client_id, rt, "refresh_token");
        }
        OPENSSL_cleanse(rt, sizeof rt);
        return;
    }
    oauth_error(resp, 400, "unsupported_grant_type",
                "Supported grants: client_credentials, password, refresh_token and device_code.");
}

/* ---- device code sign-in (RFC 8628) ----------------------------------------
 * az asks /adfs/oauth2/devicecode for a code, prints the page and the user
 * code, and polls the token endpoint; the person opens /adfs/devicelogin,
 * types the code, the user name and the password. */

static void devicecode_endpoint(idp_t *p, const api_req *req, api_resp *resp)
{
    char client_id[GRANTS_CLIENT_LEN], scope[GRANTS_SCOPE_LEN], dc[GRANTS_DEVICE_CODE_LEN],
        uc[GRANTS_USER_CODE_LEN];
    if (!p->grants) {
        oauth_error(resp, 400, "unsupported_grant_type", "This hub lets applications sign in, not people.");
        return;
    }
    if (!api_form(req, "client_id", client_id, sizeof client_id) ||
        !api_form(req, "scope", scope, sizeof scope)) {
        oauth_error(resp, 400, "invalid_request",
                    "AADSTS900144: The request body must contain client_id and scope.");
        return;
    }
    int rc = grants_device_start(p->grants, client_id, scope, dc, uc);
    if (rc == GRANTS_TOO_MANY) {
        oauth_error(resp, 429, "slow_down", "Too many device sign-ins are pending; retry in a few minutes.");
        return;
    }
    if (rc != GRANTS_OK) {
        oauth_error(resp, 500, "server_error", "Could not start the device sign-in.");
        return;
    }
    char page[700], msg[1000];
    snprintf(page, sizeof page, "%s/adfs/devicelogin", p->public_url);
    snprintf(msg, sizeof msg,
             "To sign in, use a web browser to open the page %s and enter the code %s to authenticate.", page,
             uc);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "device_code", dc);
    cJSON_AddStringToObject(o, "user_code", uc);
    cJSON_AddStringToObject(o, "verification_uri", page);
    cJSON_AddStringToObject(o, "verification_url", page); /* the older name ADFS and AAD v1 use */
    cJSON_AddNumberToObject(o, "expires_in", GRANTS_DEVICE_TTL);
    cJSON_AddNumberToObject(o, "interval", 1);
    cJSON_AddStringToObject(o, "message", msg);
    api_json(resp, 200, cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
    OPENSSL_cleanse(dc, sizeof dc);
    log_kv(LOG_INFO, "idp.device_code", "client", client_id, "peer", req->peer, NULL);
}

/* Copies `in` into out with HTML's five special characters escaped. */
static void html_escape(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; *in && o + 7 < cap; in++) {
        const char *rep = *in == '<'    ? "&lt;"
                          : *in == '>'  ? "&gt;"
                          : *in == '&'  ? "&amp;"
                          : *in == '"'  ? "&quot;"
                          : *in == '\'' ? "&#39;"
                                        : NULL;
        if (rep) {
            size_t n = strlen(rep);
            memcpy(out + o, rep, n);
            o += n;
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
}

static void html(api_resp *resp, int status, const char *title, const char *note, int form)
{
    static const char fmt[] =
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>arc-hub sign-in</title></head>\n"
        "<body><h1>%s</h1>\n<p>%s</p>\n%s</body></html>\n";
    static const char form_html[] =
        "<form method=\"post\" action=\"devicelogin\">\n"
        "<label>Code <input name=\"code\" autocomplete=\"off\"></label><br>\n"
        "<label>User name <input name=\"username\" autocomplete=\"username\"></label><br>\n"
        "<label>Password <input name=\"password\" type=\"password\" "
        "autocomplete=\"current-password\"></label><br>\n"
        "<button type=\"submit\">Sign in</button>\n</form>\n";
    size_t cap = sizeof fmt + sizeof form_html + strlen(title) + strlen(note) + 1;
    char *body = malloc(cap);
    if (!body) {
        api_error(resp, 503, "ServiceUnavailable", "Out of memory; retry.");
        return;
    }
    snprintf(body, cap, fmt, title, note, form ? form_html : "");
    free(resp->body);
    resp->status = status;
    resp->ctype = "text/html; charset=utf-8";
    resp->body = body;
    /* The page takes a password: no framing by other sites, no caching. */
    snprintf(resp->headers, sizeof resp->headers,
             "Cache-Control: no-store\r\nX-Frame-Options: DENY\r\nContent-Security-Policy: frame-ancestors "
             "'none'\r\n");
}

static void devicelogin_page(idp_t *p, const api_req *req, api_resp *resp)
{
    if (!p->grants) {
        html(resp, 404, "No sign-in here", "This hub lets applications sign in, not people.", 0);
        return;
    }
    if (api_method(req, "GET")) {
        html(resp, 200, "Sign in to arc-hub", "Enter the code az printed, then your user name and password.",
             1);
        return;
    }
    if (!api_method(req, "POST")) {
        api_error(resp, 405, "MethodNotAllowed", "Use GET for the page and POST for the form.");
        return;
    }
    char code[64], user[256], pw[512], who_html[800], note[1200];
    const char *c = api_form(req, "code", code, sizeof code);
    const char *u = api_form(req, "username", user, sizeof user);
    const idp_principal *who =
        c && u ? user_by_password(p, u, api_form(req, "password", pw, sizeof pw)) : NULL;
    OPENSSL_cleanse(pw, sizeof pw);
    if (!who) {
        log_kv(LOG_WARN, "idp.denied", "grant", "device_code", "user", u ? u : "", "peer", req->peer, NULL);
        html(resp, 401, "Sign-in failed", "The user name or password is wrong.", 1);
        return;
    }
    int rc = grants_device_approve(p->grants, code, who->object_id);
    if (rc != GRANTS_OK) {
        html(resp, 400, "Sign-in failed",
             rc == GRANTS_EXPIRED ? "That code has expired; run az login --use-device-code again."
                                  : "That code is not known (mistyped, already used or expired).",
             1);
        return;
    }
    html_escape(who->name, who_html, sizeof who_html);
    snprintf(note, sizeof note, "You have signed in as %s. You may close this window and return to az.",
             who_html);
    html(resp, 200, "Signed in", note, 0);
    log_kv(LOG_INFO, "idp.device_approved", "principal", who->name, "oid", who->object_id, NULL);
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
    app_answer(p, resp, who, aud, 1);
}

static int path_is(const api_req *req, const char *lit)
{
    size_t n = strlen(lit);
    return req->path.n == n && memcmp(req->path.p, lit, n) == 0;
}

static void openid_configuration(const idp_t *p, api_resp *resp)
{
    cJSON *o = cJSON_CreateObject();
    char u[700];
    cJSON_AddStringToObject(o, "issuer", p->issuer);
    snprintf(u, sizeof u, "%s/oauth2/authorize", p->issuer);
    cJSON_AddStringToObject(o, "authorization_endpoint", u);
    snprintf(u, sizeof u, "%s/oauth2/token", p->issuer);
    cJSON_AddStringToObject(o, "token_endpoint", u);
    snprintf(u, sizeof u, "%s/oauth2/devicecode", p->issuer);
    cJSON_AddStringToObject(o, "device_authorization_endpoint", u);
    snprintf(u, sizeof u, "%s/discovery/keys", p->issuer);
    cJSON_AddStringToObject(o, "jwks_uri", u);
    cJSON *a = cJSON_AddArrayToObject(o, "id_token_signing_alg_values_supported");
    cJSON_AddItemToArray(a, cJSON_CreateString("RS256"));
    a = cJSON_AddArrayToObject(o, "grant_types_supported");
    static const char *const grants[] = {"client_credentials", "password", "refresh_token",
                                         "urn:ietf:params:oauth:grant-type:device_code", NULL};
    for (size_t i = 0; grants[i]; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(grants[i]));
    a = cJSON_AddArrayToObject(o, "scopes_supported");
    cJSON_AddItemToArray(a, cJSON_CreateString("openid"));
    cJSON_AddItemToArray(a, cJSON_CreateString("profile"));
    cJSON_AddItemToArray(a, cJSON_CreateString("offline_access"));
    api_json(resp, 200, cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
}

int idp_route(void *ud, const api_req *req, api_resp *resp)
{
    idp_t *p = ud;
    if (path_is(req, "/adfs/.well-known/openid-configuration")) {
        openid_configuration(p, resp);
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
    if (path_is(req, "/adfs/devicelogin")) {
        devicelogin_page(p, req, resp);
        return 1;
    }
    if (path_is(req, "/msi/token") && api_method(req, "GET")) {
        msi_endpoint(p, req, resp);
        return 1;
    }
    if (path_is(req, "/adfs/oauth2/token") || path_is(req, "/adfs/oauth2/devicecode") ||
        path_is(req, "/msi/token")) {
        if (!api_method(req, "POST")) {
            api_error(resp, 405, "MethodNotAllowed", "Use POST with a form body.");
            return 1;
        }
        if (path_is(req, "/msi/token"))
            msi_endpoint(p, req, resp);
        else if (path_is(req, "/adfs/oauth2/devicecode"))
            devicecode_endpoint(p, req, resp);
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
