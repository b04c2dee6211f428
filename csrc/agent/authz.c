/* authz: azure-rbac for the agent. Kubernetes request attributes are
 * derived from the request line the way the API server's RequestInfo does,
 * then the hub decides from Azure role assignments (POST
 * /agent/v1/checkaccess, signed with the agent's identity). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "hcli.h"
#include "http.h"
#include "json.h"
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

typedef struct call {
    authz_cb cb;
    void *ud;
} call;

static void on_answer(void *ud, int status, const char *body, size_t len, const char *err)
{
    call *c = ud;
    if (status != 200) {
        char why[300];
        snprintf(why, sizeof why, "the hub could not check access (%s%.*s)", status < 0 ? err : "HTTP ",
                 status < 0 ? 0 : (int)(len > 200 ? 200 : len), body);
        c->cb(c->ud, -1, "", why);
    } else {
        cJSON *o = cJSON_ParseWithLength(body, len);
        const cJSON *al = cJSON_GetObjectItemCaseSensitive(o, "allowed");
        const cJSON *lv = cJSON_GetObjectItemCaseSensitive(o, "level");
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(o, "reason");
        c->cb(c->ud, cJSON_IsBool(al) ? cJSON_IsTrue(al) : -1, cJSON_IsString(lv) ? lv->valuestring : "",
              cJSON_IsString(re) ? re->valuestring : "malformed answer");
        cJSON_Delete(o);
    }
    free(c);
}

struct hcli *authz_check(agent_t *a, const char *user, char **groups, size_t ngroups, int overage,
                         const authz_attrs *at, authz_cb cb, void *ud)
{
    char *jwt = reg_agent_jwt(a);
    call *c = calloc(1, sizeof *c);
    if (!jwt || !c) {
        free(jwt);
        free(c);
        return NULL;
    }
    c->cb = cb;
    c->ud = ud;
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
    free(jwt);
    const char *h[] = {auth, "Content-Type: application/json", NULL};
    hcli_opts ho = {.max_response = 16 * 1024, .timeout_ms = 10000};
    hcli_t *r = body
                    ? hcli_request(a->loop, url, a->hub_tls, "POST", h, body, strlen(body), &ho, on_answer, c)
                    : NULL;
    free(body);
    if (!r)
        free(c);
    return r;
}
