/* tenants: GET /tenants. See tenants.h. */
#include "tenants.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "arm.h"
#include "idp.h"
#include "json.h"
#include "log.h"

int tenants_route(void *ud, const api_req *req, api_resp *resp)
{
    arm_t *a = ud;
    if (req->path.n != 8 || strncasecmp(req->path.p, "/tenants", 8) != 0)
        return 0;
    if (!api_method(req, "GET")) {
        api_error(resp, 405, "MethodNotAllowed", "Use GET to list tenants.");
        return 1;
    }
    idp_t *idp = arm_idp(a);
    const arm_opts *o = arm_options(a);
    char aud[600], aud_noslash[600], err[JWT_ERRLEN];
    if (o->arm_audience)
        snprintf(aud, sizeof aud, "%s", o->arm_audience);
    else
        snprintf(aud, sizeof aud, "%s/", o->public_url);
    snprintf(aud_noslash, sizeof aud_noslash, "%s", aud);
    size_t al = strlen(aud_noslash);
    if (al && aud_noslash[al - 1] == '/')
        aud_noslash[al - 1] = '\0';
    const char *const auds[] = {aud, aud_noslash, NULL};
    const http_header *h = http_find(req->http->headers, req->http->nheaders, "Authorization");
    jwt_claims c;
    memset(&c, 0, sizeof c);
    int rc = h && h->value_len >= 8 && !strncasecmp(h->value, "Bearer ", 7)
                 ? idp_verify(idp, h->value + 7, h->value_len - 7, auds, &c, err)
                 : JWT_ERR_MALFORMED;
    jwt_claims_free(&c);
    if (rc != JWT_OK) {
        snprintf(resp->headers, sizeof resp->headers,
                 "WWW-Authenticate: Bearer authorization_uri=\"%s\", error=\"invalid_token\"\r\n",
                 idp_issuer(idp));
        api_error(resp, 401,
                  rc == JWT_ERR_EXPIRED ? "ExpiredAuthenticationToken" : "InvalidAuthenticationToken",
                  "The access token is missing or invalid.");
        return 1;
    }
    const char *tid = idp_tenant(idp);
    char id[200];
    snprintf(id, sizeof id, "/tenants/%s", tid);
    unsigned mark = json_failures();
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "value");
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "id", id);
    cJSON_AddStringToObject(t, "tenantId", tid);
    cJSON_AddStringToObject(t, "tenantCategory", "Home");
    cJSON_AddStringToObject(t, "displayName", "arc-hub");
    cJSON_AddStringToObject(t, "tenantType", "AAD");
    cJSON_AddItemToArray(arr, t);
    cJSON *cnt = cJSON_AddObjectToObject(root, "count");
    cJSON_AddStringToObject(cnt, "type", "Total");
    cJSON_AddNumberToObject(cnt, "value", 1);
    char *body = json_print(root, mark, 0);
    cJSON_Delete(root);
    if (body)
        api_json(resp, 200, body);
    else
        api_error(resp, 503, "ServiceUnavailable", "Out of memory; retry.");
    return 1;
}
