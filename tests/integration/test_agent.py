"""clusterconnect-agent end to end: real kube-apiserver, arc-hub relay,
the agent, and real kubectl (through the relay_pipe fixture standing in
for the proxy until issue 5)."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import AGENT_RBAC, BUILD, ROOT_KEY, start_hub, stop_hub
from issuer import TestIssuer
from kube import KubeCluster
from relay_pipe import RelayPipe

HC = "cluster-a"
HC_JWKS = "cluster-jwks"  # an agent configured by file, with keys from a URL


class Env:
    pass


@pytest.fixture(scope="module")
def env():
    e = Env()
    e.dir = tempfile.mkdtemp(prefix="ck-agent-")
    e.kube = KubeCluster(os.path.join(e.dir, "kube")).start()
    k = e.kube
    k.kubectl("create", "serviceaccount", "clusterconnect-agent", "-n", "kube-system")
    rbac = os.path.join(e.dir, "rbac.yaml")
    with open(rbac, "w") as f:
        f.write(AGENT_RBAC)
    k.kubectl("apply", "-f", rbac)
    token = k.kubectl("create", "token", "clusterconnect-agent", "-n", "kube-system", "--duration=2h").stdout.strip()
    e.agent_token = os.path.join(e.dir, "agent.token")
    with open(e.agent_token, "w") as f:
        f.write(token)
    k.kubectl("create", "clusterrole", "pod-reader", "--verb=get,list,watch", "--resource=pods")
    k.kubectl("create", "clusterrolebinding", "alice-reads", "--clusterrole=pod-reader", "--user=oid-alice")
    k.kubectl("create", "clusterrolebinding", "team-reads", "--clusterrole=pod-reader", "--group=group-team")
    k.kubectl("run", "web", "--image=nginx", "-n", "default")
    e.issuer = TestIssuer(e.dir)
    # The overage case: a user in more groups than a token can carry.
    e.groups_file = os.path.join(e.dir, "groups.json")
    with open(e.groups_file, "w") as f:
        json.dump({"oid-many": ["group-%03d" % i for i in range(250)] + ["group-team"]}, f)
    os.makedirs(os.path.join(e.dir, "hub"))
    e.hub = start_hub(os.path.join(e.dir, "hub"), ["--ping-interval", "1"], config={
        "namespaceRules": [{"name": "root", "key": ROOT_KEY, "rights": ["Listen", "Send", "Manage"]}],
        "hybridConnections": [{"name": HC}, {"name": HC_JWKS}]})
    keyfile = os.path.join(e.dir, "relay.key")
    with open(keyfile, "w") as f:
        f.write(ROOT_KEY)
    e.agent_log = open(os.path.join(e.dir, "agent.log"), "w")
    import socket
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        e.health_port = sk.getsockname()[1]
    e.agent = subprocess.Popen([
        os.path.join(BUILD, "bin", "clusterconnect-agent"), "--relay", e.hub.url(), "--hybrid-connection", HC,
        "--key-name", "root", "--key-file", keyfile, "--relay-ca", e.hub.ca,
        "--apiserver", "https://127.0.0.1:%d" % k.port, "--apiserver-ca", os.path.join(k.dir, "ca.pem"),
        "--token-file", e.agent_token, "--issuer", e.issuer.issuer, "--audience", e.issuer.audience,
        "--jwks-file", e.issuer.jwks_file, "--health-listen", "127.0.0.1:%d" % e.health_port,
        "--groups-file", e.groups_file,
        "--ping-interval", "1"],
        stdout=e.agent_log, stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while e.hub.metric("arc_relay_listeners") < 2:
        assert time.time() < deadline, open(e.agent_log.name).read()
        assert e.agent.poll() is None, open(e.agent_log.name).read()
        time.sleep(0.1)
    e.pipe = RelayPipe(e.hub, HC, e.hub.token(HC))
    yield e
    e.pipe.close()
    e.agent.terminate()
    e.agent.wait(10)
    stop_hub(e.hub)
    e.kube.stop()
    shutil.rmtree(e.dir, ignore_errors=True)


def kubectl(env, token, *args):
    kc = os.path.join(env.dir, "user-%d.kubeconfig" % (hash(token) & 0xffff))
    with open(kc, "w") as f:
        f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:%d', "
                "certificate-authority: '%s'}\nusers:\n- name: u\n  user: {token: '%s'}\ncontexts:\n- name: c\n"
                "  context: {cluster: c, user: u}\ncurrent-context: c\n" % (env.pipe.port, env.hub.ca, token))
    return subprocess.run([env.kube.kubectl_path, "--kubeconfig", kc, "--request-timeout=20s", *args],
                          capture_output=True, text=True, timeout=60)


def agent_log(env):
    with open(env.agent_log.name) as f:
        return f.read()


def test_entra_user_with_binding_lists_pods(env):
    r = kubectl(env, env.issuer.mint("oid-alice"), "get", "pods", "-A")
    assert r.returncode == 0, r.stderr + agent_log(env)[-3000:]
    assert "web" in r.stdout
    log = agent_log(env)
    assert '"user":"oid-alice"' in log and '"verb":"GET"' in log  # audit line
    assert env.issuer.mint("oid-alice") not in log  # never the token


def test_group_membership_is_impersonated(env):
    r = kubectl(env, env.issuer.mint("oid-bob", groups=["group-team"]), "get", "pods", "-A")
    assert r.returncode == 0, r.stderr


def test_group_overage_is_resolved_from_the_configured_source(env):
    """More than 200 groups: the token carries an overage marker instead of
    groups; the agent asks --groups-file and impersonates all 251."""
    overage = {"_claim_names": {"groups": "src1"},
               "_claim_sources": {"src1": {"endpoint": "https://graph.example/getMemberObjects"}}}
    r = kubectl(env, env.issuer.mint("oid-many", extra=overage), "get", "pods", "-A")
    assert r.returncode == 0, r.stderr  # allowed only through the group-team binding
    r = kubectl(env, env.issuer.mint("oid-unknown", extra=overage), "get", "pods", "-A")
    assert r.returncode != 0 and 'User "oid-unknown" cannot list' in r.stderr
    assert "no entry in the groups file" in agent_log(env)


def test_unbound_user_gets_apiservers_403(env):
    r = kubectl(env, env.issuer.mint("oid-mallory"), "get", "pods", "-A")
    assert r.returncode != 0
    assert 'User "oid-mallory" cannot list resource "pods"' in r.stderr


@pytest.mark.parametrize("case", ["wrong-audience", "expired", "unknown-key", "other-signer", "alg-none"])
def test_bad_user_tokens_get_401(env, case):
    i = env.issuer
    tok = {
        "wrong-audience": lambda: i.mint("oid-alice", aud="api://someone-else"),
        "expired": lambda: i.mint("oid-alice", ttl=-600, nbf=int(time.time()) - 1200),
        "unknown-key": lambda: i.mint("oid-alice", kid="not-published"),
        "other-signer": lambda: i.mint("oid-alice", key=i.other_key),
        "alg-none": lambda: i.mint("oid-alice", alg="none"),
    }[case]()
    r = kubectl(env, tok, "get", "pods", "-A")
    assert r.returncode != 0
    assert "Unauthorized" in r.stderr or "must be logged in" in r.stderr, r.stderr


def test_second_authorization_header_is_dropped_when_impersonating(env):
    """A client adding its own second Authorization header must not change
    whose credential the API server sees: only the agent's goes upstream."""
    import socket
    import ssl
    k = env.kube
    k.kubectl("create", "serviceaccount", "sneaky", "-n", "default")
    sa = k.kubectl("create", "token", "sneaky", "-n", "default").stdout.strip()
    s = ssl.create_default_context(cafile=env.hub.ca).wrap_socket(
        socket.create_connection(("127.0.0.1", env.pipe.port), timeout=20), server_hostname="127.0.0.1")
    s.sendall(("GET /api/v1/pods HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nAuthorization: Bearer %s\r\n"
               "Connection: close\r\n\r\n" % (env.issuer.mint("oid-mallory"), sa)).encode())
    resp = b""
    while b"\r\n\r\n" not in resp:
        resp += s.recv(65536)
    head, body = resp.split(b"\r\n\r\n", 1)
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < length:
        body += s.recv(65536)
    s.close()
    resp = head + b"\r\n\r\n" + body
    assert resp.startswith(b"HTTP/1.1 403"), resp[:200]
    # The API server judged the agent impersonating oid-mallory, not the SA token.
    assert b'User \\"oid-mallory\\" cannot list' in resp or b'User "oid-mallory" cannot list' in resp, resp


def test_client_impersonation_is_refused(env):
    r = kubectl(env, env.issuer.mint("oid-alice"), "get", "pods", "-A", "--as=system:admin")
    assert r.returncode != 0
    assert "impersonation headers are not allowed" in r.stderr


def test_service_account_token_passes_through(env):
    k = env.kube
    k.kubectl("create", "serviceaccount", "ci-bot", "-n", "default")
    k.kubectl("create", "serviceaccount", "idle-bot", "-n", "default")
    k.kubectl("create", "clusterrolebinding", "ci-bot-reads", "--clusterrole=pod-reader",
              "--serviceaccount=default:ci-bot")
    ok = k.kubectl("create", "token", "ci-bot", "-n", "default").stdout.strip()
    no = k.kubectl("create", "token", "idle-bot", "-n", "default").stdout.strip()
    r = kubectl(env, ok, "get", "pods", "-A")
    assert r.returncode == 0 and "web" in r.stderr + r.stdout, r.stderr
    r = kubectl(env, no, "get", "pods", "-A")
    assert r.returncode != 0 and 'system:serviceaccount:default:idle-bot' in r.stderr


def test_no_token_gets_401_status(env):
    """Without a token the agent answers as the API server would: 401 with
    a Status body (checked over HTTPS directly, since kubectl with no
    credentials stops to prompt for a username)."""
    import json
    import ssl
    import urllib.error
    import urllib.request
    ctx = ssl.create_default_context(cafile=env.hub.ca)
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen("https://127.0.0.1:%d/api/v1/pods" % env.pipe.port, context=ctx, timeout=20)
    assert ei.value.code == 401
    body = json.loads(ei.value.read())
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized" and body["code"] == 401


def health(env, path):
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (env.health_port, path), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_health_ready_and_metrics(env):
    assert health(env, "/healthz") == (200, "ok\n")
    assert health(env, "/readyz") == (200, "ok\n")
    st, text = health(env, "/metrics")
    assert st == 200 and "agent_channels_up 2" in text
    counts = {l.split()[0]: l.split()[1] for l in text.splitlines() if l and not l.startswith("#")}
    assert int(counts["agent_requests_total"]) > 0


def test_idle_watch_survives_many_ping_intervals(env):
    """A watch stays open across many relay pings (the hub and agent ping
    every second here) and still delivers events."""
    kc_token = env.issuer.mint("oid-alice", ttl=3600)
    kubectl(env, kc_token, "get", "pods")  # writes the kubeconfig
    kc = os.path.join(env.dir, "user-%d.kubeconfig" % (hash(kc_token) & 0xffff))
    w = subprocess.Popen([env.kube.kubectl_path, "--kubeconfig", kc, "get", "pods", "-n", "default", "-w",
                          "-o", "name"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8)  # eight ping intervals of silence
        assert w.poll() is None, w.stderr.read()
        env.kube.kubectl("run", "late-pod", "--image=nginx", "-n", "default")
        time.sleep(5)
        assert w.poll() is None, "the watch ended: " + w.stderr.read()
    finally:
        w.terminate()
        out, err = w.communicate(timeout=5)
    assert "pod/late-pod" in out, out + err


def test_agent_reconnects_after_relay_restart(env):
    port = env.hub.port
    stop_hub(env.hub)
    deadline = time.time() + 10
    while health(env, "/readyz")[0] != 503:
        assert time.time() < deadline, "agent never noticed the relay was gone"
        time.sleep(0.2)
    env.hub = start_hub(env.hub.dir, ["--ping-interval", "1"], config={
        "namespaceRules": [{"name": "root", "key": ROOT_KEY, "rights": ["Listen", "Send", "Manage"]}],
        "hybridConnections": [{"name": HC}, {"name": HC_JWKS}]}, port=port)
    env.pipe.hub = env.hub
    deadline = time.time() + 40
    while health(env, "/readyz")[0] != 200:
        assert time.time() < deadline, agent_log(env)[-2000:]
        time.sleep(0.2)
    r = kubectl(env, env.issuer.mint("oid-alice"), "get", "pods", "-A")
    assert r.returncode == 0, r.stderr


# exec, attach, logs -f, cp and port-forward through the agent run against
# real pods in tests/integration/test_pods.py (a node, the agent as the pods
# `connect` deploys); the API server's audit log there shows the agent's
# credential impersonating the caller.


def test_listen_token_is_renewed_before_it_expires(env):
    """With a 12 s listen token the relay would close the channel with 1008
    at expiry; the agent renews it (renewToken) in time and stays up."""
    log = open(os.path.join(env.dir, "agent-renew.log"), "w")
    agent = subprocess.Popen([
        os.path.join(BUILD, "bin", "clusterconnect-agent"), "--relay", env.hub.url(), "--hybrid-connection", HC,
        "--key-name", "root", "--key-file", os.path.join(env.dir, "relay.key"), "--relay-ca", env.hub.ca,
        "--apiserver", "https://127.0.0.1:%d" % env.kube.port, "--apiserver-ca", os.path.join(env.kube.dir, "ca.pem"),
        "--token-file", env.agent_token, "--health-listen", "127.0.0.1:0", "--channels", "1", "--token-ttl", "12"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(16)
        text = open(log.name).read()
        assert agent.poll() is None, text
        assert text.count('"channel.up"') == 1, text  # never had to reconnect
        assert '"channel.renewed"' in text and '"channel.down"' not in text, text
    finally:
        agent.terminate()
        agent.wait(10)


class JwksServer:
    """An HTTPS endpoint serving the issuer's JWKS (as Entra's
    discovery/keys does), whose document the test can rotate."""

    def __init__(self, hub, doc):
        import http.server
        import ssl
        import threading
        self.doc, self.hits = doc, 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                body = json.dumps(outer.doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(os.path.join(hub.dir, "server.pem"), os.path.join(hub.dir, "server.key"))
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.url = "https://127.0.0.1:%d/discovery/keys" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()


def jwk(key_file, kid):
    from issuer import b64u
    mod = subprocess.run(["openssl", "rsa", "-in", key_file, "-noout", "-modulus"], check=True, capture_output=True,
                         text=True).stdout.strip().split("=", 1)[1]
    return {"kty": "RSA", "use": "sig", "kid": kid, "alg": "RS256", "n": b64u(bytes.fromhex(mod)),
            "e": b64u((65537).to_bytes(3, "big"))}


def test_config_file_and_keys_from_a_url_with_rotation(env):
    """The agent configured by --config (a flag still wins), trusting keys
    fetched from --jwks-url: a token signed with a key published after the
    agent started waits for a refetch instead of failing; a key nobody
    publishes gets 401."""
    iss = env.issuer
    server = JwksServer(env.hub, {"keys": [jwk(iss.key, "k1")]})
    cfg = os.path.join(env.dir, "agent-config.json")
    with open(cfg, "w") as f:
        json.dump({"relay": env.hub.url(), "hybrid-connection": HC_JWKS, "key-name": "root",
                   "key-file": os.path.join(env.dir, "relay.key"), "relay-ca": env.hub.ca,
                   "apiserver": "https://127.0.0.1:%d" % env.kube.port,
                   "apiserver-ca": os.path.join(env.kube.dir, "ca.pem"), "token-file": env.agent_token,
                   "issuer": iss.issuer, "audience": iss.audience, "jwks-url": server.url, "jwks-ca": env.hub.ca,
                   "channels": 3, "ping-interval": 1}, f)
    log = open(os.path.join(env.dir, "agent-config.log"), "w")
    agent = subprocess.Popen([os.path.join(BUILD, "bin", "clusterconnect-agent"), "--config", cfg,
                              "--channels", "1", "--health-listen", "127.0.0.1:0"],
                             stdout=log, stderr=subprocess.STDOUT)
    pipe = None
    try:
        deadline = time.time() + 10
        while '"channel.up"' not in open(log.name).read():
            assert time.time() < deadline and agent.poll() is None, open(log.name).read()
            time.sleep(0.1)
        assert open(log.name).read().count('"channel.up"') == 1  # --channels 1 beat the file's 3
        pipe = RelayPipe(env.hub, HC_JWKS, env.hub.token(HC_JWKS))

        def get_pods(token):
            kc = os.path.join(env.dir, "jwks-%d.kubeconfig" % (hash(token) & 0xffff))
            with open(kc, "w") as f:
                f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:%d',"
                        " certificate-authority: '%s'}\nusers:\n- name: u\n  user: {token: '%s'}\ncontexts:\n"
                        "- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n"
                        % (pipe.port, env.hub.ca, token))
            return subprocess.run([env.kube.kubectl_path, "--kubeconfig", kc, "get", "pods", "-A"],
                                  capture_output=True, text=True, timeout=60)

        r = get_pods(iss.mint("oid-alice", kid="k1"))
        assert r.returncode == 0 and "web" in r.stdout, r.stderr + open(log.name).read()
        hits = server.hits
        # Rotation: k2 is published after the agent fetched; its first token waits for the refetch.
        server.doc = {"keys": [jwk(iss.key, "k1"), jwk(iss.other_key, "k2")]}
        time.sleep(10.5)  # past the 10 s gap that rate-limits refetches
        r = get_pods(iss.mint("oid-alice", kid="k2", key=iss.other_key))
        assert r.returncode == 0 and "web" in r.stdout, r.stderr + open(log.name).read()
        assert server.hits == hits + 1
        # A key nobody publishes: one more fetch at most, then 401.
        time.sleep(10.5)
        r = get_pods(iss.mint("oid-alice", kid="k3", key=iss.other_key))
        assert r.returncode != 0 and "Unauthorized" in r.stderr
        assert '"jwks.fetched"' in open(log.name).read()
    finally:
        if pipe:
            pipe.close()
        agent.terminate()
        agent.wait(10)
        server.close()
