"""The extension's cluster side (azext_connectedk8s/_kube.py and
_manifests.py) against a real kube-apiserver with RBAC on, driven through
the real kubectl as `connect`, `delete` and `enable-features` drive it,
in the tests' own Python (../extension.py makes the package importable).

What is checked is ours: the objects `connect` applies are accepted by
server-side apply and can be applied again (an interrupted connect is
re-run); every object carries the label `delete` selects on, so `delete`
leaves nothing behind; the agent's ServiceAccount may impersonate and do
nothing else; each azure-rbac level's group gets exactly its ClusterRole's
rights; and kubectl failures become CLIInternalError with advice.

(The file used to check the test control plane itself: its version, that
RBAC works, that the controller manager fills token secrets. That is
Kubernetes' behaviour, and every test that uses the `kube` fixture already
fails if the control plane does not work.)"""
import json
import os
import time

import pytest

from extension import import_extension

import_extension()

from azure.cli.core.azclierror import CLIInternalError  # noqa: E402

from azext_connectedk8s import _kube, _manifests, custom  # noqa: E402

CID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Kubernetes/connectedClusters/c1"
AGENT = "system:serviceaccount:%s:clusterconnect-agent" % _manifests.NAMESPACE


@pytest.fixture(autouse=True)
def kubectl_on_path(kube, monkeypatch):
    """_kube finds kubectl on PATH, as it does for users."""
    monkeypatch.setenv("PATH", os.path.dirname(kube.kubectl_path) + os.pathsep + os.environ.get("PATH", ""))


def can_i(kube, verb, resource, user, *groups, namespace="default"):
    args = ["auth", "can-i", verb, resource, "-n", namespace, "--as", user]
    for g in groups:
        args += ["--as-group", g]
    r = kube.kubectl(*args, check=False)
    assert r.stdout.strip() in ("yes", "no"), r.stdout + r.stderr
    return r.stdout.strip() == "yes"


def labelled(kube, kinds):
    r = kube.kubectl("get", kinds, "-A", "-l", custom.SELECTOR, "-o", "json")
    return sorted((i["kind"], i["metadata"]["name"]) for i in json.loads(r.stdout)["items"])


def test_server_version_is_the_clusters(kube):
    pinned = open(os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "KUBE_VERSION")).read().strip()
    assert _kube.server_version(kube.kubeconfig, None) == pinned


def test_agent_objects_apply_twice_and_delete_leaves_nothing(kube):
    objects = _manifests.agent_objects("https://hub.test", CID, "-----BEGIN PRIVATE KEY-----\nx\n", "CA PEM")
    _kube.apply(kube.kubeconfig, None, objects)
    _kube.apply(kube.kubeconfig, None, objects)  # server-side apply again: no conflict, nothing changes
    want = sorted((o["kind"], o["metadata"]["name"]) for o in objects if o["kind"] != "Namespace")
    assert labelled(kube, "serviceaccount,secret,configmap,deployment,clusterrole,clusterrolebinding") == want
    assert kube.kubectl("get", "namespace", "-l", custom.SELECTOR, "-o", "name").stdout.split() == [
        "namespace/" + _manifests.NAMESPACE]
    cm = json.loads(kube.kubectl("get", "configmap", "clusterconnect-config", "-n", _manifests.NAMESPACE,
                                 "-o", "json").stdout)
    assert cm["data"] == {"hub": "https://hub.test", "resourceId": CID, "usernameClaim": "upn", "usernamePrefix": "",
                          "groupsPrefix": ""}
    # The Deployment's flags take those settings from the ConfigMap.
    dep = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--username-claim=$(CK_USERNAME_CLAIM)" in dep["args"]
    assert {"name": "CK_USERNAME_CLAIM", "valueFrom": {"configMapKeyRef": {
        "name": "clusterconnect-config", "key": "usernameClaim"}}} in dep["env"]
    # The agent may impersonate users, groups and service accounts, and do nothing else.
    assert can_i(kube, "impersonate", "users", AGENT)
    assert can_i(kube, "impersonate", "groups", AGENT)
    assert can_i(kube, "impersonate", "serviceaccounts", AGENT)
    assert not can_i(kube, "get", "secrets", AGENT, namespace=_manifests.NAMESPACE)
    assert not can_i(kube, "list", "pods", AGENT)
    assert not can_i(kube, "create", "clusterrolebindings", AGENT)
    # What `delete` runs removes everything connect applied.
    for kinds in ("namespace", "clusterrole,clusterrolebinding"):
        assert _kube.delete(kube.kubeconfig, None, kinds, custom.SELECTOR).returncode == 0
    assert labelled(kube, "clusterrole,clusterrolebinding") == []
    deadline = time.time() + 60
    while kube.kubectl("get", "namespace", _manifests.NAMESPACE, check=False).returncode == 0:
        assert time.time() < deadline, "namespace %s never went away" % _manifests.NAMESPACE
        time.sleep(0.5)


# Each level's group, and what it may do: (verb, resource, namespace) -> allowed.
LEVELS = {
    "viewer": {("list", "pods"): True, ("delete", "pods"): False, ("get", "secrets"): False,
               ("create", "rolebindings"): False, ("list", "nodes"): False},
    "writer": {("list", "pods"): True, ("delete", "pods"): True, ("get", "secrets"): True,
               ("create", "rolebindings"): False, ("list", "nodes"): False},
    "admin": {("list", "pods"): True, ("delete", "pods"): True, ("get", "secrets"): True,
              ("create", "rolebindings"): True, ("list", "nodes"): False},
    "cluster-admin": {("list", "pods"): True, ("delete", "pods"): True, ("get", "secrets"): True,
                      ("create", "rolebindings"): True, ("list", "nodes"): True},
}


def test_azure_rbac_levels_grant_their_cluster_roles(kube):
    assert set(LEVELS) == set(_manifests.RBAC_LEVELS)
    user = "00000000-0000-0000-0000-00000000a11c"
    assert not can_i(kube, "list", "pods", user)  # no binding: nothing
    _kube.apply(kube.kubeconfig, None, _manifests.azure_rbac_objects())
    for level, rights in LEVELS.items():
        group = "connectedk8s:azure-rbac:" + level
        got = {(verb, res): can_i(kube, verb, res, user, group) for verb, res in rights}
        assert got == rights, level
    # disable-features azure-rbac deletes the bindings by name: afterwards the groups grant nothing.
    _kube.run(kube.kubeconfig, None, "delete", "clusterrolebinding", "--ignore-not-found",
              *["connectedk8s-azure-rbac-" + lv for lv in _manifests.RBAC_LEVELS])
    assert not can_i(kube, "list", "pods", user, "connectedk8s:azure-rbac:cluster-admin")


def test_kubectl_failure_is_cli_internal_error_with_advice(kube):
    with pytest.raises(CLIInternalError) as ei:
        _kube.server_version(kube.kubeconfig, "no-such-context")
    assert str(ei.value).startswith("kubectl version failed: ")
    assert "no-such-context" in str(ei.value)
    assert ei.value.recommendations == ["Check that --kube-config/--kube-context reach the cluster with rights to "
                                        "create namespaces, RBAC objects, secrets and deployments."]
