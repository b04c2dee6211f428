/* rbac: the built-in Azure roles arc-hub understands and scope matching.
 *
 * Roles are reduced to what the hub and the agent check: reading and
 * writing connectedClusters, listClusterUserCredential, managing role
 * assignments, and the four Arc Kubernetes data-plane levels that the
 * agent enforces when azure-rbac is on. The ids are Azure's, so
 * `az role assignment create --role <name or id>` written for Azure works
 * here unchanged. */
#ifndef CK_RBAC_H
#define CK_RBAC_H
#include <stddef.h>

enum {
    RBAC_READ = 1 << 0,   /* read actions on the resource */
    RBAC_WRITE = 1 << 1,  /* connectedClusters write/delete */
    RBAC_CRED = 1 << 2,   /* listClusterUserCredential/action */
    RBAC_ASSIGN = 1 << 3, /* Microsoft.Authorization/roleAssignments/write */
    /* Data actions inside the cluster (azure-rbac), cumulative. */
    RBAC_K8S_VIEW = 1 << 4,
    RBAC_K8S_WRITE = 1 << 5,
    RBAC_K8S_ADMIN = 1 << 6,
    RBAC_K8S_CLUSTER_ADMIN = 1 << 7,
};

typedef struct rbac_role {
    const char *id; /* GUID */
    const char *name;
    const char *description;
    unsigned perms;
} rbac_role;

const rbac_role *rbac_roles(size_t *n);
/* By GUID or by a full roleDefinitions id ending in the GUID. */
const rbac_role *rbac_role_by_id(const char *id);
/* Case-insensitive role name. */
const rbac_role *rbac_role_by_name(const char *name);
/* Whether a role assignment at `scope` applies to `target`: scope equals
 * target or is an ancestor on a '/' boundary (case-insensitive, as ARM ids
 * are). "/" covers everything. */
int rbac_scope_covers(const char *scope, const char *target);
/* The Arc Kubernetes level (RBAC_K8S_*) a request needs under azure-rbac,
 * from its Kubernetes attributes: reads need Viewer (secrets: Writer),
 * namespaced writes Writer, roles and role bindings Admin, cluster-scoped
 * writes, quotas, namespaces and special verbs Cluster Admin. */
unsigned rbac_k8s_required(const char *verb, const char *group, const char *resource, const char *nspace,
                           int non_resource);

#endif
