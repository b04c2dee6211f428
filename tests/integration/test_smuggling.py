"""Request smuggling through the agent and the proxy (issue 10).

The agent forwards with impersonation on its own service-account
credential, so its framing invariant is the crown jewel: no caller byte
reaches the API server except inside a request head the agent parsed,
checked (no Impersonate-*, one framing, size limits) and rewrote itself,
or after the API server answered 101 to the request that asked to
upgrade. These tests attack that invariant with exact bytes:

  - after an upgrade request that the API server does NOT upgrade (403,
    404, 200), the bytes that followed it (in the same WebSocket frame, in
    the next one before the answer, or after the answer) must be parsed as
    ordinary requests, never piped raw; after a 101 they are the pipe's
    first bytes, never parsed;
  - pipelined refusals (401, 403) are answered in order, as Status JSON
    with Content-Length and without Connection: close, and the stream
    goes on (a refused request's body is discarded, not parsed);
  - framing errors are answered 400 (431 for an oversized head) in order,
    with Connection: close, and nothing after the bad bytes reaches the
    API server.

Each case runs twice: against the agent through the real relay, as a raw
Hybrid Connections sender (so the test decides which bytes go into which
WebSocket frame), and through the real `az connectedk8s proxy` on a raw
mutual-TLS socket. The caller is a user holding only a pod-reader binding
(get/list/watch pods). Every test checks the responses, in order, and then
the kube-apiserver audit log: the agent's service account acted only as
that user (with their groups), nobody was impersonated into
system:masters, and no caller request touched Secrets."""
import base64
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import AGENT_RBAC, BUILD, ROOT_KEY, start_hub, stop_hub
from issuer import TestIssuer
from kube import KubeCluster, free_port
from wsclient import WS, Closed, connect

HC = "cluster-smuggle"
# Identities the harness itself uses (kubectl set-up, the controller
# manager, the API server's loopback client): their own requests may read
# Secrets; nothing a caller sends may.
HARNESS_USERS = {"admin", "system:apiserver", "system:kube-controller-manager"}
SECRETS = "/api/v1/namespaces/kube-system/secrets"
SMUGGLED_HEADERS = [("Impersonate-User", "admin"), ("Impersonate-Group", "system:masters")]
RESPONSE_TIMEOUT = 10  # seconds for any one response; no test waits unbounded
END_TIMEOUT = 10  # seconds for a stream that must end to end


# ---- bytes on the wire --------------------------------------------------------------------------

def request(method, target, token=None, headers=(), body=b"", version="1.1", host="kubernetes.default.svc"):
    """One request as exact bytes. A body gets a Content-Length unless the
    headers already frame it."""
    lines = ["%s %s HTTP/%s" % (method, target, version), "Host: " + host]
    if token:
        lines.append("Authorization: Bearer " + token)
    lines += ["%s: %s" % h for h in headers]
    if body and not any(h[0].lower() in ("content-length", "transfer-encoding") for h in headers):
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def marker():
    """A unique label selector: a GET carrying it is identifiable in the
    audit log (requestURI keeps the query)."""
    return "ck-mark%3D" + uuid.uuid4().hex[:12]


def pods_path(mark):
    return "/api/v1/namespaces/default/pods?labelSelector=" + mark


def chunked(data, size=7):
    out = b""
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out += b"%x\r\n%s\r\n" % (len(part), part)
    return out + b"0\r\n\r\n"


class WSStream:
    """A raw Hybrid Connections sender through arc-hub: every send() is one
    binary WebSocket frame."""

    def __init__(self, hub, hc):
        st, reason, ws = connect(hub.port, "/$hc/%s?sb-hc-action=connect" % hc,
                                 {"ServiceBusAuthorization": hub.token(hc)}, ca=hub.ca)
        assert st == 101, "relay refused the sender: %d %s %r" % (st, reason, ws)
        ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ws = ws

    def send(self, *frames):
        """Each argument is one binary frame; all of them go in one write,
        so the relay receives (and the agent reads) them back to back."""
        self.ws.sock.sendall(b"".join(self.ws.frame(2, f) for f in frames))

    def read_some(self, timeout):
        """Next data bytes; b"" once the stream has ended (close frame or
        connection gone). Raises TimeoutError."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("nothing within %.1fs" % timeout)
            try:
                op, fin, payload = self.ws.recv_frame(timeout=left)
            except Closed:
                return b""
            if op == 9:  # the hub pings every second here
                try:
                    self.ws.send(10, payload)
                except OSError:
                    pass
                continue
            if op == 8:
                return b""
            if op in (0, 1, 2) and payload:
                return payload

    def close(self):
        try:
            self.ws.close()
            self.ws.sock.close()
        except OSError:
            pass


class TLSStream:
    """A raw client of the proxy's local port, with the session's client
    certificate: every send() is one sendall."""

    def __init__(self, port, certs):
        ctx = ssl.create_default_context(cafile=certs["ca"])
        ctx.load_cert_chain(certs["crt"], certs["key"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")

    def send(self, *writes):
        """Each argument is one write (one TLS record), sent back to back."""
        for w in writes:
            self.sock.sendall(w)

    def read_some(self, timeout):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("nothing within %.1fs" % timeout)
        except (ssl.SSLError, ConnectionError):
            return b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Response:
    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def header(self, name):
        vals = [v for k, v in self.headers if k == name.lower()]
        return vals[0] if vals else None

    def closes(self):
        return any("close" in [t.strip().lower() for t in v.split(",")] for k, v in self.headers if k == "connection")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def short(self):
        doc = self.json()
        what = doc.get("message") or doc.get("kind") if isinstance(doc, dict) else self.body[:80]
        return "%d %r%s" % (self.status, what, " (Connection: close)" if self.closes() else "")


class ResponseReader:
    """Reads HTTP/1.1 responses off a stream, one at a time and in order:
    status line, headers, then a body framed by Content-Length, chunked
    coding, or the end of the stream."""

    def __init__(self, stream):
        self.stream, self.buf, self.eof = stream, b"", False

    def _fill(self, deadline):
        left = deadline - time.time()
        if left <= 0:
            raise TimeoutError
        chunk = self.stream.read_some(left)
        if not chunk:
            self.eof = True
        self.buf += chunk

    def _need(self, n, deadline):
        while len(self.buf) < n and not self.eof:
            self._fill(deadline)
        if len(self.buf) < n:
            raise AssertionError("the stream ended inside a response body: %r" % self.buf[:300])

    def next(self, timeout=RESPONSE_TIMEOUT):
        """The next response; None when the stream ended cleanly between
        responses. Raises TimeoutError when none arrives in time."""
        deadline = time.time() + timeout
        while b"\r\n\r\n" not in self.buf:
            if self.eof:
                if not self.buf:
                    return None
                raise AssertionError("the stream ended inside a response head: %r" % self.buf[:300])
            self._fill(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3})(?: (.*))?$", lines[0])
        assert m, "not an HTTP/1.1 status line: %r" % lines[0][:200]
        status = int(m.group(1))
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            assert colon, "bad response header line %r" % line[:200]
            headers.append((name.strip().lower().decode("latin-1"), value.strip().decode("latin-1")))
        r = Response(status, (m.group(2) or b"").decode("latin-1"), headers, b"")
        te, cl = r.header("transfer-encoding"), r.header("content-length")
        if 100 <= status < 200 or status in (204, 304):
            return r
        if te and "chunked" in te.lower():
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._need(len(self.buf) + 1, deadline)
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while b"\r\n\r\n" not in b"\r\n" + self.buf:  # trailers, then the empty line
                        self._need(len(self.buf) + 1, deadline)
                    self.buf = (b"\r\n" + self.buf).split(b"\r\n\r\n", 1)[1]
                    break
                self._need(size + 2, deadline)
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
            r.body = body
        elif cl is not None:
            n = int(cl)
            self._need(n, deadline)
            r.body, self.buf = self.buf[:n], self.buf[n:]
        else:  # delimited by the end of the stream
            while not self.eof:
                self._fill(deadline)
            r.body, self.buf = self.buf, b""
        return r

    def wait_end(self, timeout=END_TIMEOUT):
        """Returns None once the stream has ended with nothing more on it,
        or a description of what arrived instead."""
        deadline = time.time() + timeout
        try:
            while not self.eof:
                self._fill(deadline)
        except TimeoutError:
            return "the stream stayed open %ds after the last response" % timeout
        if self.buf:
            return "bytes after the last response: %r" % self.buf[:300]
        return None


def safe_send(stream, *data):
    """A send the far end may already have refused (a stream it ended)."""
    try:
        stream.send(*data)
        return True
    except (OSError, Closed, ssl.SSLError):
        return False


# ---- expected responses -------------------------------------------------------------------------

def check_response(kind, r, side):
    """Problems with response r, which the spec says is of `kind`."""
    p = []
    doc = r.json()
    st = doc if isinstance(doc, dict) and doc.get("kind") == "Status" else None

    def status_json(code, reason=None):
        if st is None:
            p.append("expected a Kubernetes Status JSON body, got %r" % r.body[:200])
            return ""
        if st.get("code") != code:
            p.append("Status code %r, expected %d" % (st.get("code"), code))
        if reason and st.get("reason") != reason:
            p.append("Status reason %r, expected %r" % (st.get("reason"), reason))
        return st.get("message") or ""

    want = {"ok": 200, "exec-forbidden": 403, "not-found": 404, "refused-impersonation": 403,
            "unauthenticated": 401, "bad-request": 400, "too-large": 431}[kind]
    if r.status != want:
        return ["status %d, expected %d (%s)" % (r.status, want, kind)]
    if kind == "ok":
        if not isinstance(doc, dict) or doc.get("kind") != "PodList":
            p.append("expected a PodList, got %r" % r.body[:200])
    elif kind == "exec-forbidden":  # the API server's own answer to the upgrade request
        msg = status_json(403, "Forbidden")
        if 'User "%s" cannot' % side.user not in msg or "pods/exec" not in msg:
            p.append("not the API server's pods/exec refusal for %s: %r" % (side.user, msg))
    elif kind == "not-found":
        msg = status_json(404, "NotFound")
        if "no-such-pod" not in msg:
            p.append("not the API server's NotFound: %r" % msg)
    elif kind in ("refused-impersonation", "unauthenticated"):
        # The agent's refusal of one well-framed request: in order, framed
        # by Content-Length, and the stream goes on.
        msg = status_json(want, "Forbidden" if want == 403 else "Unauthorized")
        if kind == "refused-impersonation" and ("impersonat" not in msg.lower() or "cannot impersonate" in msg):
            p.append("not the agent's refusal of Impersonate-* headers: %r" % msg)
        if r.header("content-length") is None:
            p.append("a refusal without Content-Length")
        if r.closes():
            p.append("a refusal of a well-framed request must not close the stream (Connection: close)")
    else:  # framing errors end the stream
        status_json(want)
        if not r.closes():
            p.append("a framing error must be answered with Connection: close")
    return ["%s: %s" % (kind, x) for x in p]


def exchange(side, before, expected, ends, after=()):
    """Sends the frames in `before` back to back (WebSocket frames in one
    write; through the proxy, one TLS write each), then, once the first
    response has been read, those in `after`. Reads len(expected)
    responses, then checks that the stream ends (ends=True) or that nothing
    else comes. Returns (problems, summary of what came)."""
    s = side.open()
    rd = ResponseReader(s)
    got, problems = [], []
    try:
        safe_send(s, *before)  # a stream refused early still has its answer to read
        for i, kind in enumerate(expected):
            if i == 1 and after:
                safe_send(s, *after)
            try:
                r = rd.next()
            except TimeoutError:
                problems.append("response %d (%s): none within %ds" % (i + 1, kind, RESPONSE_TIMEOUT))
                break
            if r is None:
                problems.append("response %d (%s): the stream ended first" % (i + 1, kind))
                break
            got.append(r)
            problems += ["response %d %s" % (i + 1, x) for x in check_response(kind, r, side)]
        if len(got) == len(expected):
            if ends:
                why = rd.wait_end()
                if why:
                    problems.append("after the framing error: " + why)
            else:
                try:
                    extra = rd.next(timeout=0.5)
                except TimeoutError:
                    extra = None
                if extra is not None:
                    problems.append("an extra response: " + extra.short())
    finally:
        s.close()
    summary = "responses: [%s]" % ", ".join(r.short() for r in got)
    if problems:
        problems.append("expected [%s]; %s" % (", ".join(expected), summary))
    return problems, summary


# ---- the audit log ------------------------------------------------------------------------------

def sentinel(side, since):
    """A fresh stream with one ordinary request, awaited in the audit log:
    once its event is written, everything the test sent before it has been
    logged too (blocking audit mode, requests answered in order)."""
    mark = marker()
    s = side.open()
    try:
        s.send(request("GET", pods_path(mark), token=side.token))
        r = ResponseReader(s).next()
        assert r is not None and r.status == 200, "the sentinel request failed: %s" % (r and r.short())
    finally:
        s.close()
    return side.kube.wait_audit(lambda e: mark in e.get("requestURI", "") and e.get("stage") == "ResponseComplete",
                                since=since)


def check_audit(side, since, seen=(), unseen=()):
    """Problems in the audit events since `since`: the invariants, every
    mark in `seen` answered 200 as the caller, no mark in `unseen` at all."""
    evs = sentinel(side, since)
    p = []
    for e in evs:
        user = (e.get("user") or {}).get("username", "")
        imp = e.get("impersonatedUser")
        uri = e.get("requestURI", "")
        res = (e.get("objectRef") or {}).get("resource")
        code = (e.get("responseStatus") or {}).get("code")
        what = "%s %s as %r%s -> %s" % (e.get("verb"), uri, user, " impersonating %r" % imp if imp else "", code)
        if imp and "system:masters" in (imp.get("groups") or []):
            p.append("audit: system:masters impersonated: " + what)
        if user == side.sa and (not imp or imp.get("username") != side.user or
                                not set(imp.get("groups") or []) <= side.groups):
            p.append("audit: the agent's credential acted as someone other than %s: %s" % (side.user, what))
        harness = user in HARNESS_USERS and not imp
        if not harness and (res == "secrets" or "/secrets" in uri):
            p.append("audit: a caller's request reached Secrets%s: %s"
                     % (" and was AUTHORIZED" if code == 200 else "", what))
        for m in unseen:
            if m in uri:
                p.append("audit: bytes after the refused/bad ones reached the API server: " + what)
    for m in seen:
        hits = [e for e in evs if m in e.get("requestURI", "") and e.get("stage") == "ResponseComplete"]
        ok = [e for e in hits if (e.get("impersonatedUser") or {}).get("username") == side.user
              and (e.get("user") or {}).get("username") == side.sa and e["responseStatus"]["code"] == 200]
        if not ok:
            p.append("audit: the legitimate request %s was not served as %s: %s"
                     % (m, side.user, [((e.get("user") or {}).get("username"), e.get("impersonatedUser"),
                                        e["responseStatus"]["code"]) for e in hits]))
    return p


# ---- the two ways in ----------------------------------------------------------------------------

class Side:
    """One way to reach the agent: name ("agent" or "proxy"), open() a raw
    stream, the kube cluster, the agent's service-account username, the
    caller's username and the groups it may be impersonated with, the token
    a legitimate caller puts in its requests (None through the proxy,
    which adds the credential itself) and a token to smuggle."""


@pytest.fixture(scope="module")
def agent_side():
    d = tempfile.mkdtemp(prefix="ck-smuggle-")
    stops = []
    try:
        k = KubeCluster(os.path.join(d, "kube"), audit=True).start()
        stops.append(k.stop)
        k.kubectl("create", "serviceaccount", "clusterconnect-agent", "-n", "kube-system")
        rbac = os.path.join(d, "rbac.yaml")
        with open(rbac, "w") as f:
            f.write(AGENT_RBAC)
        k.kubectl("apply", "-f", rbac)
        token_file = os.path.join(d, "agent.token")
        with open(token_file, "w") as f:
            f.write(k.kubectl("create", "token", "clusterconnect-agent", "-n", "kube-system",
                              "--duration=2h").stdout.strip())
        k.kubectl("create", "clusterrole", "pod-reader", "--verb=get,list,watch", "--resource=pods")
        k.kubectl("create", "clusterrolebinding", "alice-reads", "--clusterrole=pod-reader", "--user=oid-alice")
        # The test node's image (the streams tests add a node): never pulled.
        k.kubectl("run", "web", "--image=connectedk8s.test/busybox:1", "--image-pull-policy=Never", "-n", "default",
                  "--command", "--", "sleep", "3600")
        k.kubectl("create", "secret", "generic", "crown-jewel", "-n", "kube-system", "--from-literal=k=v")
        issuer = TestIssuer(d)
        os.makedirs(os.path.join(d, "hub"))
        hub = start_hub(os.path.join(d, "hub"), ["--ping-interval", "1"], config={
            "namespaceRules": [{"name": "root", "key": ROOT_KEY, "rights": ["Listen", "Send", "Manage"]}],
            "hybridConnections": [{"name": HC}]})
        stops.append(lambda: stop_hub(hub))
        keyfile = os.path.join(d, "relay.key")
        with open(keyfile, "w") as f:
            f.write(ROOT_KEY)
        log = open(os.path.join(d, "agent.log"), "w")
        agent = subprocess.Popen([
            os.path.join(BUILD, "bin", "clusterconnect-agent"), "--relay", hub.url(), "--hybrid-connection", HC,
            "--key-name", "root", "--key-file", keyfile, "--relay-ca", hub.ca,
            "--apiserver", "https://127.0.0.1:%d" % k.port, "--apiserver-ca", os.path.join(k.dir, "ca.pem"),
            "--token-file", token_file, "--issuer", issuer.issuer, "--audience", issuer.audience,
            "--jwks-file", issuer.jwks_file, "--health-listen", "127.0.0.1:0", "--ping-interval", "1"],
            stdout=log, stderr=subprocess.STDOUT)
        stops.append(lambda: (agent.terminate(), agent.wait(10)))
        deadline = time.time() + 10
        while hub.metric("arc_relay_listeners") < 2:
            assert time.time() < deadline and agent.poll() is None, open(log.name).read()
            time.sleep(0.1)
        s = Side()
        s.name, s.kube, s.dir = "agent", k, d
        s.open = lambda: WSStream(hub, HC)
        s.sa = "system:serviceaccount:kube-system:clusterconnect-agent"
        s.user = "oid-alice"
        s.groups = {"system:authenticated"}  # her token carries no groups
        s.token = issuer.mint("oid-alice", ttl=3600)
        s.smuggle_token = s.token  # a valid token for the caller herself
        s.log = lambda: open(log.name).read()[-3000:]
        s.hub, s.agent_args = hub, dict(token_file=token_file, keyfile=keyfile, issuer=issuer)
        yield s
    finally:
        for stop in reversed(stops):
            try:
                stop()
            except Exception:
                pass
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def proxy_env():
    from arcenv import ArcEnv, Proxy
    d = tempfile.mkdtemp(prefix="ck-smuggle-proxy-")
    e = ArcEnv(d, audit=True).start()
    p = None
    try:
        k = e.kube
        # The test node's image (the streams tests add a node): never pulled.
        k.kubectl("run", "web", "--image=connectedk8s.test/busybox:1", "--image-pull-policy=Never", "-n", "default",
                  "--command", "--", "sleep", "3600")
        k.kubectl("create", "secret", "generic", "crown-jewel", "-n", "kube-system", "--from-literal=k=v")
        k.kubectl("create", "clusterrolebinding", "alice-reads", "--clusterrole=pod-reader",
                  "--user=alice@example.test")  # members are impersonated by UPN
        e.grant(e.ids["alice"])
        e.alice = e.az()
        e.alice.login_msi(e.ids["alice"])
        e.kc = os.path.join(d, "alice.kubeconfig")
        p = e.proxy = Proxy(e.alice, e.kc, free_port()).wait_ready()
        doc = json.loads(subprocess.run([k.kubectl_path, "--kubeconfig", e.kc, "config", "view", "--raw", "-o",
                                         "json"], capture_output=True, text=True, check=True).stdout)
        ctx = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])["context"]
        cluster = next(c for c in doc["clusters"] if c["name"] == ctx["cluster"])["cluster"]
        user = next(u for u in doc["users"] if u["name"] == ctx["user"])["user"]
        e.certs = {}
        for name, data in (("ca", cluster["certificate-authority-data"]), ("crt", user["client-certificate-data"]),
                           ("key", user["client-key-data"])):
            e.certs[name] = os.path.join(d, name + ".pem")
            with open(e.certs[name], "wb") as f:
                f.write(base64.b64decode(data))
        yield e
    finally:
        if p:
            p.stop()
        e.stop()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def proxy_side(proxy_env):
    e = proxy_env
    s = Side()
    s.name, s.kube, s.dir = "proxy", e.kube, e.dir
    s.open = lambda: TLSStream(e.proxy.port, e.certs)
    s.sa = "system:serviceaccount:azure-arc:clusterconnect-agent"
    s.user = "alice@example.test"  # whom the API server sees
    alice = next(p for p in e.directory["principals"] if p.get("objectId") == e.ids["alice"])
    s.groups = set(alice.get("groups") or []) | {"system:authenticated"}
    s.token = None  # the proxy adds alice's credential to every request
    s.smuggle_token = "a-token-the-proxy-must-replace"
    s.log = lambda: e.proxy.text()[-1500:] + open(e.agent_log).read()[-1500:]
    return s


@pytest.fixture(scope="module", params=["agent", "proxy"])
def side(request):
    return request.getfixturevalue(request.param + "_side")


# ---- smuggling after an upgrade request that is not upgraded ------------------------------------

SPDY = [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", "v4.channel.k8s.io")]
WEBSOCKET = [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"),
             ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Protocol", "v5.channel.k8s.io")]
EXEC = "/api/v1/namespaces/default/pods/web/exec?command=sh&stdin=true&stdout=true"
# The request asking to upgrade, and how the API server answers it
# without upgrading: alice may not exec (403); the pod does not exist
# (404); an ordinary list the API server serves (200).
OPENERS = {
    "exec-spdy-403": (EXEC, SPDY, "exec-forbidden"),
    "exec-websocket-403": (EXEC, WEBSOCKET, "exec-forbidden"),
    "missing-pod-404": ("/api/v1/namespaces/default/pods/no-such-pod", SPDY, "not-found"),
    "list-pods-200": ("/api/v1/namespaces/default/pods", SPDY, "ok"),
}
# A head left open for the next legitimate request to complete: its
# request line becomes the value of X-Pad, its Authorization the
# credential of a request for Secrets as admin in system:masters.
PARTIAL = ("GET %s HTTP/1.1\r\nImpersonate-User: admin\r\nImpersonate-Group: system:masters\r\nX-Pad: "
           % SECRETS).encode()
BLOB = (b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"smuggled","namespace":"kube-system"},'
        b'"spec":{"containers":[{"name":"c","image":"busybox","command":["cat","/etc/shadow"]}]}}')
GARBAGE = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(0x80, 0x100)) + b"\x00\x7f\x1b[0m\x00"


def follower(case, side):
    """(first, rest, expected, ends, seen, unseen): `first` is what
    follows the upgrade request (see TIMINGS for when), `rest` what follows
    `first` (in the "next-frame" timing, once the upgrade request's answer
    was read: the moment a partial head is completed on a stream that
    kept it raw); then the responses expected after the upgrade request's
    own, whether the stream must end, and the marks that must and must not
    reach the API server."""
    m1, m2 = marker(), marker()
    ok1, ok2 = request("GET", pods_path(m1), token=side.token), request("GET", pods_path(m2), token=side.token)
    smuggled = request("GET", SECRETS, token=side.smuggle_token, headers=SMUGGLED_HEADERS)
    bare = request("GET", SECRETS, headers=SMUGGLED_HEADERS)
    # Through the proxy every request gets alice's credential, so a request
    # without one is refused for its Impersonate-* headers like the rest.
    no_token = "unauthenticated" if side.name == "agent" else "refused-impersonation"
    return {
        "valid-request": (ok1, b"", ["ok"], False, [m1], []),
        "partial-head": (PARTIAL, ok1 + ok2, ["refused-impersonation", "ok"], False, [m2], [m1]),
        "smuggled-with-token": (smuggled, ok2, ["refused-impersonation", "ok"], False, [m2], []),
        "smuggled-without-token": (bare, ok2, [no_token, "ok"], False, [m2], []),
        "body-blob": (BLOB, ok1, ["bad-request"], True, [], [m1]),
        "garbage": (GARBAGE, ok1, ["bad-request"], True, [], [m1]),
    }[case]


# When the bytes behind the upgrade request arrive: in the same frame; in
# the next frame, written together with it (so they reach the agent before
# the API server can answer, barring a scheduling accident in the relay);
# or only once the answer was read.
TIMINGS = ["same-frame", "next-frame", "after-response"]


@pytest.mark.parametrize("timing", TIMINGS)
@pytest.mark.parametrize("case", ["valid-request", "partial-head", "smuggled-with-token", "smuggled-without-token",
                                  "body-blob", "garbage"])
@pytest.mark.parametrize("opener", list(OPENERS))
def test_bytes_after_a_refused_upgrade_are_parsed_as_requests(side, opener, case, timing):
    """An upgrade request the API server answers without 101, followed by a
    plain request, a partial head, a smuggled Impersonate-* request with
    and without a token, a body-like blob or garbage: the bytes after it
    are requests the agent checks, never a raw pipe."""
    since = side.kube.audit_mark()
    path, hdrs, answer = OPENERS[opener]
    first, rest, expected, ends, seen, unseen = follower(case, side)
    up = request("GET", path, token=side.token, headers=hdrs)
    if timing == "same-frame":
        before, after = [up + first + rest], []
    elif timing == "next-frame":
        before, after = [up, first], [rest] if rest else []
    else:
        before, after = [up], [first + rest]
    problems, _ = exchange(side, before, [answer] + expected, ends, after=after)
    problems += check_audit(side, since, seen=seen, unseen=unseen)
    assert not problems, "\n".join(problems) + "\n" + side.log()


# ---- pipelined refusals are answered in order ---------------------------------------------------

def test_pipelined_refusals_are_answered_in_order(side):
    """One frame: alice lists pods, a request without credentials, alice
    with Impersonate-User, alice again. Responses come in that order; the
    refusals do not end the stream."""
    since = side.kube.audit_mark()
    m1, m2, m3, m4 = marker(), marker(), marker(), marker()
    frame = (request("GET", pods_path(m1), token=side.token) +
             request("GET", pods_path(m2)) +
             request("GET", pods_path(m3), token=side.token, headers=[("Impersonate-User", "admin")]) +
             request("GET", pods_path(m4), token=side.token))
    if side.name == "agent":
        expected, seen, unseen = ["ok", "unauthenticated", "refused-impersonation", "ok"], [m1, m4], [m2, m3]
    else:  # the proxy gives the second request alice's credential too
        expected, seen, unseen = ["ok", "ok", "refused-impersonation", "ok"], [m1, m2, m4], [m3]
    problems, _ = exchange(side, [frame], expected, ends=False)
    problems += check_audit(side, since, seen=seen, unseen=unseen)
    assert not problems, "\n".join(problems) + "\n" + side.log()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_refused_requests_body_is_discarded_not_parsed(side, framing):
    """A refused POST whose body is itself a complete request (for alice's
    own pods, with her token): the body is skipped, never served; the
    request after it is."""
    since = side.kube.audit_mark()
    m1, inner, m2 = marker(), marker(), marker()
    body = request("GET", pods_path(inner), token=side.token)
    hdrs = [("Impersonate-User", "admin"), ("Content-Type", "application/json")]
    if framing == "chunked":
        refused = request("POST", "/api/v1/namespaces/default/pods", token=side.token,
                          headers=hdrs + [("Transfer-Encoding", "chunked")], body=chunked(body))
    else:
        refused = request("POST", "/api/v1/namespaces/default/pods", token=side.token, headers=hdrs, body=body)
    frame = request("GET", pods_path(m1), token=side.token) + refused + request("GET", pods_path(m2), token=side.token)
    problems, _ = exchange(side, [frame], ["ok", "refused-impersonation", "ok"], ends=False)
    problems += check_audit(side, since, seen=[m1, m2], unseen=[inner])
    assert not problems, "\n".join(problems) + "\n" + side.log()


# ---- framing errors end the stream --------------------------------------------------------------

def bad_request(case, token):
    """The malformed or ambiguous request of each framing case (with a valid
    token, so that only its framing can be refused)."""
    auth = ("Authorization: Bearer %s\r\n" % token) if token else ""
    pod = b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}'
    post = "POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: k\r\n" + auth
    return {
        "content-length-and-chunked": (post + "Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
                                       % len(chunked(pod))).encode() + chunked(pod),
        "two-content-lengths": (post + "Content-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(pod)).encode() + pod,
        "obs-fold": ("GET /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: k\r\n" + auth +
                     "X-Folded: a\r\n Impersonate-User: admin\r\n\r\n").encode(),
        "bare-lf": ("GET /api/v1/namespaces/default/pods HTTP/1.1\nHost: k\n" + auth.replace("\r\n", "\n") +
                    "\n").encode(),
        "space-in-header-name": ("GET /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: k\r\n" + auth +
                                 "X-Custom Header: 1\r\n\r\n").encode(),
        "space-before-colon": (post + "Transfer-Encoding : chunked\r\n\r\n").encode() + chunked(pod),
        "http10-chunked": (post.replace("HTTP/1.1", "HTTP/1.0") + "Transfer-Encoding: chunked\r\n\r\n").encode() +
                          chunked(pod),
        "absolute-form": ("GET https://kubernetes.default.svc/api/v1/namespaces/default/pods HTTP/1.1\r\n"
                          "Host: kubernetes.default.svc\r\n" + auth + "\r\n").encode(),
        "connect": ("CONNECT kubernetes.default.svc:443 HTTP/1.1\r\nHost: kubernetes.default.svc:443\r\n" + auth +
                    "\r\n").encode(),
        "upgrade-with-body": ("GET %s HTTP/1.1\r\nHost: k\r\n%sConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                              "Content-Length: 11\r\n\r\nhello world" % (EXEC, auth)).encode(),
        "upgrade-with-chunked-body": ("GET %s HTTP/1.1\r\nHost: k\r\n%sConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                                      "Transfer-Encoding: chunked\r\n\r\n" % (EXEC, auth)).encode() + chunked(pod),
        "bad-method": ("G{T /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: k\r\n" + auth + "\r\n").encode(),
        "control-byte-in-value": ("GET /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: k\r\n" + auth +
                                  "X-Nul: a\x00b\r\n\r\n").encode(),
        # ~40 KB of head in lines under the 8 KiB line limit: well past the
        # 16 KiB head limit csrc/core/http.h documents, yet small enough to
        # be read whole before the answer (no reset racing the 431).
        "oversized-head": ("GET /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: k\r\n" + auth +
                           "".join("X-Big-%d: %s\r\n" % (i, "a" * 4000) for i in range(10)) + "\r\n").encode(),
    }[case]


FRAMING = ["content-length-and-chunked", "two-content-lengths", "obs-fold", "bare-lf", "space-in-header-name",
           "space-before-colon", "http10-chunked", "absolute-form", "connect", "upgrade-with-body",
           "upgrade-with-chunked-body", "bad-method", "control-byte-in-value", "oversized-head"]


@pytest.mark.parametrize("case", FRAMING)
def test_framing_error_is_answered_in_order_and_ends_the_stream(side, case):
    """One frame: a valid request, a badly framed one, then an identifiable
    valid request. The first is served, the second gets 400 (431 when too
    large) with Connection: close after it, the stream ends, and the third
    never reaches the API server."""
    since = side.kube.audit_mark()
    m1, after = marker(), marker()
    frame = (request("GET", pods_path(m1), token=side.token) + bad_request(case, side.token) +
             request("GET", pods_path(after), token=side.token))
    answer = "too-large" if case == "oversized-head" else "bad-request"
    problems, _ = exchange(side, [frame], ["ok", answer], ends=True)
    problems += check_audit(side, since, seen=[m1], unseen=[after])
    assert not problems, "\n".join(problems) + "\n" + side.log()


# ---- real kubectl through the real proxy --------------------------------------------------------

def test_kubectl_exec_without_the_right_is_refused_then_get_pods_works(proxy_side, proxy_env):
    """Real `kubectl exec` by a user without pods/exec, through the proxy:
    the API server's 403 (kubectl prints Forbidden); the same proxy then
    serves `kubectl get pods`."""
    side, e = proxy_side, proxy_env
    since = side.kube.audit_mark()
    kubectl = [side.kube.kubectl_path, "--kubeconfig", e.kc, "--request-timeout=20s"]
    r = subprocess.run(kubectl + ["exec", "web", "--", "sh", "-c", "cat /var/run/secrets/kubernetes.io/*/token"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, r.stdout
    assert "Forbidden" in r.stderr and "pods/exec" in r.stderr and side.user in r.stderr, r.stderr + side.log()
    r = subprocess.run(kubectl + ["get", "pods", "-n", "default", "-o", "name"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "pod/web" in r.stdout, r.stderr + side.log()
    problems = check_audit(side, since)
    evs = side.kube.audit_events(since)
    execs = [ev for ev in evs if (ev.get("objectRef") or {}).get("subresource") == "exec"
             and ev.get("stage") == "ResponseComplete"]
    if not execs or any(ev["responseStatus"]["code"] != 403 or
                        (ev.get("impersonatedUser") or {}).get("username") != side.user for ev in execs):
        problems.append("audit: expected only 403s for pods/exec as %s: %s"
                        % (side.user, [(ev.get("impersonatedUser"), ev["responseStatus"]["code"]) for ev in execs]))
    lists = [ev for ev in evs if ev.get("verb") == "list" and (ev.get("objectRef") or {}).get("resource") == "pods"
             and (ev.get("impersonatedUser") or {}).get("username") == side.user
             and ev["responseStatus"]["code"] == 200]
    if not lists:
        problems.append("audit: kubectl get pods was not served as %s" % side.user)
    assert not problems, "\n".join(problems) + "\n" + side.log()


# ---- after a 101 the held bytes are the pipe's first bytes --------------------------------------

# Alice may exec in this one pod, nowhere else (the 403 cases above use "web").
UPPER_EXEC_ROLE = """apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: exec-upper, namespace: default}
rules:
- {apiGroups: [""], resources: [pods/exec], resourceNames: [upper], verbs: [get, create]}
"""
UPPER_EXEC = ("/api/v1/namespaces/default/pods/upper/exec?command=tr&command=a-z&command=A-Z"
              "&stdin=true&stdout=true")


@pytest.fixture(scope="module")
def streams(agent_side):
    """A real node on the agent side's cluster (tests/node.py) and a pod,
    upper, whose exec runs tr a-z A-Z: stdin comes back upper-cased on
    stdout once stdin closes. Skipped where this machine cannot run a node."""
    from node import KubeNode, unavailable
    reason = unavailable()
    if reason:
        pytest.skip("no test node on this machine: " + reason)
    side, k = agent_side, agent_side.kube
    node = KubeNode(k).start()
    try:
        path = os.path.join(side.dir, "exec-upper.yaml")
        with open(path, "w") as f:
            f.write(UPPER_EXEC_ROLE)
        k.kubectl("apply", "-f", path)
        k.kubectl("create", "rolebinding", "alice-exec-upper", "-n", "default", "--role=exec-upper",
                  "--user=" + side.user)
        node.run_pod("upper", ["sleep", "3600"])
        yield node
    finally:
        node.stop()


def read_ws_frame(rd, timeout=RESPONSE_TIMEOUT):
    """One unmasked server frame from what follows a 101 on the stream:
    (opcode, payload)."""
    deadline = time.time() + timeout
    rd._need(2, deadline)
    op, n, off = rd.buf[0] & 0x0F, rd.buf[1] & 0x7F, 2
    if n == 126:
        rd._need(4, deadline)
        n, off = int.from_bytes(rd.buf[2:4], "big"), 4
    elif n == 127:
        rd._need(10, deadline)
        n, off = int.from_bytes(rd.buf[2:10], "big"), 10
    rd._need(off + n, deadline)
    payload, rd.buf = rd.buf[off:off + n], rd.buf[off + n:]
    return op, payload


@pytest.mark.parametrize("timing", ["same-frame", "next-frame"])
def test_bytes_after_an_upgrade_that_gets_101_are_the_pipes_first_bytes(agent_side, streams, timing):
    """Upgrade request and the first WebSocket frames of the exec stream
    together (one relay frame, or the next one before the answer), against
    a real pod. After the 101 they are pipe data, delivered whole and in
    order, never parsed as requests, even when they look like one with
    Impersonate-* headers: once stdin closes, tr in the pod gives them back
    upper-cased on stdout and the exec ends with Success; and the API
    server's audit log holds exactly one request as oid-alice, the exec."""
    side = agent_side
    since = side.kube.audit_mark()
    up = request("GET", UPPER_EXEC, token=side.token, headers=WEBSOCKET)
    stdin = request("GET", SECRETS, token=side.token, headers=SMUGGLED_HEADERS)
    frames = WS.frame(2, b"\x00" + stdin) + WS.frame(2, b"\x00second")
    s = side.open()
    rd = ResponseReader(s)
    problems = []
    try:
        s.send(*([up + frames] if timing == "same-frame" else [up, frames]))
        r = rd.next()
        assert r is not None and r.status == 101, "expected 101, got %s\n%s" % (r and r.short(), side.log())
        s.send(WS.frame(2, b"\xff\x00"))  # v5: close stdin
        out, status = b"", None
        while status is None:
            op, payload = read_ws_frame(rd)
            if op == 2 and payload[:1] == b"\x01":
                out += payload[1:]
            elif op == 2 and payload[:1] == b"\x03":
                status = json.loads(payload[1:])
            elif op == 8:
                break
        if out != (stdin + b"second").upper():
            problems.append("stdout was not stdin upper-cased, in order: %r" % out[:300])
        if (status or {}).get("status") != "Success":
            problems.append("no Success on the status channel: %r" % (status,))
    finally:
        s.close()
    evs = side.kube.wait_audit(lambda ev: (ev.get("objectRef") or {}).get("subresource") == "exec", since)
    # One request, one auditID (a long-running one logs ResponseStarted and ResponseComplete).
    alices = list({ev["auditID"]: (ev["verb"], ev["objectRef"].get("resource"), ev["objectRef"].get("subresource"),
                                   ev["responseStatus"]["code"]) for ev in evs
                   if (ev.get("impersonatedUser") or {}).get("username") == side.user}.values())
    if alices != [("create", "pods", "exec", 101)] and alices != [("get", "pods", "exec", 101)]:
        problems.append("the API server saw other requests as oid-alice than the one exec: %r" % alices)
    if any((ev.get("impersonatedUser") or {}).get("username") == "admin" for ev in evs):
        problems.append("a request went out as admin")
    assert not problems, "\n".join(problems) + "\n" + side.log()
