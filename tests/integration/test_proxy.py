"""`az connectedk8s proxy` end to end: the real az with the extension
installed from the wheel, arc-hub (control plane and relay), the agent,
a real kube-apiserver and real kubectl. Both auth modes, the local port's
client-certificate check, Ctrl+C, a port in use, no permission, and
credentials refreshed under a long watch."""
import glob
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid

import pytest

from azcli import Az, dev_directory
from conftest import BUILD, ROOT, ROOT_KEY, start_hub, stop_hub
from kube import KubeCluster, free_port

CUR = "00493d72-78f6-4148-b6c5-d3ce8e4799dd"
AGENT_AUDIENCE = "6256c85f-0aad-4d50-b960-e6e9b21efe35"
CRED_TTL = 20  # short relay credentials: the proxy refreshes them every ~10 s
AGENT_RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: clusterconnect-agent-impersonator}
rules:
- apiGroups: [""]
  resources: [users, groups, serviceaccounts]
  verbs: [impersonate]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: clusterconnect-agent-impersonator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: clusterconnect-agent-impersonator}
subjects:
- {kind: ServiceAccount, name: clusterconnect-agent, namespace: kube-system}
"""


class Env:
    pass


def install_extension(az, ext_dir):
    wheels = glob.glob(os.path.join(ROOT, "dist", "connectedk8s-*.whl"))
    assert wheels, "scripts/build makes the wheel"
    az.run("extension", "add", "--source", max(wheels, key=os.path.getmtime), "--yes",
           env={"AZURE_EXTENSION_DIR": ext_dir})


@pytest.fixture(scope="module")
def env():
    e = Env()
    e.dir = tempfile.mkdtemp(prefix="ck-proxy-")
    e.kube = k = KubeCluster(os.path.join(e.dir, "kube")).start()
    k.kubectl("create", "serviceaccount", "clusterconnect-agent", "-n", "kube-system")
    with open(os.path.join(e.dir, "rbac.yaml"), "w") as f:
        f.write(AGENT_RBAC)
    k.kubectl("apply", "-f", os.path.join(e.dir, "rbac.yaml"))
    e.agent_token = os.path.join(e.dir, "agent.token")
    with open(e.agent_token, "w") as f:
        f.write(k.kubectl("create", "token", "clusterconnect-agent", "-n", "kube-system",
                          "--duration=2h").stdout.strip())
    k.kubectl("create", "clusterrole", "pod-reader", "--verb=get,list,watch", "--resource=pods")
    k.kubectl("run", "web", "--image=nginx", "-n", "default")
    # A service account for Token mode, allowed to read pods.
    k.kubectl("create", "serviceaccount", "ci", "-n", "default")
    k.kubectl("create", "clusterrolebinding", "ci-reads", "--clusterrole=pod-reader", "--serviceaccount=default:ci")
    e.sa_token = k.kubectl("create", "token", "ci", "-n", "default", "--duration=1h").stdout.strip()

    hubdir = os.path.join(e.dir, "hub")
    os.makedirs(hubdir)
    e.ids, directory = dev_directory(n_groups_carol=3)
    with open(os.path.join(hubdir, "directory.json"), "w") as f:
        json.dump(directory, f)
    e.hub = start_hub(hubdir, ["--ping-interval", "1", "--credential-ttl", str(CRED_TTL)], config={
        "namespaceRules": [{"name": "root", "key": ROOT_KEY, "rights": ["Listen", "Send", "Manage"]}],
        "hybridConnections": []})
    k.kubectl("create", "clusterrolebinding", "alice-reads", "--clusterrole=pod-reader", "--user=" + e.ids["alice"])

    e.ext_dir = os.path.join(e.dir, "ext")
    e.admin = Az(e.hub)
    e.admin.env["AZURE_EXTENSION_DIR"] = e.ext_dir
    install_extension(e.admin, e.ext_dir)
    e.admin.login_sp(e.ids["admin_app"], directory["principals"][0]["secret"], e.ids["tenant"])
    e.cid = "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Kubernetes/connectedClusters/c1" % e.ids["sub"]
    e.admin.rest("put", e.cid, {"location": "local", "properties": {"agentPublicKeyCertificate": "AA"}})
    e.admin.rest("put", e.cid + "/providers/Microsoft.Authorization/roleAssignments/%s" % uuid.uuid4(),
                 {"properties": {"roleDefinitionId": CUR, "principalId": e.ids["alice"]}}, api="2022-04-01")
    hc = json.loads(e.admin.rest("post", e.cid + "/listClusterUserCredential", {}).stdout)[
        "hybridConnectionConfig"]["hybridConnectionName"]

    # The agent listens on the cluster's hybrid connection. Until agent
    # registration lands it uses the hub's namespace Listen key.
    keyfile = os.path.join(e.dir, "relay.key")
    with open(keyfile, "w") as f:
        f.write(ROOT_KEY)
    with urlopen_json(e.hub, "/adfs/.well-known/openid-configuration") as oidc:
        issuer = oidc["issuer"]
    e.agent_log = open(os.path.join(e.dir, "agent.log"), "w")
    e.agent = subprocess.Popen([
        os.path.join(BUILD, "bin", "clusterconnect-agent"), "--relay", e.hub.url(), "--hybrid-connection", hc,
        "--key-name", "root", "--key-file", keyfile, "--relay-ca", e.hub.ca,
        "--apiserver", "https://127.0.0.1:%d" % k.port, "--apiserver-ca", os.path.join(k.dir, "ca.pem"),
        "--token-file", e.agent_token, "--issuer", issuer, "--audience", AGENT_AUDIENCE,
        "--jwks-file", os.path.join(hubdir, "jwks.json"), "--ping-interval", "1"],
        stdout=e.agent_log, stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while e.hub.metric("arc_relay_listeners") < 2:
        assert time.time() < deadline and e.agent.poll() is None, open(e.agent_log.name).read()
        time.sleep(0.1)

    e.alice = Az(e.hub)
    e.alice.env["AZURE_EXTENSION_DIR"] = e.ext_dir
    e.alice.login_msi(e.ids["alice"])
    yield e
    e.agent.terminate()
    e.agent.wait(10)
    stop_hub(e.hub)
    e.kube.stop()
    e.admin.close()
    e.alice.close()
    shutil.rmtree(e.dir, ignore_errors=True)


class urlopen_json:
    def __init__(self, hub, path):
        import urllib.request
        ctx = ssl.create_default_context(cafile=hub.ca)
        self.r = urllib.request.urlopen("https://127.0.0.1:%d%s" % (hub.port, path), context=ctx, timeout=5)

    def __enter__(self):
        return json.loads(self.r.read())

    def __exit__(self, *a):
        self.r.close()


class Proxy:
    """`az connectedk8s proxy` as a user runs it, in the background."""

    def __init__(self, az, kubeconfig, port, *extra, verbose=False):
        self.port, self.kubeconfig = port, kubeconfig
        env = dict(az.env)
        env["KUBECONFIG"] = kubeconfig
        self.out_path = kubeconfig + ".proxy.out"
        self.out = open(self.out_path, "w")
        self.started = time.time()
        self.proc = subprocess.Popen([az.az, "connectedk8s", "proxy", "-n", "c1", "-g", "rg1", "--port", str(port),
                                      *extra, *(["--verbose"] if verbose else [])],
                                     env=env, stdout=self.out, stderr=subprocess.STDOUT)

    def text(self):
        with open(self.out_path) as f:
            return f.read()

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while "Proxy is listening on port %d" % self.port not in self.text():
            assert self.proc.poll() is None, "proxy exited:\n" + self.text()
            assert time.time() < deadline, "proxy not ready:\n" + self.text()
            time.sleep(0.05)
        return self

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(20)
        self.out.close()
        return self.proc.returncode


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
        assert r.returncode == 0, r.stderr + p.text() + open(env.agent_log.name).read()[-2000:]
        assert "web" in r.stdout
        # The agent saw alice, impersonated.
        assert env.ids["alice"] in open(env.agent_log.name).read()
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
    p = Proxy(env.alice, kc, free_port(), "--token", env.sa_token).wait_ready()
    try:
        r = kubectl(env, kc, "get", "pods", "-A")
        assert r.returncode == 0 and "web" in r.stdout, r.stderr
        # The token never lands in the kubeconfig or the output.
        assert env.sa_token not in open(kc).read() and env.sa_token not in p.text()
    finally:
        assert p.stop() == 0


def test_user_without_the_role_is_refused(env):
    bob = Az(env.hub)
    try:
        bob.env["AZURE_EXTENSION_DIR"] = env.ext_dir
        # Reader at the group lets bob sign in and see the cluster, nothing more.
        env.admin.rest("put", "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Authorization/"
                       "roleAssignments/%s" % (env.ids["sub"], uuid.uuid4()),
                       {"properties": {"roleDefinitionId": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
                                       "principalId": env.ids["bob"]}}, api="2022-04-01")
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
    finally:
        watch.kill()
        assert p.stop() == 0
