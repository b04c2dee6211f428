/* rbac: built-in roles and scope ancestry. See rbac.h. */
#include "rbac.h"

#include <string.h>
#include <strings.h>

#define K8S_VIEW RBAC_K8S_VIEW
#define K8S_WRITE (K8S_VIEW | RBAC_K8S_WRITE)
#define K8S_ADMIN (K8S_WRITE | RBAC_K8S_ADMIN)
#define K8S_CADMIN (K8S_ADMIN | RBAC_K8S_CLUSTER_ADMIN)

static const rbac_role roles[] = {
    {"8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner",
     "Grants full access to manage all resources, including the ability to assign roles.",                 RBAC_READ | RBAC_WRITE | RBAC_CRED | RBAC_ASSIGN},
    {"b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor",
     "Grants full access to manage all resources, but does not allow you to assign roles.",                RBAC_READ | RBAC_WRITE | RBAC_CRED              },
    {"acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader",
     "View all resources, but does not allow you to make any changes.",                                    RBAC_READ                                       },
    {"18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "User Access Administrator",
     "Lets you manage user access to Azure resources.",                                                    RBAC_READ | RBAC_ASSIGN                         },
    {"00493d72-78f6-4148-b6c5-d3ce8e4799dd", "Azure Arc Enabled Kubernetes Cluster User Role",
     "List cluster user credentials action.",                                                              RBAC_READ | RBAC_CRED                           },
    {"63f0a09d-1495-4db4-a681-037d84835eb4", "Azure Arc Kubernetes Viewer",
     "Lets you view all resources in cluster/namespace, except secrets.",                                  RBAC_READ | K8S_VIEW                            },
    {"5b999177-9696-4545-85c7-50de3797e5a1", "Azure Arc Kubernetes Writer",
     "Lets you update everything in cluster/namespace, except (cluster)roles and (cluster)role bindings.", RBAC_READ | K8S_WRITE                           },
    {"dffb1e0c-446f-4dde-a09f-99eb5cc68b96", "Azure Arc Kubernetes Admin",
     "Lets you manage all resources under cluster/namespace, except update or delete resource quotas and "
     "namespaces.",                                                                                        RBAC_READ | K8S_ADMIN                           },
    {"8393591c-06b9-48a2-a542-1bd6b377f6a2", "Azure Arc Kubernetes Cluster Admin",
     "Lets you manage all resources in the cluster.",                                                      RBAC_READ | K8S_CADMIN                          },
};

const rbac_role *rbac_roles(size_t *n)
{
    *n = sizeof roles / sizeof roles[0];
    return roles;
}

const rbac_role *rbac_role_by_id(const char *id)
{
    const char *slash = strrchr(id, '/');
    const char *guid = slash ? slash + 1 : id;
    if (slash && strncasecmp(id, "/", 1) != 0)
        return NULL;
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (strcasecmp(roles[i].id, guid) == 0)
            return &roles[i];
    return NULL;
}

const rbac_role *rbac_role_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (strcasecmp(roles[i].name, name) == 0)
            return &roles[i];
    return NULL;
}

int rbac_scope_covers(const char *scope, const char *target)
{
    size_t sl = strlen(scope);
    while (sl > 1 && scope[sl - 1] == '/')
        sl--;
    if (sl == 1 && scope[0] == '/')
        return 1;
    if (strncasecmp(scope, target, sl) != 0)
        return 0;
    return target[sl] == '\0' || target[sl] == '/';
}

unsigned rbac_k8s_required(const char *verb, const char *group, const char *resource, const char *nspace,
                           int non_resource)
{
    if (non_resource)
        return RBAC_K8S_VIEW;
    int read = !strcmp(verb, "get") || !strcmp(verb, "list") || !strcmp(verb, "watch");
    int write = !strcmp(verb, "create") || !strcmp(verb, "update") || !strcmp(verb, "patch") ||
                !strcmp(verb, "delete") || !strcmp(verb, "deletecollection");
    int cluster_scoped = !nspace || !*nspace;
    if (read)
        /* Viewers do not see secrets (their content is credentials). */
        return !strcmp(resource, "secrets") ? RBAC_K8S_WRITE : RBAC_K8S_VIEW;
    if (!write)
        return RBAC_K8S_CLUSTER_ADMIN; /* impersonate, bind, escalate, approve... */
    if (cluster_scoped || !strcmp(resource, "resourcequotas") || !strcmp(resource, "namespaces"))
        return RBAC_K8S_CLUSTER_ADMIN;
    if (!strcmp(group, "rbac.authorization.k8s.io") &&
        (!strcmp(resource, "roles") || !strcmp(resource, "rolebindings")))
        return RBAC_K8S_ADMIN;
    return RBAC_K8S_WRITE;
}
