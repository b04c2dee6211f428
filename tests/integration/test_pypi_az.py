"""The extension in the latest azure-cli from PyPI (scripts/install-deps
pins it in ~/.cache/connectedk8s/az-pypi), next to Debian's az used by the
other tests: installed from the same wheel, signed in against arc-hub, then
role assignment by role name (the seeds' command), show/list, proxy with
kubectl, and delete."""
import glob
import json
import os
import shutil
import tempfile

import pytest

from arcenv import ArcEnv, Proxy
from kube import free_port

AZ = sorted(glob.glob(os.path.expanduser("~/.cache/connectedk8s/az-pypi/*/bin/az")))


@pytest.fixture(scope="module")
def env():
    assert AZ, "scripts/install-deps installs azure-cli from PyPI"
    d = tempfile.mkdtemp(prefix="ck-pypi-")
    e = ArcEnv(d, az=AZ[-1]).start()
    yield e
    e.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_version_is_pypi(env):
    v = json.loads(env.admin.run("version", "-o", "json").stdout)
    assert v["azure-cli"] == os.path.basename(os.path.dirname(os.path.dirname(AZ[-1])))
    assert v["extensions"] == {"connectedk8s": "0.1.0"}


def test_role_assignment_by_name_show_list_proxy_delete(env):
    k = env.kube
    k.kubectl("run", "web", "--image=nginx", "-n", "default")
    k.kubectl("create", "clusterrolebinding", "alice-reads", "--clusterrole=pod-reader", "--user=alice@example.test")
    # The command people already use against Azure, by role name.
    # The seeds' form: --assignee by user principal name (az asks the hub's
    # Microsoft Graph sliver for the object id) and a role name.
    ra = env.admin.json("role", "assignment", "create", "--assignee", "alice@example.test", "--role",
                        "Azure Arc Enabled Kubernetes Cluster User Role", "--scope", env.cid)
    assert ra["principalId"] == env.ids["alice"] and ra["scope"] == env.cid and ra["principalType"] == "User"
    # By object id too, and a service principal by its appId.
    ra = env.admin.json("role", "assignment", "create", "--assignee", env.ids["admin_app"], "--role", "Reader",
                        "--scope", env.cid)
    assert ra["principalId"] == env.ids["admin"] and ra["principalType"] == "ServicePrincipal"
    r = env.admin.run("role", "assignment", "create", "--assignee", "nobody@example.test", "--role", "Reader",
                      "--scope", env.cid, check=False)
    assert r.returncode != 0 and "Cannot find user or service principal" in r.stderr
    alice = env.az()
    alice.login_msi(env.ids["alice"])
    table = alice.run("connectedk8s", "show", "-n", "c1", "-g", "rg1", "-o", "table").stdout
    assert "Connected" in table and "c1" in table
    assert [c["name"] for c in alice.json("connectedk8s", "list", "-g", "rg1")] == ["c1"]
    kc = os.path.join(env.dir, "alice.kubeconfig")
    p = Proxy(alice, kc, free_port()).wait_ready()
    try:
        import subprocess
        r = subprocess.run([k.kubectl_path, "--kubeconfig", kc, "get", "pods", "-A"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0 and "web" in r.stdout, r.stderr + p.text()
    finally:
        assert p.stop() == 0
    # alice may not delete; the admin may, after confirming with --yes.
    r = alice.run("connectedk8s", "delete", "-n", "c1", "-g", "rg1", "--yes", check=False)
    assert r.returncode != 0 and "AuthorizationFailed" in r.stderr
    env.admin.run("connectedk8s", "delete", "-n", "c1", "-g", "rg1", "--yes")
    r = env.admin.run("connectedk8s", "show", "-n", "c1", "-g", "rg1", check=False)
    assert r.returncode != 0 and "was not found" in r.stderr
