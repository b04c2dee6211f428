/* Unit tests for rbac: role lookup and scope ancestry. */
#include "check.h"
#include "rbac.h"

static int tests_run;

static void lookup(void)
{
    const rbac_role *r = rbac_role_by_name("azure arc enabled kubernetes cluster user role");
    CHECK(r && (r->perms & RBAC_CRED));
    CHECK(rbac_role_by_id("00493D72-78F6-4148-B6C5-D3CE8E4799DD") == r);
    CHECK(rbac_role_by_id("/subscriptions/x/providers/Microsoft.Authorization/roleDefinitions/"
                          "00493d72-78f6-4148-b6c5-d3ce8e4799dd") == r);
    CHECK(rbac_role_by_id("nope") == NULL);
    const rbac_role *v = rbac_role_by_name("Azure Arc Kubernetes Viewer");
    CHECK(v && (v->perms & RBAC_K8S_VIEW) && !(v->perms & RBAC_K8S_WRITE) && !(v->perms & RBAC_CRED));
    CHECK(!(rbac_role_by_name("Reader")->perms & RBAC_CRED));
    CHECK(rbac_role_by_name("Azure Arc Kubernetes Cluster Admin")->perms & RBAC_K8S_VIEW);
}

static void scopes(void)
{
    const char *id = "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Kubernetes/connectedClusters/c1";
    CHECK(rbac_scope_covers("/subscriptions/s", id));
    CHECK(rbac_scope_covers("/subscriptions/s/", id));
    CHECK(rbac_scope_covers("/subscriptions/s/resourcegroups/rg", id));
    CHECK(rbac_scope_covers(id, id));
    CHECK(rbac_scope_covers("/", id));
    CHECK(!rbac_scope_covers("/subscriptions/s/resourcegroups/r", id)); /* not a segment boundary */
    CHECK(!rbac_scope_covers("/subscriptions/s/resourcegroups/rg2", id));
    CHECK(!rbac_scope_covers(
        "/subscriptions/s/resourceGroups/RG/providers/Microsoft.Kubernetes/connectedClusters/c", id));
    CHECK(!rbac_scope_covers("/subscriptions/t", id));
}

static void k8s_levels(void)
{
    CHECK_EQ(rbac_k8s_required("list", "", "pods", "default", 0), RBAC_K8S_VIEW);
    CHECK_EQ(rbac_k8s_required("get", "", "secrets", "default", 0), RBAC_K8S_WRITE);
    CHECK_EQ(rbac_k8s_required("delete", "", "pods", "default", 0), RBAC_K8S_WRITE);
    CHECK_EQ(rbac_k8s_required("create", "rbac.authorization.k8s.io", "rolebindings", "ns", 0),
             RBAC_K8S_ADMIN);
    CHECK_EQ(rbac_k8s_required("create", "rbac.authorization.k8s.io", "clusterroles", "", 0),
             RBAC_K8S_CLUSTER_ADMIN);
    CHECK_EQ(rbac_k8s_required("delete", "", "namespaces", "", 0), RBAC_K8S_CLUSTER_ADMIN);
    CHECK_EQ(rbac_k8s_required("update", "", "resourcequotas", "ns", 0), RBAC_K8S_CLUSTER_ADMIN);
    CHECK_EQ(rbac_k8s_required("impersonate", "", "users", "", 0), RBAC_K8S_CLUSTER_ADMIN);
    CHECK_EQ(rbac_k8s_required("list", "", "nodes", "", 0), RBAC_K8S_VIEW);
    CHECK_EQ(rbac_k8s_required("get", "", "", "", 1), RBAC_K8S_VIEW);
    /* The levels are cumulative: each role holds the ones below it. */
    unsigned w = rbac_role_by_name("Azure Arc Kubernetes Writer")->perms;
    CHECK((w & RBAC_K8S_VIEW) && (w & RBAC_K8S_WRITE) && !(w & RBAC_K8S_ADMIN));
}

int main(void)
{
    TEST(lookup);
    TEST(scopes);
    TEST(k8s_levels);
    TEST_MAIN_END();
}
