/* Unit tests for the agent's azure-rbac request attributes (authz.c):
 * what the hub is asked must match how the API server reads a request. */
#include "agent.h"
#include "check.h"

static int tests_run;

/* Test double: authz_check (not exercised here) signs with reg.c. */
char *reg_agent_jwt(agent_t *a)
{
    (void)a;
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

int main(void)
{
    TEST(attributes);
    TEST_MAIN_END();
}
