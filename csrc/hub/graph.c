/* graph: users, service principals and directory objects. See graph.h. */
#include "graph.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "enc.h"
#include "idp.h"
#include "json.h"
#include "log.h"

#define PREFIX "/graph/v1.0/"
#define MAX_SEGS 4

static int is_user(const idp_principal *r)
{
    return strcmp(r->type, "User") == 0;
}

/* A user or service principal as Graph shows it. `ctx` adds the
 * "@odata.context" of a single-entity answer. */
static cJSON *object_json(const idp_t *p, const idp_principal *r, int ctx)
{
    int user = is_user(r);
    cJSON *o = cJSON_CreateObject();
    if (ctx) {
        char u[700];
        snprintf(u, sizeof u, "%s/graph/v1.0/$metadata#%s/$entity", idp_public_url(p),
                 user ? "users" : "servicePrincipals");
        cJSON_AddStringToObject(o, "@odata.context", u);
    }
    cJSON_AddStringToObject(o, "@odata.type",
                            user ? "#microsoft.graph.user" : "#microsoft.graph.servicePrincipal");
    cJSON_AddStringToObject(o, "id", r->object_id);
    cJSON_AddStringToObject(o, "displayName", r->name);
    if (user) {
        cJSON_AddStringToObject(o, "userPrincipalName", r->name);
        cJSON_AddStringToObject(o, "mail", r->name);
        cJSON_AddArrayToObject(o, "businessPhones");
        cJSON_AddNullToObject(o, "givenName");
        cJSON_AddNullToObject(o, "surname");
        cJSON_AddNullToObject(o, "jobTitle");
    } else {
        cJSON_AddBoolToObject(o, "accountEnabled", 1);
        cJSON_AddStringToObject(o, "servicePrincipalType", "Application");
        if (r->app_id)
            cJSON_AddStringToObject(o, "appId", r->app_id);
        cJSON *n = cJSON_AddArrayToObject(o, "servicePrincipalNames");
        if (r->app_id)
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

static void not_found(api_resp *resp, const char *id)
{
    api_error(
        resp, 404, "Request_ResourceNotFound",
        "Resource '%.200s' does not exist or one of its queried reference-property objects are not present.",
        id);
}

static void answer(api_resp *resp, int status, cJSON *o)
{
    char *body = json_print(o, 0, 0);
    cJSON_Delete(o);
    if (body)
        api_json(resp, status, body);
    else
        api_error(resp, 503, "ServiceUnavailable", "Out of memory; retry.");
}

/* Splits what follows /graph/v1.0/ into decoded segments ("users",
 * "alice@example.test", "getMemberObjects"). Returns the count or -1. */
static int segments(const api_req *req, char segs[MAX_SEGS][256])
{
    const char *s = req->path.p + strlen(PREFIX), *end = req->path.p + req->path.n;
    int n = 0;
    while (s < end) {
        const char *slash = memchr(s, '/', (size_t)(end - s));
        const char *e = slash ? slash : end;
        if (e == s || n == MAX_SEGS)
            return -1;
        long dn = enc_pct_decode(s, (size_t)(e - s), segs[n], 256);
        /* An encoded '/' or NUL would make one segment look like two. */
        if (dn < 0 || (size_t)dn != strlen(segs[n]) || strchr(segs[n], '/'))
            return -1;
        n++;
        s = slash ? slash + 1 : end;
    }
    return n;
}

/* The user a path names: "me" is the caller. */
static const idp_principal *user_of(const idp_t *p, const char *seg, const char *caller)
{
    const idp_principal *r = idp_lookup(p, strcmp(seg, "me") ? seg : caller);
    return r && is_user(r) ? r : NULL;
}

static void member_objects(const idp_principal *r, api_resp *resp)
{
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "value");
    for (size_t i = 0; i < r->ngroups; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(r->groups[i]));
    answer(resp, 200, o);
}

static void get_by_ids(const idp_t *p, const api_req *req, api_resp *resp)
{
    cJSON *in = cJSON_ParseWithLength(req->body, req->body_len);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(in, "ids"), *id;
    if (!cJSON_IsArray(ids)) {
        cJSON_Delete(in);
        api_error(resp, 400, "Request_BadRequest", "The body must be {\"ids\": [...]}.");
        return;
    }
    cJSON *out = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(out, "value");
    cJSON_ArrayForEach (id, ids)
        if (cJSON_IsString(id)) {
            const idp_principal *r = idp_find(p, id->valuestring);
            if (r)
                cJSON_AddItemToArray(arr, object_json(p, r, 0));
        }
    cJSON_Delete(in);
    answer(resp, 200, out);
}

static void list(const idp_t *p, int users, const char *filter, api_resp *resp)
{
    char want[256];
    int by_upn = users && filter_value(filter, "userPrincipalName eq '", want, sizeof want);
    int by_app = !users && (filter_value(filter, "appId eq '", want, sizeof want) ||
                            filter_value(filter, "c eq '", want, sizeof want));
    if (filter[0] && !by_upn && !by_app) {
        api_error(resp, 400, "Request_UnsupportedQuery",
                  "This hub filters users by userPrincipalName and service principals by appId or "
                  "servicePrincipalNames only.");
        return;
    }
    size_t n;
    const idp_principal *all = idp_principals(p, &n);
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "value");
    for (size_t i = 0; i < n; i++) {
        const idp_principal *r = &all[i];
        if (users != is_user(r))
            continue;
        if (by_upn && strcasecmp(r->name, want) != 0)
            continue;
        if (by_app && (!r->app_id || strcasecmp(r->app_id, want) != 0))
            continue;
        cJSON_AddItemToArray(arr, object_json(p, r, 0));
    }
    answer(resp, 200, o);
}

int graph_route(void *ud, const api_req *req, api_resp *resp)
{
    idp_t *p = ud;
    size_t pl = strlen(PREFIX);
    if (req->path.n <= pl || memcmp(req->path.p, PREFIX, pl) != 0)
        return 0;
    const http_header *h = http_find(req->http->headers, req->http->nheaders, "Authorization");
    char aud1[600], aud2[600], err[JWT_ERRLEN];
    snprintf(aud1, sizeof aud1, "%s/graph/", idp_public_url(p));
    snprintf(aud2, sizeof aud2, "%s/graph", idp_public_url(p));
    const char *const auds[] = {aud1, aud2, NULL};
    jwt_claims c;
    memset(&c, 0, sizeof c);
    int rc = h && h->value_len >= 8 && !strncasecmp(h->value, "Bearer ", 7)
                 ? idp_verify(p, h->value + 7, h->value_len - 7, auds, &c, err)
                 : JWT_ERR_MALFORMED;
    char caller[128];
    snprintf(caller, sizeof caller, "%s", c.oid[0] ? c.oid : c.sub);
    jwt_claims_free(&c);
    if (rc != JWT_OK) {
        api_error(resp, 401, "InvalidAuthenticationToken",
                  rc == JWT_ERR_EXPIRED ? "Lifetime validation failed, the token is expired."
                                        : "Access token is empty or invalid.");
        return 1;
    }
    char segs[MAX_SEGS][256], filter[512] = "";
    int n = segments(req, segs);
    api_query(req, "$filter", filter, sizeof filter);
    int get = api_method(req, "GET"), post = api_method(req, "POST");
    if (n < 1) {
        api_error(resp, 400, "Request_BadRequest", "The Graph path is not valid.");
        return 1;
    }
    int me = !strcmp(segs[0], "me");
    int users = !strcmp(segs[0], "users");
    if ((me && n == 1) || (users && n == 2)) {
        const idp_principal *r = user_of(p, me ? "me" : segs[1], caller);
        const idp_principal *self = idp_find(p, caller);
        if (!get)
            api_error(resp, 405, "Request_BadRequest", "Use GET.");
        else if (me && (!self || !is_user(self)))
            api_error(resp, 400, "BadRequest",
                      "/me request is only valid with delegated authentication flow.");
        else if (!r)
            not_found(resp, me ? caller : segs[1]);
        else
            answer(resp, 200, object_json(p, r, 1));
        return 1;
    }
    if ((me && n == 2) || (users && n == 3)) {
        const char *verb = segs[n - 1];
        const idp_principal *r = user_of(p, me ? "me" : segs[1], caller);
        int allowed = r && (!strcasecmp(r->object_id, caller) || idp_is_owner(p, caller));
        if (!post)
            api_error(resp, 405, "Request_BadRequest", "Use POST.");
        else if (!r)
            not_found(resp, me ? caller : segs[1]);
        else if (strcmp(verb, "getMemberObjects") && strcmp(verb, "getMemberGroups") &&
                 strcmp(verb, "revokeSignInSessions"))
            api_error(resp, 400, "Request_BadRequest", "Unsupported action '%.64s'.", verb);
        else if (!allowed)
            api_error(resp, 403, "Authorization_RequestDenied",
                      "Insufficient privileges to complete the operation (only the user itself or a "
                      "directory owner).");
        else if (strcmp(verb, "revokeSignInSessions"))
            member_objects(r, resp);
        else if (idp_revoke_sessions(p, r->object_id) < 0)
            api_error(resp, 500, "InternalServerError",
                      "The sessions could not be ended; see the hub's log.");
        else {
            cJSON *o = cJSON_CreateObject();
            char u[700];
            snprintf(u, sizeof u, "%s/graph/v1.0/$metadata#Edm.Boolean", idp_public_url(p));
            cJSON_AddStringToObject(o, "@odata.context", u);
            cJSON_AddBoolToObject(o, "value", 1);
            answer(resp, 200, o);
        }
        return 1;
    }
    if (users && n == 1 && get) {
        list(p, 1, filter, resp);
        return 1;
    }
    if (!strcmp(segs[0], "servicePrincipals") && get && n <= 2) {
        if (n == 1) {
            list(p, 0, filter, resp);
        } else {
            const idp_principal *r = idp_find(p, segs[1]);
            if (!r || is_user(r))
                not_found(resp, segs[1]);
            else
                answer(resp, 200, object_json(p, r, 1));
        }
        return 1;
    }
    if (!strcmp(segs[0], "directoryObjects") && n == 2 && !strcmp(segs[1], "getByIds") && post) {
        get_by_ids(p, req, resp);
        return 1;
    }
    if (!strcmp(segs[0], "directoryObjects") && n == 2 && get) {
        const idp_principal *r = idp_find(p, segs[1]);
        if (r)
            answer(resp, 200, object_json(p, r, 1));
        else
            not_found(resp, segs[1]);
        return 1;
    }
    api_error(resp, 404, "Request_ResourceNotFound",
              "This hub serves me, users, servicePrincipals and directoryObjects of Microsoft Graph only.");
    return 1;
}
