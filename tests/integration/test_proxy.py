"""`az connectedk8s proxy` end to end: the real az with the extension
installed from the wheel, arc-hub (control plane and relay), the agent,
a real kube-apiserver and real kubectl. Both auth modes, the local port's
client-certificate check, Ctrl+C, a port in use, no permission, and
credentials refreshed under a long watch."""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from arcenv import ArcEnv, Proxy
from kube import free_port

CRED_TTL = 20  # short relay credentials: the proxy refreshes them every ~10 s


@pytest.fixture(scope="module")
def env():
    d = tempfile.mkdtemp(prefix="ck-proxy-")
    e = ArcEnv(d, cred_ttl=CRED_TTL).start()
    k = e.kube
    k.kubectl("run", "web", "--image=nginx", "-n", "default")
    # A service account for Token mode, allowed to read pods.
    k.kubectl("create", "serviceaccount", "ci", "-n", "default")
    k.kubectl("create", "clusterrolebinding", "ci-reads", "--clusterrole=pod-reader", "--serviceaccount=default:ci")
    e.sa_token = k.kubectl("create", "token", "ci", "-n", "default", "--duration=1h").stdout.strip()
    # A member of the tenant is bound by UPN, as Microsoft's docs bind one
    # (the agent impersonates members by upn; ident.h).
    k.kubectl("create", "clusterrolebinding", "alice-reads", "--clusterrole=pod-reader", "--user=alice@example.test")
    e.grant(e.ids["alice"])
    e.alice = e.az()
    e.alice.login_msi(e.ids["alice"])
    yield e
    e.stop()
    shutil.rmtree(d, ignore_errors=True)


def kubectl(env, kubeconfig, *args, timeout=60):
    return subprocess.run([env.kube.kubectl_path, "--kubeconfig", kubeconfig, "--request-timeout=20s", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_proxy_entra_mode_get_pods(env):
    kc = os.path.join(env.dir, "alice", "config")  # directory does not exist yet
    os.makedirs(os.path.dirname(kc), mode=0o700)
    with open(kc, "w") as f:  # another cluster in the file must survive
        f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster: {server: 'https://other:6443'}\n"
                "users:\n- name: other\n  user: {token: keep-me}\ncontexts:\n- name: other\n"
                "  context: {cluster: other, user: other}\ncurrent-context: other\n")
    port = free_port()
    p = Proxy(env.alice, kc, port).wait_ready()
    try:
        out = p.text()
        assert 'Merged "c1" as current context in %s' % kc in out
        assert "Press Ctrl+C to close proxy." in out
        assert os.stat(kc).st_mode & 0o777 == 0o600
        r = kubectl(env, kc, "get", "pods", "-A")
        assert r.returncode == 0, r.stderr + p.text() + open(env.agent_log).read()[-2000:]
        assert "web" in r.stdout
        # The agent saw alice, impersonated by her UPN.
        assert '"user":"alice@example.test","kind":"user","oid":"%s"' % env.ids["alice"] in open(env.agent_log).read()
        cfg = kubectl(env, kc, "config", "view", "-o", "json")
        doc = json.loads(cfg.stdout)
        assert doc["current-context"] == "c1"
        assert {c["name"] for c in doc["clusters"]} == {"other", "c1"}
        assert any(u["name"] == "other" and u["user"].get("token") for u in doc["users"])
        # Writes need more than pod-reader: the API server's 403, through the proxy.
        r = kubectl(env, kc, "delete", "pod", "web")
        assert r.returncode != 0 and "Forbidden" in r.stderr
    finally:
        assert p.stop() == 0, p.text()
    assert "Proxy closed." in p.text()
    # Ctrl+C left nothing listening.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_local_port_needs_the_session_client_certificate(env):
    kc = os.path.join(env.dir, "mtls.kubeconfig")
    port = free_port()
    p = Proxy(env.alice, kc, port).wait_ready()
    try:
        # A process without the session's client certificate: TLS refuses it.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                with ctx.wrap_socket(s) as t:
                    t.sendall(b"GET /api HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert t.recv(100) == b""  # TLS 1.3 reports the missing certificate on first read
                    raise ConnectionResetError("closed without an answer")
        # kubectl with a kubeconfig holding only the CA and a token: refused too.
        doc = json.loads(kubectl(env, kc, "config", "view", "--raw", "-o", "json").stdout)
        ca = next(c for c in doc["clusters"] if c["name"] == "c1")["cluster"]["certificate-authority-data"]
        bare = os.path.join(env.dir, "bare.kubeconfig")
        with open(bare, "w") as f:
            f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:%d', "
                    "certificate-authority-data: %s}\nusers:\n- name: u\n  user: {token: anything}\ncontexts:\n"
                    "- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n" % (port, ca))
        r = kubectl(env, bare, "get", "pods")
        assert r.returncode != 0
        assert "certificate" in r.stderr.lower() or "tls" in r.stderr.lower() or "eof" in r.stderr.lower(), r.stderr
        # The real kubeconfig still works.
        assert kubectl(env, kc, "get", "pods").returncode == 0
    finally:
        assert p.stop() == 0


def test_port_in_use_gives_the_coded_error(env):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        kc = os.path.join(env.dir, "busy.kubeconfig")
        p = Proxy(env.alice, kc, port)
        rc = p.proc.wait(60)
        out = p.text()
        assert rc != 0
        assert "AZK8S0801" in out and "port %d is already in use" % port in out
        assert "held by pid %d" % os.getpid() in out
    finally:
        busy.close()


def test_token_mode_with_a_service_account(env):
    kc = os.path.join(env.dir, "sa.kubeconfig")
    # No sender pool here: every kubectl connection dials the relay itself.
    p = Proxy(env.alice, kc, free_port(), "--token", env.sa_token, "--pool-size", "0").wait_ready()
    try:
        r = kubectl(env, kc, "get", "pods", "-A")
        assert r.returncode == 0 and "web" in r.stdout, r.stderr
        # The token never lands in the kubeconfig or the output.
        assert env.sa_token not in open(kc).read() and env.sa_token not in p.text()
    finally:
        assert p.stop() == 0


def test_user_without_the_role_is_refused(env):
    bob = env.az()
    try:
        # Reader at the group lets bob sign in and see the cluster, nothing more.
        env.grant(env.ids["bob"], role="acdd72a7-3385-48ef-bd42-f606fba81ae7",
                  scope="/subscriptions/%s/resourceGroups/rg1" % env.ids["sub"])
        bob.login_msi(env.ids["bob"])
        kc = os.path.join(env.dir, "bob.kubeconfig")
        p = Proxy(bob, kc, free_port())
        rc = p.proc.wait(60)
        assert rc != 0
        assert "AuthorizationFailed" in p.text() and "listClusterUserCredential" in p.text()
        assert not os.path.exists(kc)  # nothing written for a refused user
        # Show works for bob (reader), with the connectivity the agent gives.
        shown = bob.json("connectedk8s", "show", "-n", "c1", "-g", "rg1")
        assert shown["connectivityStatus"] == "Connected" and shown["resourceGroup"] == "rg1"
        assert "properties" not in shown  # flattened like Microsoft's
    finally:
        bob.close()


def test_credentials_refresh_under_a_long_watch(env):
    kc = os.path.join(env.dir, "watch.kubeconfig")
    p = Proxy(env.alice, kc, free_port(), verbose=True).wait_ready()
    watch = subprocess.Popen([env.kube.kubectl_path, "--kubeconfig", kc, "get", "pods", "-w", "-n", "default",
                              "--request-timeout=0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    import threading
    threading.Thread(target=lambda: [seen.append(line) for line in watch.stdout], daemon=True).start()
    try:
        # Past the first credential's expiry (CRED_TTL) plus a refresh or two.
        time.sleep(CRED_TTL + 6)
        assert watch.poll() is None, watch.stderr.read()
        env.kube.kubectl("run", "late", "--image=nginx", "-n", "default")
        deadline = time.time() + 20
        while "late" not in "".join(seen) and time.time() < deadline:
            time.sleep(0.2)
        assert "late" in "".join(seen), "".join(seen)
        assert "web" in "".join(seen)
        # New connections use the refreshed credential (the first one has expired by now).
        r = kubectl(env, kc, "get", "pods", "-n", "default")
        assert r.returncode == 0 and "late" in r.stdout, r.stderr + p.text()
        assert "new relay credential" in p.text(), p.text()
        # --verbose shows ARM traffic, but never the relay token.
        assert "Response content" in p.text() and "SharedAccessSignature" not in p.text()
    finally:
        watch.kill()
        assert p.stop() == 0


def test_failed_refresh_is_reported_and_the_current_credential_keeps_serving(env):
    """Carol's role is revoked while her proxy runs: the next refresh is
    refused (reported with its code, retried), and kubectl keeps working
    on the credential she already holds until it expires."""
    k = env.kube
    k.kubectl("create", "clusterrolebinding", "carol-reads", "--clusterrole=pod-reader", "--user=carol@example.test")
    ra = env.grant(env.ids["carol"])
    carol = env.az()
    carol.login_msi(env.ids["carol"])
    kc = os.path.join(env.dir, "carol.kubeconfig")
    p = Proxy(carol, kc, free_port()).wait_ready()
    try:
        granted_at = time.time()
        env.admin.rest("delete", ra, api="2022-04-01")
        deadline = time.time() + CRED_TTL
        while "AZK8S0833: credential refresh failed" not in p.text():
            assert time.time() < deadline, p.text()
            time.sleep(0.2)
        assert "AuthorizationFailed" in p.text()
        assert time.time() - granted_at < CRED_TTL - 2, "too slow to show serving on the old credential"
        r = kubectl(env, kc, "get", "pods", "-n", "default")
        assert r.returncode == 0 and "web" in r.stdout, r.stderr
        assert p.proc.poll() is None  # still serving
    finally:
        assert p.stop() == 0


def test_upgrade_passes_through_and_authorization_is_replaced(env, tmp_path):
    """A 101 through `az connectedk8s proxy` becomes a byte pipe both ways.
    The far end is a fixture listener (it stands in for an agent in front
    of a kubelet, which does not exist here): it registers like an agent
    (its own key, a signed heartbeat for a Listen token), then records the
    request it gets and answers 101 and an upper-casing echo."""
    import base64
    import threading
    import urllib.parse
    import urllib.request

    from issuer import TestIssuer
    from wsclient import connect, read_accept

    hub = env.hub
    base = "https://127.0.0.1:%d" % hub.port
    cid = env.cid.rsplit("/", 1)[0] + "/pipe"
    ident = TestIssuer(str(tmp_path), issuer=cid, audience=base + "/agent", kid="agent")
    pub = subprocess.run(["openssl", "rsa", "-in", ident.key, "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    env.admin.rest("put", cid, {"location": "local",
                                "properties": {"agentPublicKeyCertificate": base64.b64encode(pub).decode()}})
    env.grant(env.ids["alice"], scope=cid)
    jwt = ident.mint(cid, ttl=120, extra={"sub": cid})
    req = urllib.request.Request(base + "/agent/v1/heartbeat", data=b"{}", method="POST",
                                 headers={"Authorization": "Bearer " + jwt, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=hub.ca)) as r:
        reg = json.loads(r.read())
    st, _, control = connect(hub.port, "/$hc/%s?sb-hc-action=listen" % reg["hybridConnectionName"],
                             {"ServiceBusAuthorization": reg["listenToken"]}, ca=hub.ca)
    assert st == 101
    seen = {}

    def fixture():
        acc = read_accept(control, timeout=30)
        u = urllib.parse.urlsplit(acc["address"])
        st2, _, ws = connect(hub.port, u.path + "?" + u.query, ca=hub.ca)
        assert st2 == 101
        data = b""
        while b"\r\n\r\n" not in data:
            op, fin, payload = ws.recv_frame(timeout=10)
            data += payload
        head, _, rest = data.partition(b"\r\n\r\n")
        seen["head"] = head.decode()
        ws.send_binary(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
        got = rest
        while len(got) < 11:
            op, fin, payload = ws.recv_frame(timeout=10)
            got += payload
        ws.send_binary(got.upper())
        seen["piped"] = got

    t = threading.Thread(target=fixture, daemon=True)
    t.start()
    kc = str(tmp_path / "pipe.kubeconfig")
    p = Proxy(env.alice, kc, free_port(), "--pool-size", "0", name="pipe").wait_ready()
    try:
        doc = json.loads(kubectl(env, kc, "config", "view", "--raw", "-o", "json").stdout)
        certs = {}
        for name, data in (("ca", doc["clusters"][-1]["cluster"]["certificate-authority-data"]),
                           ("crt", doc["users"][-1]["user"]["client-certificate-data"]),
                           ("key", doc["users"][-1]["user"]["client-key-data"])):
            certs[name] = str(tmp_path / (name + ".pem"))
            with open(certs[name], "wb") as f:
                f.write(base64.b64decode(data))
        ctx = ssl.create_default_context(cafile=certs["ca"])
        ctx.load_cert_chain(certs["crt"], certs["key"])
        with socket.create_connection(("127.0.0.1", p.port), timeout=15) as raw:
            # ::1 is served too (same port), with the same client-certificate rule.
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"GET /api/v1/namespaces/default/pods/web/exec HTTP/1.1\r\nHost: x\r\n"
                          b"Authorization: Bearer smuggled\r\nauthorization: Bearer smuggled-too\r\n"
                          b"Connection: Upgrade\r\nUpgrade: echo\r\n\r\nhello pipe!")
                answer = b""
                while b"HELLO PIPE!" not in answer:
                    chunk = s.recv(4096)
                    assert chunk, answer
                    answer += chunk
        assert answer.startswith(b"HTTP/1.1 101 ")
        t.join(10)
        head = seen["head"]
        auths = [l for l in head.split("\r\n") if l.lower().startswith("authorization:")]
        assert len(auths) == 1 and "smuggled" not in head, head
        token = auths[0].split("Bearer ", 1)[1]
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))
        assert claims["oid"] == env.ids["alice"] and claims["aud"] == "6256c85f-0aad-4d50-b960-e6e9b21efe35"
        assert seen["piped"] == b"hello pipe!"
        if socket.has_ipv6:
            try:
                with socket.create_connection(("::1", p.port), timeout=5) as raw6:
                    with ctx.wrap_socket(raw6, server_hostname="127.0.0.1") as s6:
                        assert s6.version()  # the mutual-TLS handshake completed over ::1
            except OSError as e:
                if "Cannot assign" not in str(e) and "unreachable" not in str(e):
                    raise
    finally:
        control.sock.close()
        assert p.stop() == 0


def test_file_dash_prints_the_kubeconfig(env, tmp_path):
    """-f - prints the kubeconfig instead of touching any file."""
    home_kc = tmp_path / "untouched"
    p = Proxy(env.alice, str(home_kc), free_port(), "-f", "-", "--token", env.sa_token).wait_ready()
    try:
        text = p.text()
        assert "current-context: c1" in text and "client-key-data:" in text
        assert not home_kc.exists()  # $KUBECONFIG was not written
    finally:
        assert p.stop() == 0


def test_core_log_events_go_through_az_logging(env):
    """Inside az the core's log events go through az's logging (knack), not
    as JSON lines on stderr: a default run shows none of them, --debug shows
    them as az log lines. Both runs live past the first credential's expiry,
    so each refreshes it, which the core logs (proxy.refreshed)."""
    quiet = Proxy(env.alice, os.path.join(env.dir, "quiet.kubeconfig"), free_port()).wait_ready()
    loud = Proxy(env.alice, os.path.join(env.dir, "loud.kubeconfig"), free_port(), "--debug").wait_ready()
    try:
        deadline = time.time() + CRED_TTL + 20
        while "proxy.refreshed" not in loud.text():
            assert time.time() < deadline, loud.text()[-4000:]
            time.sleep(0.2)
        # The quiet one started first: it is past its refresh too.
        while time.time() < quiet.started + CRED_TTL + 6:
            time.sleep(0.2)
        assert quiet.proc.poll() is None and loud.proc.poll() is None
    finally:
        assert quiet.stop() == 0
        assert loud.stop() == 0
    for p in (quiet, loud):
        json_lines = [l for l in p.text().splitlines() if l.lstrip().startswith('{"ts"')]
        assert not json_lines, json_lines[:3]
    assert "proxy.refreshed" not in quiet.text(), quiet.text()
    core = [l for l in loud.text().splitlines() if "cli.azext_connectedk8s.core" in l]
    assert any("proxy.refreshed detail=" in l for l in core), core
    assert all(l.split(":", 1)[0] in ("DEBUG", "INFO", "WARNING", "ERROR") for l in core), core
