"""A throwaway Kubernetes control plane on loopback, for tests and the
sandbox: etcd, kube-apiserver (RBAC on, its own CA, service-account
signing key) and kube-controller-manager (service accounts and their
token Secrets, the kube-root-ca.crt ConfigMap in every namespace,
Deployments and ReplicaSets), all built from the pinned Kubernetes Go
modules by scripts/kube-build. Pods run only where tests/node.py adds a
node (kubelet, containerd, kube-scheduler); without one they stay Pending.

    cluster = KubeCluster(workdir); cluster.start(); ...; cluster.stop()
    KubeCluster(workdir, audit=True)  # also an audit log (see audit_events)
    python3 tests/kube.py DIR     # start one and wait for Ctrl+C
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kube_bin():
    """Builds (once) and returns the directory holding the binaries."""
    out = subprocess.run([os.path.join(ROOT, "scripts", "kube-build")], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("scripts/kube-build failed:\n" + out.stdout + out.stderr)
    return out.stdout.strip().splitlines()[-1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """CA, API server certificate, admin client certificate, SA key pair."""
    if os.path.exists(os.path.join(d, "admin.pem")):
        return
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "30", "-subj", "/CN=connectedk8s-test-kube-ca", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
                "DNS:kubernetes.default.svc,IP:10.96.0.1\nextendedKeyUsage=serverAuth\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name, subj, ext in (("server", "/CN=kube-apiserver", "server.ext"),
                            ("admin", "/O=system:masters/CN=admin", "client.ext")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", name + ".key",
                "-out", name + ".csr", "-subj", subj, cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", name + ".pem", "-days", "30", "-extfile", ext, cwd=d)
    openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


# Every request at level Metadata: who asked (user, impersonatedUser), for
# what (verb, requestURI, objectRef) and the answer (responseStatus), never
# a body. Only the final stages: a request appears once it is answered (or
# once a long-running one has started).
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
"""


class KubeCluster:
    def __init__(self, workdir, audit=False):
        """audit=True starts kube-apiserver with an audit log of every
        request (audit.log in the cluster directory; read it with
        audit_events). Off by default: most tests need none."""
        self.dir = os.path.abspath(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.procs = []
        self.port = None
        self.kubeconfig = os.path.join(self.dir, "admin.kubeconfig")
        self.audit = audit
        self.audit_log = os.path.join(self.dir, "audit.log") if audit else None

    def _spawn(self, name, args):
        log = open(os.path.join(self.dir, name + ".log"), "w")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, p))
        return p

    def start(self, timeout=120):
        bindir = kube_bin()
        self.bin = bindir
        self.kubectl_path = os.path.join(bindir, "kubectl")
        make_pki(self.dir)
        etcd_port, peer_port, self.port = free_port(), free_port(), free_port()
        d = self.dir
        self._spawn("etcd", [os.path.join(bindir, "etcd"), "--name", "default", "--data-dir", os.path.join(d, "etcd"),
                             "--listen-client-urls", "http://127.0.0.1:%d" % etcd_port,
                             "--advertise-client-urls", "http://127.0.0.1:%d" % etcd_port,
                             "--listen-peer-urls", "http://127.0.0.1:%d" % peer_port,
                             "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peer_port,
                             "--initial-cluster", "default=http://127.0.0.1:%d" % peer_port,
                             "--log-level", "warn"])
        self._spawn("kube-apiserver", [
            os.path.join(bindir, "kube-apiserver"),
            "--etcd-servers", "http://127.0.0.1:%d" % etcd_port,
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", str(self.port),
            "--tls-cert-file", os.path.join(d, "server.pem"), "--tls-private-key-file", os.path.join(d, "server.key"),
            "--client-ca-file", os.path.join(d, "ca.pem"),
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-account-key-file", os.path.join(d, "sa.pub"),
            "--service-account-signing-key-file", os.path.join(d, "sa.key"),
            "--service-cluster-ip-range", "10.96.0.0/16",
            "--authorization-mode", "RBAC",
            "--cert-dir", os.path.join(d, "apiserver-certs"),
            "--enable-priority-and-fairness=false",
            # How it reaches a kubelet (tests/node.py) for exec, logs and port-forward.
            "--kubelet-client-certificate", os.path.join(d, "admin.pem"),
            "--kubelet-client-key", os.path.join(d, "admin.key"),
            *self._audit_args(),
            "--v", "1"])
        with open(self.kubeconfig, "w") as f:
            f.write(self.kubeconfig_text("admin", os.path.join(d, "admin.pem"), os.path.join(d, "admin.key")))
        deadline = time.time() + timeout
        while True:
            r = self.kubectl("get", "--raw", "/readyz", check=False)
            if r.returncode == 0 and r.stdout.strip() == "ok":
                break
            for name, p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError("%s exited:\n%s" % (name, self.log(name)[-3000:]))
            if time.time() > deadline:
                raise RuntimeError("kube-apiserver not ready:\n" + self.log("kube-apiserver")[-3000:])
            time.sleep(0.5)
        self._spawn("kube-controller-manager", [
            os.path.join(bindir, "kube-controller-manager"), "--kubeconfig", self.kubeconfig,
            "--service-account-private-key-file", os.path.join(d, "sa.key"),
            "--root-ca-file", os.path.join(d, "ca.pem"), "--leader-elect=false", "--secure-port=0",
            "--controllers", "serviceaccount-token,serviceaccount,namespace,garbagecollector,clusterrole-aggregation,"
            "root-ca-certificate-publisher-controller,deployment-controller,replicaset-controller,node-lifecycle-controller", "--v", "1"])
        return self

    def _audit_args(self):
        if not self.audit:
            return []
        policy = os.path.join(self.dir, "audit-policy.yaml")
        with open(policy, "w") as f:
            f.write(AUDIT_POLICY)
        # Blocking mode (the log backend's default, spelled out): an event
        # is written before the response it describes is sent, so a test
        # that has read a response can find its event.
        return ["--audit-policy-file", policy, "--audit-log-path", self.audit_log, "--audit-log-mode", "blocking",
                "--audit-log-format", "json", "--audit-log-maxsize", "0"]

    def audit_mark(self):
        """The audit log's current end: pass it to audit_events(since=...)
        to see only what came after."""
        try:
            return os.path.getsize(self.audit_log)
        except FileNotFoundError:
            return 0

    def audit_events(self, since=0):
        """The audit events (dicts, as kube-apiserver wrote them: user.username,
        impersonatedUser.username/groups, verb, requestURI, objectRef,
        responseStatus.code, stage) from byte offset `since` on. A line still
        being written at the end is left out."""
        assert self.audit, "KubeCluster(..., audit=True) keeps an audit log"
        try:
            with open(self.audit_log, "rb") as f:
                f.seek(since)
                data = f.read()
        except FileNotFoundError:
            return []
        events = []
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                events.append(json.loads(line))
            except ValueError:
                pass  # the partial last line
        return events

    def wait_audit(self, pred, since=0, timeout=20):
        """Polls the audit log until an event satisfies pred; returns the
        events from `since` up to then (so later checks cover everything
        written before the event awaited)."""
        deadline = time.time() + timeout
        while True:
            evs = self.audit_events(since)
            if any(pred(e) for e in evs):
                return evs
            if time.time() > deadline:
                raise AssertionError("no matching audit event within %ds; last events: %s"
                                     % (timeout, [(e.get("verb"), e.get("requestURI")) for e in evs[-10:]]))
            time.sleep(0.1)

    def kubeconfig_text(self, user, cert=None, key=None, token=None):
        auth = ("    client-certificate: %s\n    client-key: %s\n" % (cert, key)) if cert else \
               ("    token: %s\n" % token)
        return ("apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n"
                "    server: https://127.0.0.1:%d\n    certificate-authority: %s\n"
                "users:\n- name: %s\n  user:\n%s"
                "contexts:\n- name: test\n  context: {cluster: test, user: %s}\ncurrent-context: test\n"
                % (self.port, os.path.join(self.dir, "ca.pem"), user, auth, user))

    def kubectl(self, *args, check=True, kubeconfig=None, timeout=60):
        r = subprocess.run([self.kubectl_path, "--kubeconfig", kubeconfig or self.kubeconfig, *args],
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("kubectl %s failed: %s" % (" ".join(args), r.stderr))
        return r

    def log(self, name):
        with open(os.path.join(self.dir, name + ".log")) as f:
            return f.read()

    def stop(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for name, p in reversed(self.procs):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


if __name__ == "__main__":
    c = KubeCluster(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".sandbox", "kube")).start()
    print("kube: ready; KUBECONFIG=%s" % c.kubeconfig, flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()
