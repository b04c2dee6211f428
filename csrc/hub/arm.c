/* arm: the control plane's router. See arm.h; the resources live in
 * arm_subs.c, arm_clusters.c and arm_roles.c (arm_base.h draws the map). */
#include "arm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arm_base.h"
#include "arm_clusters.h"
#include "arm_roles.h"
#include "arm_subs.h"
#include "log.h"

/* ---- the table ---------------------------------------------------------- */

/* A pattern is a list of path segments: a literal matches in any case,
 * {x} one segment, ** one or more. A pattern that starts with {scope}
 * matches a Microsoft.Authorization path, {scope} standing for every
 * segment before /providers/Microsoft.Authorization. What some captures
 * must hold is checked before the method: {rg} a resource group name,
 * {cluster} a connected cluster name. */
typedef struct arm_route_ent {
    const char *method;  /* "*": any (the handler answers the others) */
    const char *pattern; /* entries of one pattern are adjacent */
    unsigned flags;
    unsigned perm;      /* rights needed at the cluster or scope; 0: any signed-in caller */
    const char *action; /* what a 403 names */
    arm_handler fn;
    const char *note; /* for the handler: the 405 sentence */
} arm_route_ent;

#define VERSIONED 1u /* needs a known api-version (checked first) */

#define SUB "subscriptions/{sub}"
#define CCS "providers/Microsoft.Kubernetes/connectedClusters"
#define RG_CCS SUB "/resourceGroups/{rg}/" CCS
#define CC RG_CCS "/{cluster}"
#define CRED "listClusterUserCredential"
#define CRED_ACT CRED "/action"
#define AUTHZ "{scope}/providers/Microsoft.Authorization/"
#define CC_ACT "Microsoft.Kubernetes/connectedClusters/"
#define RA_ACT "Microsoft.Authorization/roleAssignments/"

static void not_allowed(arm_call *k, api_resp *resp)
{
    api_error(resp, 405, "MethodNotAllowed", "%s", k->note);
}

static void no_route(arm_call *k, api_resp *resp)
{
    api_error(resp, 404, "NotFound", "%s", k->note);
}

static const char cc_methods[] = "connectedClusters take GET, PUT, PATCH and DELETE.";
static const char list_get[] = "Use GET to list connected clusters.";
static const char cred_post[] = "Use POST for listClusterUserCredential.";
static const char cc_no_route[] = "No route for this connectedClusters path.";
static const char rd_readonly[] = "Role definitions are built in and read-only here.";
static const char ra_list_get[] = "Use GET to list role assignments.";
static const char ra_methods[] = "Role assignments take PUT, GET and DELETE.";

static const arm_route_ent routes[] = {
    {"*",      "subscriptions",               0,         0,           NULL,            arm_subs_list,     NULL       },
    {"*",      SUB,                           0,         0,           NULL,            arm_sub_get,       NULL       },
    {"GET",    SUB "/" CCS,                   VERSIONED, 0,           NULL,            arm_cc_list_sub,   NULL       },
    {"*",      SUB "/" CCS,                   VERSIONED, 0,           NULL,            not_allowed,       list_get   },
    {"GET",    RG_CCS,                        VERSIONED, 0,           NULL,            arm_cc_list_rg,    NULL       },
    {"*",      RG_CCS,                        VERSIONED, 0,           NULL,            not_allowed,       list_get   },
    {"POST",   CC "/" CRED,                   VERSIONED, RBAC_CRED,   CC_ACT CRED_ACT, arm_cc_credential, NULL       },
    {"*",      CC "/" CRED,                   VERSIONED, 0,           NULL,            not_allowed,       cred_post  },
    {"*",      CC "/**",                      VERSIONED, 0,           NULL,            no_route,          cc_no_route},
    {"GET",    CC,                            VERSIONED, RBAC_READ,   CC_ACT "read",   arm_cc_get,        NULL       },
    {"PUT",    CC,                            VERSIONED, RBAC_WRITE,  CC_ACT "write",  arm_cc_put,        NULL       },
    {"PATCH",  CC,                            VERSIONED, RBAC_WRITE,  CC_ACT "write",  arm_cc_patch,      NULL       },
    {"DELETE", CC,                            VERSIONED, RBAC_WRITE,  CC_ACT "delete", arm_cc_delete,     NULL       },
    {"*",      CC,                            VERSIONED, 0,           NULL,            not_allowed,       cc_methods },
    {"GET",    SUB "/resourceGroups/{group}", 0,         0,           NULL,            arm_rg_get,        NULL       },
    {"GET",    AUTHZ "roleDefinitions",       0,         0,           NULL,            arm_roledefs_list, NULL       },
    {"*",      AUTHZ "roleDefinitions",       0,         0,           NULL,            not_allowed,       rd_readonly},
    {"GET",    AUTHZ "roleDefinitions/{id}",  0,         0,           NULL,            arm_roledef_get,   NULL       },
    {"*",      AUTHZ "roleDefinitions/{id}",  0,         0,           NULL,            not_allowed,       rd_readonly},
    {"GET",    AUTHZ "roleAssignments",       0,         RBAC_READ,   RA_ACT "read",   arm_ra_list,       NULL       },
    {"*",      AUTHZ "roleAssignments",       0,         0,           NULL,            not_allowed,       ra_list_get},
    {"PUT",    AUTHZ "roleAssignments/{id}",  0,         RBAC_ASSIGN, RA_ACT "write",  arm_ra_put,        NULL       },
    {"GET",    AUTHZ "roleAssignments/{id}",  0,         RBAC_READ,   RA_ACT "read",   arm_ra_get,        NULL       },
    {"DELETE", AUTHZ "roleAssignments/{id}",  0,         RBAC_ASSIGN, RA_ACT "delete", arm_ra_delete,     NULL       },
    {"*",      AUTHZ "roleAssignments/{id}",  0,         0,           NULL,            not_allowed,       ra_methods },
    {"*",      AUTHZ "{kind}",                0,         0,           NULL,            arm_authz_unknown, NULL       },
    {"*",      AUTHZ "{kind}/{id}",           0,         0,           NULL,            arm_authz_unknown, NULL       },
};

/* Whether `pattern` matches segs[from..n); *rg and *cluster point at the
 * segments the pattern names so (else NULL). */
static int match(const char *pattern, char segs[MAX_SEGS][SEG_MAX], size_t from, size_t n, const char **rg,
                 const char **cluster)
{
    size_t i = from;
    const char *p = pattern;
    *rg = *cluster = NULL;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 2 && !memcmp(p, "**", 2))
            return i < n; /* one or more segments left */
        if (i == n)
            return 0;
        if (p[0] == '{') {
            if (len == 4 && !memcmp(p, "{rg}", 4))
                *rg = segs[i];
            else if (len == 9 && !memcmp(p, "{cluster}", 9))
                *cluster = segs[i];
        } else if (strlen(segs[i]) != len || strncasecmp(segs[i], p, len) != 0) {
            return 0;
        }
        i++;
        p = e ? e + 1 : p + len;
    }
    return i == n;
}

/* Routes a request whose path split into segs (segs[0] is
 * "subscriptions") for an authenticated caller. */
static void dispatch(arm_call *k, api_resp *resp)
{
    /* Microsoft.Authorization paths match the {scope} routes on what
     * follows the scope; everything else the rest of the table. */
    int az = arm_parse_authz(k->segs, k->n, &k->az);
    if (az < 0) {
        api_error(resp, 400, "InvalidResourceId", "The Microsoft.Authorization path is not valid.");
        return;
    }
    size_t from = 0;
    if (az == 0) {
        if (!arm_valid_scope(k->a, k->az.scope)) {
            api_error(resp, 400, "InvalidScope",
                      "The scope '%.300s' is not valid here: it must be under a known subscription.",
                      k->az.scope);
            return;
        }
        from = k->n - (k->az.has_name ? 4 : 3); /* the "providers" segment */
    }
    size_t nr = sizeof routes / sizeof routes[0];
    for (size_t i = 0; i < nr; i++) {
        const arm_route_ent *e = &routes[i];
        int scoped = !strncmp(e->pattern, "{scope}/", 8);
        const char *rg, *cluster;
        if (scoped != (az == 0) ||
            !match(scoped ? e->pattern + 8 : e->pattern, k->segs, from, k->n, &rg, &cluster))
            continue;
        /* The path is this pattern's: check what it names, then pick the
         * entry for the method among the pattern's own. */
        if ((e->flags & VERSIONED) && arm_check_api_version(k->req, resp) < 0)
            return;
        if (rg && !arm_valid_rg_name(rg)) {
            api_error(resp, 400, "InvalidResourceGroupName",
                      "Resource group names are 1-90 letters, digits, '_', '-', '.', '(' or ')' and cannot "
                      "end in '.'.");
            return;
        }
        if (cluster && !arm_valid_cc_name(cluster)) {
            api_error(resp, 400, "InvalidResourceName",
                      "Connected cluster names are 1-63 letters, digits, '-' or '_', starting with a letter "
                      "or digit.");
            return;
        }
        if (cluster)
            arm_cc_ref(&k->cc, k->sub->id, rg, cluster);
        for (size_t j = i; j < nr && !strcmp(routes[j].pattern, e->pattern); j++) {
            const arm_route_ent *m = &routes[j];
            if (strcmp(m->method, "*") && !api_method(k->req, m->method))
                continue;
            const char *target = az == 0 ? k->az.scope : k->cc.id;
            if (m->perm && arm_require(k->a, k->who, target, m->perm, m->action, resp) < 0)
                return;
            k->note = m->note;
            m->fn(k, resp);
            return;
        }
        break; /* no entry for this method: as if no route */
    }
    api_error(resp, 404, "NotFound", "No route for this path on arc-hub's control plane.");
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
    api_json(resp, 200, arm_print(o));
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
    if (arm_split_path(req->path, segs, &n) < 0) {
        api_error(resp, 400, "InvalidResourceId",
                  "The resource path is not valid: empty, '.' or '..' segments and encoded '/' or control "
                  "characters "
                  "are refused.");
        goto out;
    }
    if (arm_authenticate(a, req, &who, resp) < 0)
        goto out;
    arm_call k = {.a = a, .req = req, .who = &who, .segs = segs, .n = n};
    if (n >= 2 && !(k.sub = arm_find_sub(a, segs[1]))) {
        api_error(resp, 404, "SubscriptionNotFound", "The subscription '%.64s' could not be found.", segs[1]);
        goto out;
    }
    dispatch(&k, resp);
out:
    jwt_claims_free(&who.c);
    free(segs);
    return 1;
}

arm_t *arm_new(store_t *s, idp_t *idp, relay_t *relay, const arm_opts *o, char err[256])
{
    arm_t *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, 256, "out of memory");
        return NULL;
    }
    if (!o->verify) {
        snprintf(err, 256, "the control plane needs its trusted issuers");
        free(a);
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
    arm_lower(a->sas_host);
    if (o->arm_audience)
        snprintf(a->aud, sizeof a->aud, "%s", o->arm_audience);
    else
        snprintf(a->aud, sizeof a->aud, "%s/", o->public_url);
    snprintf(a->aud_noslash, sizeof a->aud_noslash, "%s", a->aud);
    size_t al = strlen(a->aud_noslash);
    if (al && a->aud_noslash[al - 1] == '/')
        a->aud_noslash[al - 1] = '\0';
    int booted = arm_clusters_boot(a);
    if (booted < 0) {
        snprintf(err, 256, "cannot read clusters from the state store: %s", store_error(s));
        free(a);
        return NULL;
    }
    /* Reports are written about once per heartbeat interval. */
    if (!(a->beats =
              beats_new(o->loop ? o->loop : uv_default_loop(), s, (unsigned)a->o.heartbeat_s * 1000, err))) {
        free(a);
        return NULL;
    }
    char nb[16];
    snprintf(nb, sizeof nb, "%d", booted);
    log_kv(LOG_INFO, "arm.start", "clusters", nb, "audience", a->aud, NULL);
    return a;
}

void arm_free(arm_t *a)
{
    if (!a)
        return;
    beats_free(a->beats);
    free(a);
}

static void hook_tick(void *ud, uint64_t now_ms)
{
    arm_t *a = ud;
    beats_tick(a->beats, now_ms);
}

const api_hooks arm_hooks = {.tick = hook_tick};
