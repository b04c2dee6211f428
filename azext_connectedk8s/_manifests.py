"""The agent's Kubernetes objects as `az connectedk8s connect` installs
them (registered mode), and the azure-rbac level bindings. Everything
carries app.kubernetes.io/part-of=connectedk8s so `delete` finds it.

The manual install in deploy/agent is the same agent with a relay key
instead of a registered identity."""
import base64

NAMESPACE = "azure-arc"
PART_OF = {"app.kubernetes.io/part-of": "connectedk8s"}
# The agent's image as scripts/agent-image names it; `connect --agent-image`
# points at a copy in your own registry (no registry publishes it yet).
IMAGE = "clusterconnect-agent:0.1.0"
AGENT_UID = 65532  # the unprivileged user of scripts/agent-image
# Arc Kubernetes level -> the built-in ClusterRole the API server applies
# once the agent has checked the Azure scope (see csrc/agent/fwd.c).
RBAC_LEVELS = {"viewer": "view", "writer": "edit", "admin": "admin", "cluster-admin": "cluster-admin"}


def _meta(name, namespace=None):
    m = {"name": name, "labels": dict(PART_OF)}
    if namespace:
        m["namespace"] = namespace
    return m


# Who the API server sees (the agent's --username-claim, --username-prefix,
# --groups-prefix): ConfigMap key -> environment variable the Deployment's
# args expand. Edit the ConfigMap and restart the Deployment to change them.
IDENTITY_SETTINGS = (("usernameClaim", "CK_USERNAME_CLAIM", "--username-claim"),
                     ("usernamePrefix", "CK_USERNAME_PREFIX", "--username-prefix"),
                     ("groupsPrefix", "CK_GROUPS_PREFIX", "--groups-prefix"))


# Outbound proxy (connect --proxy-https/--proxy-http/--proxy-skip-range/
# --proxy-cert): kept in their own Secret, since a proxy URL may carry a
# password, and handed to the agent as the standard environment it reads
# (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) plus --proxy-cert for the CA file.
PROXY_SECRET = "clusterconnect-proxy"
PROXY_ENV = (("https", "HTTPS_PROXY"), ("http", "HTTP_PROXY"), ("noProxy", "NO_PROXY"))
PROXY_CA_DIR = "/var/run/connectedk8s/proxy"
# In-cluster names that never go through the proxy, whatever the skip range
# says (the agent also dials the API server directly on its own).
PROXY_SKIP_DEFAULT = "kubernetes.default.svc,.svc,.cluster.local"


def proxy_objects(proxy_https=None, proxy_http=None, proxy_skip_range=None, proxy_cert_pem=None):
    """The Secret with the proxy settings, and what the agent's container
    gets from it: (objects, env, args, volumes, mounts). All empty when no
    proxy is set."""
    if not (proxy_https or proxy_http):
        return [], [], [], [], []
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    skip = ",".join(x for x in (PROXY_SKIP_DEFAULT, proxy_skip_range) if x)
    data = {"noProxy": b64(skip)}
    if proxy_https:
        data["https"] = b64(proxy_https)
    if proxy_http:
        data["http"] = b64(proxy_http)
    args, volumes, mounts = [], [], []
    if proxy_cert_pem:
        data["proxy-ca.pem"] = b64(proxy_cert_pem)
        args.append("--proxy-cert=%s/proxy-ca.pem" % PROXY_CA_DIR)
        volumes.append({"name": "proxy", "secret": {"secretName": PROXY_SECRET, "defaultMode": 0o400,
                                                    "items": [{"key": "proxy-ca.pem", "path": "proxy-ca.pem"}]}})
        mounts.append({"name": "proxy", "mountPath": PROXY_CA_DIR, "readOnly": True})
    env = [{"name": var, "valueFrom": {"secretKeyRef": {"name": PROXY_SECRET, "key": key}}}
           for key, var in PROXY_ENV if key in data]
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": _meta(PROXY_SECRET, NAMESPACE),
              "data": data}
    return [secret], env, args, volumes, mounts


def agent_objects(hub_url, resource_id, private_key_pem, hub_ca_pem=None, username_claim="upn", username_prefix="",
                  groups_prefix="", image=None, host_network=False, proxy_https=None, proxy_http=None,
                  proxy_skip_range=None, proxy_cert_pem=None):
    """host_network runs the agent in its node's network namespace, for a
    cluster whose API server or hub only its nodes can reach. Both replicas
    may then land on one node and would share its ports, so each opens its
    health endpoint on a loopback port of its own choosing and the kubelet
    has no probe to send."""
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    secret = {"key.pem": b64(private_key_pem)}
    settings = {"hub": hub_url, "resourceId": resource_id, "usernameClaim": username_claim or "upn",
                "usernamePrefix": username_prefix or "", "groupsPrefix": groups_prefix or ""}
    args = ["--hub=" + hub_url, "--resource-id=" + resource_id,
            "--identity-key=/var/run/connectedk8s/identity/key.pem",
            "--health-listen=" + ("127.0.0.1:0" if host_network else "0.0.0.0:8081")]
    args += ["%s=$(%s)" % (flag, var) for _, var, flag in IDENTITY_SETTINGS]
    env = [{"name": var, "valueFrom": {"configMapKeyRef": {"name": "clusterconnect-config", "key": key}}}
           for key, var, _ in IDENTITY_SETTINGS]
    if hub_ca_pem:
        secret["hub-ca.pem"] = b64(hub_ca_pem)
        args.append("--relay-ca=/var/run/connectedk8s/identity/hub-ca.pem")
    proxy_objs, proxy_env, proxy_args, proxy_vols, proxy_mounts = proxy_objects(
        proxy_https, proxy_http, proxy_skip_range, proxy_cert_pem)
    args += proxy_args
    env += proxy_env
    labels = dict(PART_OF, app="clusterconnect-agent")
    container = {
        "name": "agent", "image": image or IMAGE, "imagePullPolicy": "IfNotPresent", "args": args, "env": env,
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "privileged": False,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "identity", "mountPath": "/var/run/connectedk8s/identity", "readOnly": True}]
        + proxy_mounts}
    if not host_network:
        container.update({"ports": [{"name": "health", "containerPort": 8081}],
                          "livenessProbe": {"httpGet": {"path": "/healthz", "port": "health"}},
                          "readinessProbe": {"httpGet": {"path": "/readyz", "port": "health"}}})
    pod = {"serviceAccountName": "clusterconnect-agent",
           # fsGroup: the identity Secret's files (mode 0400, owned by root)
           # become readable to the agent's group, and to no one else.
           "securityContext": {"runAsNonRoot": True, "runAsUser": AGENT_UID, "runAsGroup": AGENT_UID,
                               "fsGroup": AGENT_UID, "seccompProfile": {"type": "RuntimeDefault"}},
           "containers": [container],
           "volumes": [{"name": "identity", "secret": {"secretName": "clusterconnect-identity",
                                                       "defaultMode": 0o400}}] + proxy_vols}
    if host_network:
        pod.update(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")
    return proxy_objs + [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(NAMESPACE)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("clusterconnect-agent", NAMESPACE)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": _meta("clusterconnect-agent-impersonator"),
         "rules": [{"apiGroups": [""], "resources": ["users", "groups", "serviceaccounts"],
                    "verbs": ["impersonate"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": _meta("clusterconnect-agent-impersonator"),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "clusterconnect-agent-impersonator"},
         "subjects": [{"kind": "ServiceAccount", "name": "clusterconnect-agent", "namespace": NAMESPACE}]},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": _meta("clusterconnect-identity", NAMESPACE), "data": secret},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("clusterconnect-config", NAMESPACE),
         "data": settings},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta("clusterconnect-agent", NAMESPACE),
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "clusterconnect-agent"}},
                  "template": {"metadata": {"labels": labels}, "spec": pod}}},
    ]


def azure_rbac_objects():
    return [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": _meta("connectedk8s-azure-rbac-" + level),
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                           "name": "connectedk8s:azure-rbac:" + level}]}
            for level, role in RBAC_LEVELS.items()]
