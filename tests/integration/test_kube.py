"""The throwaway Kubernetes control plane the agent tests stand on: a real
kube-apiserver and etcd from the pinned Kubernetes modules, RBAC on,
driven by the real kubectl of the same version."""
import base64
import json
import os
import time

import pytest





def token_kubeconfig(kube, tmp_path, token):
    p = tmp_path / "sa.kubeconfig"
    p.write_text(kube.kubeconfig_text("sa", token=token))
    return str(p)


def test_control_plane_is_real_and_versioned(kube):
    v = json.loads(kube.kubectl("version", "-o", "json").stdout)
    pinned = open(os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "KUBE_VERSION")).read().strip()
    assert v["serverVersion"]["gitVersion"] == pinned
    assert v["clientVersion"]["gitVersion"] == pinned
    names = kube.kubectl("get", "ns", "-o", "name").stdout.split()
    assert "namespace/default" in names and "namespace/kube-system" in names


def test_service_account_tokens_and_rbac(kube, tmp_path):
    kube.kubectl("create", "serviceaccount", "reader", "-n", "default")
    kube.kubectl("create", "serviceaccount", "nobody", "-n", "default")
    kube.kubectl("create", "clusterrole", "pod-reader", "--verb=get,list,watch", "--resource=pods")
    kube.kubectl("create", "clusterrolebinding", "reader-pods", "--clusterrole=pod-reader",
                 "--serviceaccount=default:reader")
    kube.kubectl("run", "web", "--image=nginx", "-n", "default")  # stored, never scheduled: no kubelet
    ok = kube.kubectl("create", "token", "reader", "-n", "default").stdout.strip()
    no = kube.kubectl("create", "token", "nobody", "-n", "default").stdout.strip()
    r = kube.kubectl("get", "pods", "-A", kubeconfig=token_kubeconfig(kube, tmp_path, ok))
    assert "web" in r.stdout
    r = kube.kubectl("get", "pods", "-A", kubeconfig=token_kubeconfig(kube, tmp_path, no), check=False)
    assert r.returncode != 0 and "forbidden" in r.stderr.lower()


def test_controller_manager_fills_token_secrets(kube):
    kube.kubectl("create", "serviceaccount", "legacy", "-n", "default", check=False)
    manifest = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                "metadata": {"name": "legacy-token", "namespace": "default",
                             "annotations": {"kubernetes.io/service-account.name": "legacy"}}}
    p = os.path.join(kube.dir, "secret.json")
    with open(p, "w") as f:
        json.dump(manifest, f)
    kube.kubectl("apply", "-f", p)
    deadline = time.time() + 30
    token = ""
    while time.time() < deadline and not token:
        r = kube.kubectl("get", "secret", "legacy-token", "-n", "default", "-o", "jsonpath={.data.token}")
        token = base64.b64decode(r.stdout).decode() if r.stdout else ""
        time.sleep(0.5)
    assert token.count(".") == 2  # a signed JWT
