"""The rest of the command surface with the real az, kubectl and
kube-apiserver: `connect` (resource + agent identity + server-side apply,
waiting for the agent's heartbeat), `show`/`list`, `proxy`, feature
switches (cluster-connect off/on, the custom-locations rule, azure-rbac
with a Viewer who can list pods and not delete them), and `delete`
(resource and in-cluster agent).

There is no kubelet, so the agent `connect` installs is started here as a
local process with the identity read back from the cluster
(ArcEnv.start_registered_agent), as the systemd deployment runs it."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from arcenv import ArcEnv, Proxy
from kube import free_port

VIEWER = "63f0a09d-1495-4db4-a681-037d84835eb4"   # Azure Arc Kubernetes Viewer
HEARTBEAT = 1


@pytest.fixture(scope="module")
def env():
    d = tempfile.mkdtemp(prefix="ck-connect-")
    e = ArcEnv(d, register=False, hub_args=["--heartbeat-interval", str(HEARTBEAT)]).start()
    e.kube.kubectl("run", "web", "--image=nginx", "-n", "default")
    e.kc = e.kube.kubeconfig
    yield e
    e.stop()
    shutil.rmtree(d, ignore_errors=True)


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while not pred():
        assert time.time() < deadline, what
        time.sleep(0.2)


def kubectl(env, kubeconfig, *args):
    return subprocess.run([env.kube.kubectl_path, "--kubeconfig", kubeconfig, "--request-timeout=20s", *args],
                          capture_output=True, text=True, timeout=60)


def test_connect_installs_the_agent_and_waits_for_it(env):
    az = env.admin
    out = open(os.path.join(env.dir, "connect.out"), "w")
    p = subprocess.Popen([az.az, "connectedk8s", "connect", "-n", "edge", "-g", "rg2", "--kube-config", env.kc,
                          "--timeout", "120", "-o", "json"], env=az.env, stdout=subprocess.PIPE, stderr=out, text=True)
    # connect applied the identity Secret: run the agent from it.
    wait_for(lambda: kubectl(env, env.kc, "get", "secret", "clusterconnect-identity", "-n", "azure-arc").returncode == 0
             or p.poll() is not None, 60, "connect never installed the agent")
    assert p.poll() is None, open(out.name).read()
    env.agent2 = env.start_registered_agent()
    stdout, _ = p.communicate(timeout=120)
    log = open(out.name).read()
    assert p.returncode == 0, log + open(env.agent2.log_path).read()
    assert "Waiting up to 120s" in log and "The agent is connected." in log
    shown = json.loads(stdout)
    assert shown["connectivityStatus"] == "Connected" and shown["name"] == "edge"
    assert shown["agentVersion"] == "0.1.0" and shown["kubernetesVersion"].startswith("v1.")
    # The manifests connect applied: the agent's rights are impersonation only.
    can = kubectl(env, env.kc, "auth", "can-i", "--list", "--as=system:serviceaccount:azure-arc:clusterconnect-agent")
    assert "impersonate" in can.stdout and "secrets" not in can.stdout
    dep = json.loads(kubectl(env, env.kc, "get", "deploy", "clusterconnect-agent", "-n", "azure-arc",
                             "-o", "json").stdout)
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--hub=https://127.0.0.1:%d" % env.hub.port in args
    # The private key is in the cluster only; the resource holds the public half.
    assert "PRIVATE" not in json.dumps(shown)


def test_show_list_and_a_second_connect_refused(env):
    az = env.admin
    table = az.run("connectedk8s", "show", "-n", "edge", "-g", "rg2", "-o", "table").stdout
    assert "Connected" in table and "0.1.0" in table
    assert [c["name"] for c in az.json("connectedk8s", "list", "-g", "rg2")] == ["edge"]
    r = az.run("connectedk8s", "connect", "-n", "edge", "-g", "rg2", "--kube-config", env.kc, check=False)
    assert r.returncode != 0 and "already exists" in r.stderr


def test_proxy_and_cluster_connect_off_and_on(env):
    admin_oid = env.directory["principals"][0]["objectId"]
    env.kube.kubectl("create", "clusterrolebinding", "admin-reads", "--clusterrole=view", "--user=" + admin_oid)
    kc = os.path.join(env.dir, "admin-proxy.kubeconfig")
    p = Proxy(env.admin, kc, free_port(), "--pool-size", "0", rg="rg2", name="edge").wait_ready()
    try:
        assert kubectl(env, kc, "get", "pods", "-A").returncode == 0
        env.admin.run("connectedk8s", "disable-features", "-n", "edge", "-g", "rg2", "--features", "cluster-connect",
                      "--yes")
        wait_for(lambda: "cluster-connect\":\"off" in open(env.agent2.log_path).read(), 10, "agent kept listening")
        r = kubectl(env, kc, "get", "pods")
        assert r.returncode != 0 and "AZK8S0831" in r.stderr, r.stderr
        # Still Connected: the agent keeps reporting with cluster-connect off.
        assert env.admin.json("connectedk8s", "show", "-n", "edge", "-g", "rg2")["connectivityStatus"] == "Connected"
        env.admin.run("connectedk8s", "enable-features", "-n", "edge", "-g", "rg2", "--features", "Cluster-Connect")
        wait_for(lambda: kubectl(env, kc, "get", "pods").returncode == 0, 15, "agent did not listen again")
    finally:
        assert p.stop() == 0


def test_custom_locations_rule(env):
    az = env.admin
    az.run("connectedk8s", "enable-features", "-n", "edge", "-g", "rg2", "--features", "custom-locations")
    r = az.run("connectedk8s", "disable-features", "-n", "edge", "-g", "rg2", "--features", "cluster-connect", "--yes",
               check=False)
    assert r.returncode != 0
    assert "Disabling 'cluster-connect' feature is not allowed when 'custom-locations' feature is enabled" in r.stderr
    r = az.run("connectedk8s", "enable-features", "-n", "edge", "-g", "rg2", "--features", "bogus", check=False)
    assert r.returncode != 0 and "Unknown feature 'bogus'" in r.stderr
    az.run("connectedk8s", "disable-features", "-n", "edge", "-g", "rg2", "--features", "custom-locations", "--yes")


def test_azure_rbac_viewer_lists_but_cannot_delete(env):
    az = env.admin
    shown = az.json("connectedk8s", "enable-features", "-n", "edge", "-g", "rg2", "--features", "azure-rbac",
                    "--kube-config", env.kc)
    assert {"feature": "azure-rbac", "settings": {"enabled": "true"}} in shown["arcAgentryConfigurations"]
    wait_for(lambda: "azure-rbac\":\"on" in open(env.agent2.log_path).read(), 10, "agent did not turn azure-rbac on")
    cid = shown["id"]
    # Alice has no Kubernetes binding at all: only Azure roles.
    env.grant(env.ids["alice"], scope=cid)
    env.grant(env.ids["alice"], role=VIEWER, scope=cid)
    alice = env.az()
    alice.login_msi(env.ids["alice"])
    kc = os.path.join(env.dir, "alice.kubeconfig")
    p = Proxy(alice, kc, free_port(), rg="rg2", name="edge").wait_ready()
    try:
        r = kubectl(env, kc, "get", "pods", "-n", "default")
        assert r.returncode == 0 and "web" in r.stdout, r.stderr + open(env.agent2.log_path).read()[-2000:]
        # The API server saw alice's UPN; the hub was asked about her object
        # id (her role assignments name it), which is why she got in.
        assert ('"user":"alice@example.test","kind":"user","oid":"%s"' % env.ids["alice"]
                in open(env.agent2.log_path).read())
        r = kubectl(env, kc, "delete", "pod", "web", "-n", "default")
        assert r.returncode != 0 and "does not have access" in r.stderr and "Writer" in r.stderr, r.stderr
        r = kubectl(env, kc, "get", "secrets", "-n", "default")
        assert r.returncode != 0 and "does not have access" in r.stderr
        assert kubectl(env, env.kc, "get", "pod", "web", "-n", "default").returncode == 0  # still there
    finally:
        assert p.stop() == 0
    az.run("connectedk8s", "disable-features", "-n", "edge", "-g", "rg2", "--features", "azure-rbac", "--yes",
           "--kube-config", env.kc)
    assert kubectl(env, env.kc, "get", "clusterrolebinding", "connectedk8s-azure-rbac-viewer").returncode != 0


def test_delete_removes_resource_and_agent(env):
    az = env.admin
    r = az.run("connectedk8s", "delete", "-n", "edge", "-g", "rg2", "--kube-config", env.kc, check=False)
    assert r.returncode != 0 and "--yes" in r.stderr  # no tty: refuses without confirmation
    az.run("connectedk8s", "delete", "-n", "edge", "-g", "rg2", "--kube-config", env.kc, "--yes")
    r = az.run("connectedk8s", "show", "-n", "edge", "-g", "rg2", check=False)
    assert r.returncode != 0 and "AZK8S0811" in r.stderr
    wait_for(lambda: kubectl(env, env.kc, "get", "clusterrole", "clusterconnect-agent-impersonator").returncode != 0,
             30, "agent RBAC left behind")
    ns = kubectl(env, env.kc, "get", "namespace", "azure-arc", "-o", "jsonpath={.status.phase}")
    assert ns.returncode != 0 or ns.stdout == "Terminating"
