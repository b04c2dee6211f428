/* authz: azure-rbac for the agent, with a short decision cache. See
 * authz.h. */
#include "authz.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "json.h"
#include "log.h"
#include "sign.h"
#include "url.h"

/* Next '/'-separated segment of p[0..n) from *off; returns its length. */
static size_t seg(const char *p, size_t n, size_t *off, const char **out)
{
    while (*off < n && p[*off] == '/')
        (*off)++;
    size_t s = *off;
    while (*off < n && p[*off] != '/')
        (*off)++;
    *out = p + s;
    return *off - s;
}

static void copy(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

void authz_attrs_of(const char *method, size_t ml, const char *target, size_t tl, authz_attrs *out)
{
    memset(out, 0, sizeof *out);
    url_slice path, query;
    url_split_target(target, tl, &path, &query);
    const char *s[8];
    size_t sl[8], n = 0, off = 0;
    while (n < 8) {
        sl[n] = seg(path.p, path.n, &off, &s[n]);
        if (!sl[n])
            break;
        n++;
    }
    size_t i = 0;
    if (n >= 2 && sl[0] == 3 && !memcmp(s[0], "api", 3)) {
        i = 2; /* /api/v1/... core group */
    } else if (n >= 3 && sl[0] == 4 && !memcmp(s[0], "apis", 4)) {
        copy(out->group, sizeof out->group, s[1], sl[1]);
        i = 3; /* /apis/GROUP/VERSION/... */
    } else {
        out->non_resource = 1;
    }
    if (!out->non_resource && i >= n)
        out->non_resource = 1; /* discovery: /api/v1, /apis/g/v */
    int has_name = 0;
    if (!out->non_resource) {
        if (sl[i] == 10 && !memcmp(s[i], "namespaces", 10) && i + 1 < n) {
            copy(out->nspace, sizeof out->nspace, s[i + 1], sl[i + 1]);
            if (i + 2 < n) {
                i += 2; /* namespaced resource */
            } else {
                /* /api/v1/namespaces/NAME is the namespace object itself */
                copy(out->resource, sizeof out->resource, "namespaces", 10);
                out->nspace[0] = '\0';
                has_name = 1;
                i = n;
            }
        }
        if (i < n) {
            copy(out->resource, sizeof out->resource, s[i], sl[i]);
            has_name = i + 1 < n;
            if (i + 2 < n)
                copy(out->subresource, sizeof out->subresource, s[i + 2], sl[i + 2]);
        }
    }
    url_slice w;
    int watch = url_query_get(query, "watch", &w) &&
                (w.n == 0 || (w.n == 4 && !memcmp(w.p, "true", 4)) || (w.n == 1 && w.p[0] == '1'));
    const char *v = "get";
    if (http_eq(method, ml, "GET") || http_eq(method, ml, "HEAD"))
        v = out->non_resource ? "get" : watch ? "watch" : has_name ? "get" : "list";
    else if (http_eq(method, ml, "POST"))
        v = "create";
    else if (http_eq(method, ml, "PUT"))
        v = "update";
    else if (http_eq(method, ml, "PATCH"))
        v = "patch";
    else if (http_eq(method, ml, "DELETE"))
        v = has_name ? "delete" : "deletecollection";
    else
        v = "unknown";
    /* exec, attach and port-forward open a stream into a pod: writing. */
    if (!strcmp(out->subresource, "exec") || !strcmp(out->subresource, "attach") ||
        !strcmp(out->subresource, "portforward"))
        v = "create";
    snprintf(out->verb, sizeof out->verb, "%s", v);
}

typedef struct entry {
    authz_key key;
    uint64_t expires_ms; /* 0: empty */
    int allowed;
    char level[24];
    char reason[600];
} entry;

struct authz_call {
    agent_t *a;
    authz_cb cb;
    void *ud;
    httpc_req *r;
    authz_key key;
    authz_call *prev, *next;
};

struct authz {
    entry slots[AUTHZ_CACHE_SLOTS];
    char version[sizeof((agent_t *)0)->rbac_version];
    uint64_t hits, misses;
    authz_call *calls;
};

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static struct authz *state(agent_t *a)
{
    if (!a->authz)
        a->authz = calloc(1, sizeof *a->authz);
    return a->authz;
}

static int add(EVP_MD_CTX *m, const char *s)
{
    return EVP_DigestUpdate(m, s, strlen(s) + 1) == 1 ? 0 : -1; /* the NUL separates fields */
}

int authz_key_of(const char *user, char **groups, size_t ngroups, int overage, const authz_attrs *at,
                 authz_key *out)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    char n[48];
    snprintf(n, sizeof n, "%d/%d/%zu", overage ? 1 : 0, at->non_resource ? 1 : 0, ngroups);
    int bad = !m || EVP_DigestInit_ex(m, EVP_sha256(), NULL) != 1 || add(m, user) || add(m, n) ||
              add(m, at->verb) || add(m, at->group) || add(m, at->resource) || add(m, at->subresource) ||
              add(m, at->nspace);
    for (size_t i = 0; i < ngroups && !bad; i++)
        bad = add(m, groups[i]);
    unsigned len = 0;
    bad = bad || EVP_DigestFinal_ex(m, out->d, &len) != 1 || len != sizeof out->d;
    EVP_MD_CTX_free(m);
    return bad ? -1 : 0;
}

/* A different role-assignment version than the cache was filled under
 * empties it. */
static void check_version(agent_t *a, struct authz *z)
{
    if (!strcmp(z->version, a->rbac_version))
        return;
    for (size_t i = 0; i < AUTHZ_CACHE_SLOTS; i++)
        z->slots[i].expires_ms = 0;
    snprintf(z->version, sizeof z->version, "%s", a->rbac_version);
    log_kv(LOG_DEBUG, "authz.cache_flushed", "version", a->rbac_version, NULL);
}

static entry *slot(struct authz *z, const authz_key *k)
{
    size_t i = ((size_t)k->d[0] << 8 | k->d[1]) % AUTHZ_CACHE_SLOTS;
    return &z->slots[i];
}

int authz_cache_get(agent_t *a, const authz_key *k, uint64_t now, int *allowed, const char **level,
                    const char **reason)
{
    struct authz *z = state(a);
    if (!z || !a->cfg.authz_ttl_s)
        return 0;
    check_version(a, z);
    entry *e = slot(z, k);
    if (!e->expires_ms || now >= e->expires_ms || memcmp(e->key.d, k->d, sizeof k->d))
        return 0;
    *allowed = e->allowed;
    *level = e->level;
    *reason = e->reason;
    return 1;
}

void authz_cache_put(agent_t *a, const authz_key *k, uint64_t now, int allowed, const char *level,
                     const char *reason)
{
    struct authz *z = state(a);
    if (!z || !a->cfg.authz_ttl_s || allowed < 0)
        return;
    check_version(a, z);
    entry *e = slot(z, k);
    e->key = *k;
    e->expires_ms = now + a->cfg.authz_ttl_s * 1000ull;
    e->allowed = allowed;
    snprintf(e->level, sizeof e->level, "%s", level);
    snprintf(e->reason, sizeof e->reason, "%s", reason);
}

void authz_counts(const agent_t *a, uint64_t *hits, uint64_t *misses)
{
    *hits = a->authz ? a->authz->hits : 0;
    *misses = a->authz ? a->authz->misses : 0;
}

static void call_unlink(authz_call *c)
{
    struct authz *z = c->a->authz;
    if (c->prev)
        c->prev->next = c->next;
    else
        z->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

static void on_answer(void *ud, int status, const char *body, size_t len, const char *err)
{
    authz_call *c = ud;
    call_unlink(c);
    int allowed = -1;
    const char *level = "", *reason;
    char why[HTTPC_ERRLEN + 300];
    cJSON *o = NULL;
    if (status != 200) {
        snprintf(why, sizeof why, "the hub could not check access (%s%.*s)", status < 0 ? err : "HTTP ",
                 status < 0 ? 0 : (int)(len > 200 ? 200 : len), body);
        reason = why;
    } else {
        o = cJSON_ParseWithLength(body, len);
        const cJSON *al = cJSON_GetObjectItemCaseSensitive(o, "allowed");
        const cJSON *lv = cJSON_GetObjectItemCaseSensitive(o, "level");
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(o, "reason");
        allowed = cJSON_IsBool(al) ? cJSON_IsTrue(al) : -1;
        level = cJSON_IsString(lv) ? lv->valuestring : "";
        reason = cJSON_IsString(re) ? re->valuestring : "malformed answer";
        if (allowed >= 0)
            authz_cache_put(c->a, &c->key, now_ms(), allowed, level, reason);
    }
    c->cb(c->ud, allowed, level, reason);
    cJSON_Delete(o);
    free(c);
}

authz_call *authz_check(agent_t *a, const char *user, char **groups, size_t ngroups, int overage,
                        const authz_attrs *at, authz_cb cb, void *ud, int *cached, authz_result *hit)
{
    *cached = 0;
    struct authz *z = state(a);
    authz_key k;
    if (!z || authz_key_of(user, groups, ngroups, overage, at, &k) < 0)
        return NULL;
    int allowed;
    const char *level, *reason;
    if (authz_cache_get(a, &k, now_ms(), &allowed, &level, &reason)) {
        z->hits++;
        *cached = 1;
        hit->allowed = allowed;
        snprintf(hit->level, sizeof hit->level, "%s", level);
        snprintf(hit->reason, sizeof hit->reason, "%s", reason);
        return NULL;
    }
    const char *jwt = sign_token(a->sign);
    authz_call *c = calloc(1, sizeof *c);
    if (!jwt || !c) {
        free(c);
        return NULL;
    }
    c->a = a;
    c->cb = cb;
    c->ud = ud;
    c->key = k;
    unsigned mark = json_failures(); /* a question missing an attribute asks something else */
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "user", user);
    cJSON *g = cJSON_AddArrayToObject(b, "groups");
    for (size_t i = 0; i < ngroups; i++)
        cJSON_AddItemToArray(g, cJSON_CreateString(groups[i]));
    cJSON_AddBoolToObject(b, "overage", overage);
    cJSON_AddStringToObject(b, "verb", at->verb);
    cJSON_AddStringToObject(b, "group", at->group);
    cJSON_AddStringToObject(b, "resource", at->resource);
    cJSON_AddStringToObject(b, "subresource", at->subresource);
    cJSON_AddStringToObject(b, "namespace", at->nspace);
    cJSON_AddBoolToObject(b, "nonResource", at->non_resource);
    char *body = json_print(b, mark, 0);
    cJSON_Delete(b);
    char url[600], auth[4200];
    snprintf(url, sizeof url, "%s/agent/v1/checkaccess", a->cfg.hub);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", jwt);
    const char *h[] = {auth, "Content-Type: application/json", NULL};
    httpc_opts ho = {.method = "POST",
                     .headers = h,
                     .body = body,
                     .body_len = body ? strlen(body) : 0,
                     .max_response = 16 * 1024,
                     .timeout_ms = 10000,
                     .ca_file = a->cfg.relay_ca};
    c->r = body ? httpc_request(a->http, url, &ho, on_answer, c) : NULL;
    free(body);
    if (!c->r) {
        free(c);
        return NULL;
    }
    z->misses++;
    c->next = z->calls;
    if (z->calls)
        z->calls->prev = c;
    z->calls = c;
    return c;
}

void authz_cancel(authz_call *c)
{
    if (!c)
        return;
    httpc_cancel(c->r);
    call_unlink(c);
    free(c);
}

void authz_stop(agent_t *a)
{
    while (a->authz && a->authz->calls)
        authz_cancel(a->authz->calls);
}
