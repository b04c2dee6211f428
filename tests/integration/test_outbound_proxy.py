"""Every outbound connection through an HTTP proxy, end to end.

A real forward proxy (Debian's tinyproxy), with and without Basic
authentication, and a network namespace this module creates whose only
route is a veth pair to the host: inside it, the registered agent cannot
reach the hub at all unless it goes through the proxy listening on the
host's end of the pair, and the proxy's access log shows the CONNECTs.
With the proxy configured, the agent registers, listens and serves
kubectl; `az connectedk8s proxy` inside the namespace reaches ARM and the
relay through HTTPS_PROXY as az itself does. A skip-listed host is
dialled directly. Misbehaving proxies (a fixture: 407, 403, 502, hanging
up mid-handshake, answering slowly) give clear errors that name the
proxy without its password, and the agent retries with its backoff while
its loop keeps serving."""
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
from proxy_fixture import BadProxy, NetNS, Tinyproxy

PASSWORD = "pw-Zx81q-secret"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("tinyproxy"),
                                reason="needs root (network namespaces) and tinyproxy (scripts/install-deps)")


@pytest.fixture(scope="module")
def env():
    d = tempfile.mkdtemp(prefix="ck-oproxy-")
    e = ArcEnv(d).start()
    k = e.kube
    k.kubectl("run", "web", "--image=nginx", "-n", "default")
    k.kubectl("create", "clusterrolebinding", "alice-reads", "--clusterrole=pod-reader", "--user=alice@example.test")
    e.grant(e.ids["alice"])
    e.alice = e.az()
    e.alice.login_msi(e.ids["alice"])
    # The agent connect started runs directly; the tests run their own.
    e.agent.terminate()
    e.agent.wait(10)
    wait_for(lambda: e.hub.metric("arc_relay_listeners") == 0, "the direct agent to leave the relay")
    cm = json.loads(k.kubectl("get", "configmap", "clusterconnect-config", "-n", "azure-arc", "-o", "json").stdout)
    e.agent_hub, e.agent_rid = cm["data"]["hub"], cm["data"]["resourceId"]
    e.ns = NetNS(0)
    e.ns.bridge(k.port)  # the API server: reached directly, as inside a cluster
    e.stops = []
    yield e
    for s in reversed(e.stops):
        try:
            s()
        except Exception:
            pass
    e.ns.close()
    e.stop()
    shutil.rmtree(d, ignore_errors=True)


def listening(env, agent, n=2, timeout=60):
    wait_for(lambda: env.hub.metric("arc_relay_listeners") >= n, "the agent's channels on the relay",
             timeout=timeout, on_fail=agent.text)


def kubectl(env, kc, *args, ns=None):
    return subprocess.run((ns.prefix() if ns else []) + [env.kube.kubectl_path, "--kubeconfig", kc,
                                                        "--request-timeout=20s", *args],
                          capture_output=True, text=True, timeout=60)


def test_the_namespace_reaches_the_hub_only_through_the_proxy(env):
    """Without proxy settings the agent in the namespace cannot register:
    its only route is the veth pair, and the hub is not on it."""
    routes = env.ns.routes().strip().splitlines()
    assert len(routes) == 1 and routes[0].startswith("10.213.") and "default" not in routes[0], routes
    a = Agent(env, "no-proxy", ns=env.ns)
    try:
        wait_for(lambda: a.events("reg.failed"), "a failed heartbeat", on_fail=a.text)
        reason = a.events("reg.failed")[0]["reason"]
        assert "127.0.0.1" in reason and str(env.hub.port) in reason, reason
        assert not a.events("reg.feature")
        assert env.hub.metric("arc_relay_listeners") == 0
    finally:
        a.stop()


@pytest.fixture(scope="module")
def proxied(env):
    """tinyproxy on the host's end of the veth pair; the agent inside the
    namespace with --proxy-https pointing at it."""
    tp = Tinyproxy(env.dir, host=env.ns.host_ip)
    env.stops.append(tp.stop)
    a = Agent(env, "via-tinyproxy", "--proxy-https", tp.url(), ns=env.ns)
    listening(env, a)
    yield tp, a
    a.stop()  # (the basic-auth test already stopped it, and waited)


def test_agent_registers_listens_and_serves_kubectl_through_tinyproxy(env, proxied):
    tp, a = proxied
    hub = "127.0.0.1:%d" % env.hub.port
    # Heartbeats and both channels went out as CONNECTs to the hub.
    assert tp.connects().count(hub) >= 3, tp.log()
    assert a.events("agent.proxy")[0]["https"] == tp.url()
    kc = os.path.join(env.dir, "alice-direct", "config")
    os.makedirs(os.path.dirname(kc))
    before = tp.connects().count(hub)
    p = Proxy(env.alice, kc, free_port()).wait_ready()
    try:
        r = kubectl(env, kc, "get", "pods", "-A")
        assert r.returncode == 0, r.stderr + p.text() + a.text()[-3000:]
        assert "web" in r.stdout
    finally:
        p.stop()
    # The agent in the namespace served it: its rendezvous went through the proxy too.
    assert any(ev.get("user") == "alice@example.test" for ev in a.events("request")), a.text()[-3000:]
    assert tp.connects().count(hub) > before
    # The API server was never asked of the proxy.
    assert "127.0.0.1:%d" % env.kube.port not in tp.connects()
    m = a.get("/metrics")
    assert re.search(r"^agent_tunnels_total [1-9]", m, re.M), m


def test_laptop_proxy_reaches_arm_and_the_relay_through_https_proxy(env, proxied):
    """`az connectedk8s proxy` inside the namespace: with HTTPS_PROXY (as az
    honours it) ARM calls and the relay senders tunnel through a second
    tinyproxy; TLS to the relay stays end to end."""
    laptop = Tinyproxy(env.dir, host=env.ns.host_ip)
    env.stops.append(laptop.stop)
    kc = os.path.join(env.dir, "alice-ns", "config")
    os.makedirs(os.path.dirname(kc))
    port = free_port()
    environ = dict(env.alice.env, KUBECONFIG=kc, HTTPS_PROXY=laptop.url())
    out_path = kc + ".proxy.out"
    with open(out_path, "w") as out:
        p = subprocess.Popen(env.ns.prefix() + [env.alice.az, "connectedk8s", "proxy", "-n", env.name, "-g", env.rg,
                                                "--port", str(port)], env=environ, stdout=out,
                             stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Proxy is listening on port %d" % port in open(out_path).read(), "the proxy",
                 on_fail=lambda: open(out_path).read() + laptop.log())
        before = laptop.connects().count("127.0.0.1:%d" % env.hub.port)
        r = kubectl(env, kc, "get", "pods", "-A", ns=env.ns)
        assert r.returncode == 0, r.stderr + open(out_path).read()
        assert "web" in r.stdout
        # The sender for this kubectl connection was a CONNECT of its own.
        assert laptop.connects().count("127.0.0.1:%d" % env.hub.port) > before, laptop.log()
    finally:
        p.terminate()
        p.wait(20)


def test_proxy_with_basic_auth_from_the_environment(env, proxied):
    """HTTPS_PROXY with user:password, in the agent's environment: works,
    and the password appears in no log line, error or metric."""
    tp_open, proxied_agent = proxied
    proxied_agent.stop()  # one agent on the relay at a time
    wait_for(lambda: env.hub.metric("arc_relay_listeners") == 0, "the proxied agent to leave")
    tp = Tinyproxy(env.dir, host=env.ns.host_ip, auth=("carol", PASSWORD))
    env.stops.append(tp.stop)
    a = Agent(env, "basic-auth", ns=env.ns, environ={"HTTPS_PROXY": tp.url(("carol", PASSWORD))})
    try:
        listening(env, a)
        assert tp.connects().count("127.0.0.1:%d" % env.hub.port) >= 3
        assert PASSWORD not in a.text()
        assert PASSWORD not in a.get("/metrics")
    finally:
        a.stop()
    wait_for(lambda: env.hub.metric("arc_relay_listeners") == 0, "the agent to leave")
    # The wrong password: a refusal that names the proxy (tinyproxy answers
    # 401 to wrong credentials, 407 to none), and retries.
    bad = Agent(env, "basic-auth-wrong", ns=env.ns,
                environ={"https_proxy": tp.url(("carol", "not-" + PASSWORD))})
    try:
        wait_for(lambda: len(bad.events("reg.failed")) >= 2, "two failed heartbeats", on_fail=bad.text)
        reason = bad.events("reg.failed")[0]["reason"]
        assert ("401" in reason or "407" in reason) and tp.url() in reason, reason
        assert "check the proxy user and password" in reason, reason
        assert PASSWORD not in bad.text() and "carol" not in bad.text()
    finally:
        bad.stop()


def test_skip_listed_hub_is_dialled_directly(env):
    """--proxy-skip-range names the hub: the proxy (a fixture that would
    refuse everything) sees nothing, and the agent registers directly."""
    px = BadProxy("403")
    try:
        a = Agent(env, "skip", "--proxy-https", px.url(), "--proxy-skip-range", "10.0.0.0/8,127.0.0.1,.internal")
        listening(env, a)
        assert px.requests == []
        a.stop()
        wait_for(lambda: env.hub.metric("arc_relay_listeners") == 0, "the agent to leave")
        # The same through NO_PROXY (lower case), with HTTPS_PROXY from the environment.
        a = Agent(env, "skip-env", environ={"HTTPS_PROXY": px.url(), "no_proxy": "localhost,127.0.0.0/8"})
        listening(env, a)
        assert px.requests == []
        a.stop()
        wait_for(lambda: env.hub.metric("arc_relay_listeners") == 0, "the agent to leave")
    finally:
        px.stop()


@pytest.mark.parametrize("mode", ["407", "403", "502", "hangup"])
def test_misbehaving_proxy_gives_clear_errors_and_retries(env, mode):
    px = BadProxy(mode)
    a = Agent(env, "bad-" + mode, "--proxy-https", px.url(("bob", PASSWORD)))
    try:
        wait_for(lambda: len(a.events("reg.failed")) >= 2, "two failed heartbeats", on_fail=a.text)
        fails = a.events("reg.failed")
        shown = "http://127.0.0.1:%d" % px.port
        for f in fails:
            assert shown in f["reason"], f
            if mode != "hangup":
                assert mode in f["reason"], f
        # The existing backoff: 2 s, then 4 s.
        assert [f["retry_in_s"] for f in fails[:2]] == ["2", "4"], fails
        assert PASSWORD not in a.text() and "bob" not in a.text()
        assert px.requests and all(r.startswith("CONNECT 127.0.0.1:%d " % env.hub.port) for r in px.requests)
        # The loop is not held by the failing proxy.
        assert a.get("/healthz") == "ok\n"
        assert PASSWORD not in a.get("/metrics")
        assert env.hub.metric("arc_relay_listeners") == 0
    finally:
        a.stop()
        px.stop()


def test_slow_proxy_is_waited_for_without_blocking(env):
    px = BadProxy("slow", delay=3)
    a = Agent(env, "slow", "--proxy-https", px.url())
    try:
        wait_for(lambda: px.requests, "the first CONNECT", on_fail=a.text)
        # While the proxy dawdles the agent answers its health checks.
        wait_for(lambda: a.health_port(), "the health listener")
        assert a.get("/healthz") == "ok\n"
        listening(env, a)
        assert len(px.requests) >= 3  # heartbeat and two channels, each tunnelled
        assert not a.events("reg.failed")
    finally:
        a.stop()
        px.stop()
        wait_for(lambda: env.hub.metric("arc_relay_listeners") == 0, "the agent to leave")


def test_connect_deploys_proxy_settings_the_agent_uses(env):
    """`az connectedk8s connect --proxy-https ... --proxy-skip-range ...
    --proxy-cert ...` writes them into what it deploys; an agent run from
    that Deployment's environment and flags (as the kubelet would resolve
    them; there is no kubelet here), inside the namespace, registers
    through the authenticating proxy and connect completes. Last in this
    module: it re-applies the shared azure-arc objects for a second cluster."""
    tp = Tinyproxy(env.dir, host=env.ns.host_ip, auth=("dave", PASSWORD))
    env.stops.append(tp.stop)
    k = env.kube
    out_path = os.path.join(env.dir, "connect-c2.out")
    with open(out_path, "w") as out:
        p = subprocess.Popen([env.admin.az, "connectedk8s", "connect", "-n", "c2", "-g", env.rg, "--kube-config",
                              k.kubeconfig, "--timeout", "120", "-o", "none",
                              "--proxy-https", tp.url(("dave", PASSWORD)), "--proxy-skip-range", "10.99.0.0/16,.corp",
                              "--proxy-cert", env.hub.ca],
                             env=env.admin.env, stdout=out, stderr=subprocess.STDOUT)
    try:
        def deployed():
            d = k.kubectl("get", "deployment", "clusterconnect-agent", "-n", "azure-arc", "-o", "json", check=False)
            if d.returncode != 0:
                return None
            doc = json.loads(d.stdout)
            c = doc["spec"]["template"]["spec"]["containers"][0]
            return doc if any(e["name"] == "HTTPS_PROXY" for e in c.get("env", [])) else None
        wait_for(deployed, "connect to apply the Deployment with proxy settings",
                 on_fail=lambda: open(out_path).read())
        c = deployed()["spec"]["template"]["spec"]["containers"][0]
        secret = json.loads(k.kubectl("get", "secret", "clusterconnect-proxy", "-n", "azure-arc", "-o",
                                      "json").stdout)["data"]
        import base64
        environ = {}
        for e in c["env"]:
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["name"] == "clusterconnect-proxy":
                environ[e["name"]] = base64.b64decode(secret[ref["key"]]).decode()
        assert environ["HTTPS_PROXY"] == tp.url(("dave", PASSWORD))
        assert "10.99.0.0/16" in environ["NO_PROXY"] and "kubernetes.default.svc" in environ["NO_PROXY"]
        cm = json.loads(k.kubectl("get", "configmap", "clusterconnect-config", "-n", "azure-arc", "-o", "json").stdout)
        assert PASSWORD not in json.dumps(cm) and PASSWORD not in json.dumps(c)
        cert = [a for a in c["args"] if a.startswith("--proxy-cert=")][0].split("=", 1)[1]
        local_cert = os.path.join(env.dir, "c2-proxy-ca.pem")
        with open(local_cert, "wb") as f:
            f.write(base64.b64decode(secret[os.path.basename(cert)]))
        ident = json.loads(k.kubectl("get", "secret", "clusterconnect-identity", "-n", "azure-arc", "-o",
                                     "json").stdout)["data"]
        key = os.path.join(env.dir, "c2-identity.key")
        with open(key, "wb") as f:
            f.write(base64.b64decode(ident["key.pem"]))
        os.chmod(key, 0o600)
        before = tp.connects().count("127.0.0.1:%d" % env.hub.port)
        a = Agent(env, "c2", "--resource-id", cm["data"]["resourceId"], "--identity-key", key,
                  "--proxy-cert", local_cert, ns=env.ns, environ=environ)
        assert p.wait(150) == 0, open(out_path).read() + a.text()
        assert tp.connects().count("127.0.0.1:%d" % env.hub.port) > before
        assert PASSWORD not in a.text()
        a.stop()
    finally:
        if p.poll() is None:
            p.kill()
