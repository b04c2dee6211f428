/* Unit tests for the agent's azure-rbac request attributes (authz.c):
 * what the hub is asked must match how the API server reads a request;
 * and its decision cache: same question, same answer within the TTL;
 * any other caller, group set or attribute is another question; expiry;
 * a new role-assignment version empties it; failures are not kept. */
#include "authz.h"
#include "check.h"
#include "sign.h"

static int tests_run;

/* Test double: authz_check signs with sign.c; not exercised here. */
const char *sign_token(sign_t *s)
{
    (void)s;
    return NULL;
}

static authz_attrs at(const char *method, const char *target)
{
    authz_attrs a;
    authz_attrs_of(method, strlen(method), target, strlen(target), &a);
    return a;
}

static void attributes(void)
{
    authz_attrs a = at("GET", "/api/v1/namespaces/default/pods?limit=500");
    CHECK_STR(a.verb, "list");
    CHECK_STR(a.resource, "pods");
    CHECK_STR(a.nspace, "default");
    CHECK_STR(a.group, "");
    a = at("GET", "/api/v1/pods");
    CHECK_STR(a.verb, "list");
    CHECK_STR(a.nspace, "");
    a = at("GET", "/api/v1/namespaces/default/pods?watch=true&resourceVersion=1");
    CHECK_STR(a.verb, "watch");
    a = at("DELETE", "/api/v1/namespaces/default/pods/web");
    CHECK_STR(a.verb, "delete");
    a = at("DELETE", "/api/v1/namespaces/default/pods");
    CHECK_STR(a.verb, "deletecollection");
    a = at("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/rolebindings");
    CHECK_STR(a.verb, "create");
    CHECK_STR(a.group, "rbac.authorization.k8s.io");
    CHECK_STR(a.resource, "rolebindings");
    CHECK_STR(a.nspace, "ns");
    a = at("GET", "/api/v1/namespaces/kube-system");
    CHECK_STR(a.resource, "namespaces");
    CHECK_STR(a.nspace, "");
    CHECK_STR(a.verb, "get");
    a = at("POST", "/api/v1/namespaces/default/pods/web/exec?command=sh");
    CHECK_STR(a.subresource, "exec");
    CHECK_STR(a.verb, "create");
    a = at("GET", "/version");
    CHECK(a.non_resource);
    a = at("GET", "/apis/apps/v1");
    CHECK(a.non_resource); /* discovery */
    a = at("PATCH", "/apis/apps/v1/namespaces/x/deployments/d/scale");
    CHECK_STR(a.verb, "patch");
    CHECK_STR(a.group, "apps");
    CHECK_STR(a.subresource, "scale");
    a = at("GET", "//api//v1///pods"); /* repeated slashes collapse as in the API server */
    CHECK_STR(a.resource, "pods");
}

static void cache(void)
{
    static agent_t a;
    a.cfg.authz_ttl_s = 10;
    authz_attrs x = at("GET", "/api/v1/namespaces/default/pods");
    char *g1[] = {"group-a", "group-b"}, *g2[] = {"group-a"}, *g3[] = {"group-ab"};
    authz_key k, k2;
    CHECK_EQ(authz_key_of("oid-1", g1, 2, 0, &x, &k), 0);
    int allowed = -9;
    const char *level, *reason;
    CHECK_EQ(authz_cache_get(&a, &k, 1000, &allowed, &level, &reason), 0);
    authz_cache_put(&a, &k, 1000, 1, "viewer", "granted");
    CHECK_EQ(authz_cache_get(&a, &k, 1500, &allowed, &level, &reason), 1);
    CHECK_EQ(allowed, 1);
    CHECK_STR(level, "viewer");
    CHECK_STR(reason, "granted");
    /* Expired after the TTL. */
    CHECK_EQ(authz_cache_get(&a, &k, 1000 + 10000, &allowed, &level, &reason), 0);
    authz_cache_put(&a, &k, 20000, 0, "viewer", "denied");
    CHECK_EQ(authz_cache_get(&a, &k, 20001, &allowed, &level, &reason), 1);
    CHECK_EQ(allowed, 0);
    /* Every part of the question matters. */
    CHECK_EQ(authz_key_of("oid-2", g1, 2, 0, &x, &k2), 0);
    CHECK(memcmp(k.d, k2.d, sizeof k.d));
    CHECK_EQ(authz_key_of("oid-1", g2, 1, 0, &x, &k2), 0);
    CHECK(memcmp(k.d, k2.d, sizeof k.d));
    CHECK_EQ(authz_key_of("oid-1", g1, 2, 1, &x, &k2), 0);
    CHECK(memcmp(k.d, k2.d, sizeof k.d));
    /* "group-a","group-b" is not "group-ab": fields are separated. */
    char *g4[] = {"group-a", "b"};
    authz_key k3;
    CHECK_EQ(authz_key_of("oid-1", g3, 1, 0, &x, &k2), 0);
    CHECK_EQ(authz_key_of("oid-1", g4, 2, 0, &x, &k3), 0);
    CHECK(memcmp(k2.d, k3.d, sizeof k.d));
    authz_attrs y = at("DELETE", "/api/v1/namespaces/default/pods/web");
    CHECK_EQ(authz_key_of("oid-1", g1, 2, 0, &y, &k2), 0);
    CHECK(memcmp(k.d, k2.d, sizeof k.d));
    authz_attrs z = at("GET", "/api/v1/namespaces/other/pods");
    CHECK_EQ(authz_key_of("oid-1", g1, 2, 0, &z, &k2), 0);
    CHECK(memcmp(k.d, k2.d, sizeof k.d));
    CHECK_EQ(authz_cache_get(&a, &k2, 20001, &allowed, &level, &reason), 0);
    /* The same question asked again hashes the same. */
    CHECK_EQ(authz_key_of("oid-1", g1, 2, 0, &x, &k2), 0);
    CHECK(!memcmp(k.d, k2.d, sizeof k.d));
    /* A new role-assignment version empties the cache. */
    snprintf(a.rbac_version, sizeof a.rbac_version, "v2");
    CHECK_EQ(authz_cache_get(&a, &k, 20002, &allowed, &level, &reason), 0);
    /* Failures are never kept; TTL 0 keeps nothing. */
    authz_cache_put(&a, &k, 30000, -1, "", "hub down");
    CHECK_EQ(authz_cache_get(&a, &k, 30001, &allowed, &level, &reason), 0);
    a.cfg.authz_ttl_s = 0;
    authz_cache_put(&a, &k, 30000, 1, "viewer", "granted");
    CHECK_EQ(authz_cache_get(&a, &k, 30001, &allowed, &level, &reason), 0);
    free(a.authz);
}

int main(void)
{
    TEST(attributes);
    TEST(cache);
    TEST_MAIN_END();
}
