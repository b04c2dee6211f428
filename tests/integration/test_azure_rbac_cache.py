"""The azure-rbac hot path: the agent asks the hub over one kept-alive
connection with one agent JWT for its lifetime, reuses an allow or a deny
for --authz-cache-ttl seconds, and drops every cached decision as soon as
a heartbeat reports that role assignments changed, however long the TTL."""
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from agentproc import Agent, wait_for
from arcenv import ArcEnv, Proxy
from kube import free_port

VIEWER = "63f0a09d-1495-4db4-a681-037d84835eb4"  # Azure Arc Kubernetes Viewer


@pytest.fixture(scope="module")
def env():
    d = tempfile.mkdtemp(prefix="ck-rbac-cache-")
    e = ArcEnv(d, hub_args=["--heartbeat-interval", "1"]).start()
    e.stops = []
    k = e.kube
    k.kubectl("run", "web", "--image=nginx", "-n", "default")
    e.agent.terminate()
    e.agent.wait(10)
    wait_for(lambda: e.hub.metric("arc_relay_listeners") == 0, "the direct agent to leave the relay")
    cm = json.loads(k.kubectl("get", "configmap", "clusterconnect-config", "-n", "azure-arc", "-o", "json").stdout)
    e.agent_hub, e.agent_rid = cm["data"]["hub"], cm["data"]["resourceId"]
    # A TTL far longer than the test: only the role-assignment version can
    # make the agent ask again.
    e.rbac_agent = Agent(e, "rbac-cache", "--authz-cache-ttl", "3600")
    wait_for(lambda: e.hub.metric("arc_relay_listeners") >= 2, "the agent's channels", on_fail=e.rbac_agent.text)
    e.admin.run("connectedk8s", "enable-features", "-n", e.name, "-g", e.rg, "--features", "azure-rbac",
                "--kube-config", k.kubeconfig)
    wait_for(lambda: e.rbac_agent.events("reg.feature") and any(
        ev.get("azure-rbac") == "on" for ev in e.rbac_agent.events("reg.feature")), "azure-rbac on",
        on_fail=e.rbac_agent.text)
    e.grant(e.ids["alice"])  # Cluster User: may fetch the relay credential
    e.alice = e.az()
    e.alice.login_msi(e.ids["alice"])
    yield e
    for s in reversed(e.stops):
        try:
            s()
        except Exception:
            pass
    e.stop()
    shutil.rmtree(d, ignore_errors=True)


def metric(agent, name):
    m = re.search(r"^%s (\d+)$" % name, agent.get("/metrics"), re.M)
    return int(m.group(1))


def kubectl(env, kc, *args):
    return subprocess.run([env.kube.kubectl_path, "--kubeconfig", kc, "--request-timeout=20s", *args],
                          capture_output=True, text=True, timeout=60)


def test_decisions_are_cached_and_dropped_when_role_assignments_change(env):
    a = env.rbac_agent
    kc = os.path.join(env.dir, "alice", "config")
    os.makedirs(os.path.dirname(kc))
    p = Proxy(env.alice, kc, free_port()).wait_ready()
    try:
        # No Arc Kubernetes role yet: denied by the hub.
        r = kubectl(env, kc, "get", "pods", "-n", "default")
        assert r.returncode != 0 and "Forbidden" in r.stderr, r.stderr
        checks = metric(a, "agent_authz_checks_total")
        assert checks >= 1
        # Asked again: the cached deny answers, the hub is not asked.
        hits = metric(a, "agent_authz_cache_hits_total")
        r = kubectl(env, kc, "get", "pods", "-n", "default")
        assert r.returncode != 0 and "Forbidden" in r.stderr
        assert metric(a, "agent_authz_checks_total") == checks
        assert metric(a, "agent_authz_cache_hits_total") > hits
        # A grant changes the role-assignment version: the next heartbeat
        # drops the cached deny although its TTL is an hour.
        seen = len(a.events("reg.role_assignments_changed"))
        env.grant(env.ids["alice"], role=VIEWER, scope=env.cid)
        wait_for(lambda: len(a.events("reg.role_assignments_changed")) > seen, "the new role-assignment version",
                 on_fail=a.text)
        r = kubectl(env, kc, "get", "pods", "-n", "default")
        assert r.returncode == 0 and "web" in r.stdout, r.stderr + a.text()[-3000:]
        assert metric(a, "agent_authz_checks_total") > checks
        # Many checks and heartbeats, few connections and signatures: curl
        # kept the connection to the hub, the JWT lived out its lifetime.
        for _ in range(5):
            assert kubectl(env, kc, "get", "pods", "-n", "default").returncode == 0
        requests = metric(a, "agent_http_requests_total")
        assert requests >= 8
        assert metric(a, "agent_http_connects_total") <= 3, a.get("/metrics")
        assert metric(a, "agent_jwt_signed_total") <= 2, a.get("/metrics")
    finally:
        p.stop()
