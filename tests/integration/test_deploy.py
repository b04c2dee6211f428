"""The agent's manifests render with kustomize and are applied to a real
(throwaway) API server; the RBAC they grant is impersonation and nothing
else."""
import os

import pytest

from conftest import ROOT




def test_manifests_render_and_apply(kube):
    out = kube.kubectl("kustomize", os.path.join(ROOT, "deploy", "agent")).stdout
    docs = [d for d in out.split("\n---\n") if d.strip()]
    kinds = sorted(l.split(": ", 1)[1] for d in docs for l in d.splitlines() if l.startswith("kind: "))
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Namespace", "ServiceAccount"]
    path = os.path.join(kube.dir, "rendered.yaml")
    with open(path, "w") as f:
        f.write(out)
    kube.kubectl("apply", "-f", path)
    r = kube.kubectl("auth", "can-i", "--list", "--as=system:serviceaccount:azure-arc:clusterconnect-agent")
    granted = [l.split()[0] for l in r.stdout.splitlines()[1:] if "impersonate" in l]
    assert sorted(granted) == ["groups", "serviceaccounts", "users"]
    assert kube.kubectl("auth", "can-i", "list", "pods", "-A",
                        "--as=system:serviceaccount:azure-arc:clusterconnect-agent", check=False).stdout.strip() == "no"
    assert kube.kubectl("auth", "can-i", "impersonate", "users",
                        "--as=system:serviceaccount:azure-arc:clusterconnect-agent").stdout.strip() == "yes"


def test_systemd_unit_names_every_required_flag():
    unit = open(os.path.join(ROOT, "deploy", "systemd", "clusterconnect-agent.service")).read()
    for flag in ("--relay=", "--hybrid-connection=", "--key-name=", "--key-file=", "--apiserver=", "--token-file="):
        assert flag in unit
