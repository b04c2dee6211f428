"""kubectl's streaming commands against real pods, end to end: the real az
(`az connectedk8s proxy`), arc-hub's relay, the agent running as the two
pods `az connectedk8s connect` deployed on a real node (tests/node.py), the
API server, the kubelet and containerd. exec (-i, and -it on a terminal),
attach, logs -f, cp and port-forward (50 MB each way, checked by sha256 in
the pod), all as the impersonated caller (the API server's audit log
names her), and a caller without pods/exec refused by the API server.

Where this machine cannot run a node the module is skipped with the
reason (tests/node.py: unavailable)."""
import hashlib
import json
import os
import pty
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from arcenv import ArcEnv, Proxy
from kube import free_port
from node import full_ref, unavailable
from ociimage import read_archive

BLOB = 50 * 1024 * 1024
AGENT_SA = "system:serviceaccount:azure-arc:clusterconnect-agent"
ALICE, BOB = "alice@example.test", "bob@example.test"

# What alice may do in namespace default: run the streaming commands.
# kubectl >= 1.30 opens exec, attach and port-forward as WebSocket GETs,
# which the API server authorizes as create.
POD_USER = """apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-user, namespace: default}
rules:
- {apiGroups: [""], resources: [pods, pods/log], verbs: [get, list, watch]}
- {apiGroups: [""], resources: [pods/exec, pods/attach, pods/portforward], verbs: [get, create]}
"""


@pytest.fixture(scope="module")
def env():
    reason = unavailable()
    if reason:
        pytest.skip("no test node on this machine: " + reason)
    d = tempfile.mkdtemp(prefix="ck-pods-")
    e = ArcEnv(d, node=True, audit=True).start()
    try:
        k, n = e.kube, e.node
        path = os.path.join(d, "pod-user.yaml")
        with open(path, "w") as f:
            f.write(POD_USER)
        k.kubectl("apply", "-f", path)
        k.kubectl("create", "rolebinding", "alice-pods", "-n", "default", "--role=pod-user", "--user=" + ALICE)
        # bob may read pods and their logs, and nothing else.
        k.kubectl("create", "rolebinding", "bob-reads", "-n", "default", "--clusterrole=view", "--user=" + BOB)
        n.run_pod("shell", ["sleep", "3600"])
        n.run_pod("talker", ["sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"])
        n.run_pod("attachee", ["sh", "-c", "while read l; do echo got:$l; done"], extra={"stdin": True})
        n.run_pod("transfer", ["sh", "-c",
                               # nc's stdin must never end for the upload: busybox nc half-closes
                               # the connection when it does, and the port-forward chain
                               # (containerd) then ends the whole stream, bytes in flight lost.
                               "head -c %d /dev/urandom > /tmp/blob && sha256sum /tmp/blob > /tmp/blob.sum && "
                               "(sleep 86400 | nc -l -p 8081 | (head -c %d > /tmp/up; sha256sum /tmp/up > /tmp/up.sum)) & "
                               "while true; do nc -l -p 8080 < /tmp/blob; done" % (BLOB, BLOB)])
        for who, oid in ((ALICE, e.ids["alice"]), (BOB, e.ids["bob"])):
            e.grant(oid)  # Cluster User: may open the proxy
        e.alice, e.bob = e.az(), e.az()
        e.alice.login_msi(e.ids["alice"])
        e.bob.login_msi(e.ids["bob"])
        e.kc = os.path.join(d, "alice.kubeconfig")
        e.proxy = Proxy(e.alice, e.kc, free_port()).wait_ready()
    except BaseException:
        e.stop()
        raise
    yield e
    if e.proxy.proc.poll() is None:
        e.proxy.stop()
    e.stop()
    shutil.rmtree(d, ignore_errors=True)


def kubectl(env, *args, kc=None, timeout=120, **kw):
    return subprocess.run([env.kube.kubectl_path, "--kubeconfig", kc or env.kc, *args], capture_output=True,
                          timeout=timeout, **kw)


def pod_file(env, pod, path, timeout=60):
    """A file's content in a pod, read as the admin (not through the proxy)."""
    deadline = time.time() + timeout
    while True:
        r = env.kube.kubectl("exec", pod, "--", "cat", path, check=False)
        if r.returncode == 0 and r.stdout:
            return r.stdout
        assert time.time() < deadline, "%s:%s never appeared: %s" % (pod, path, r.stderr)
        time.sleep(0.5)


def audited(env, subresource, since):
    """(user, impersonated user, status) of the audit events for one pod
    subresource since `since`."""
    return [(ev["user"]["username"], (ev.get("impersonatedUser") or {}).get("username"), ev["responseStatus"]["code"])
            for ev in env.kube.audit_events(since)
            if (ev.get("objectRef") or {}).get("subresource") == subresource]


def test_the_agent_runs_as_the_pods_connect_deployed(env):
    """Two replicas, Running on the node from the image scripts/agent-image
    built (imported, never pulled), as user 65532 with no capabilities, no
    privilege escalation and a read-only root filesystem: what the kernel
    says about the agent processes, not only what the spec asks."""
    _, config_digest, _ = read_archive(env.agent_image_archive)
    listed = env.node.ctr("images", "ls").stdout.splitlines()
    assert any(l.split()[0] == full_ref(env.agent_image_ref) and env.agent_image_digest in l.split() for l in listed), \
        listed
    pods = env.agent_pods_json()
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods), env.agent_pod_logs()
    for p in pods:
        assert p["spec"]["containers"][0]["image"] == env.agent_image_ref
        assert p["status"]["containerStatuses"][0]["imageID"] == config_digest, p["status"]
        events = env.kube.kubectl("get", "events", "-n", "azure-arc", "--field-selector",
                                  "involvedObject.name=" + p["metadata"]["name"], "-o", "json").stdout
        reasons = {(ev["reason"], ev["message"]) for ev in json.loads(events)["items"]}
        assert any(r == "Pulled" and "already present on machine" in m for r, m in reasons), reasons
        assert not any(r in ("Pulling", "Failed", "BackOff") for r, _ in reasons), reasons
    procs = [pid for pid in filter(str.isdigit, os.listdir("/proc")) if _is_agent(pid)]
    assert len(procs) == 2, procs
    for pid in procs:
        status = dict(line.split(":", 1) for line in open("/proc/%s/status" % pid).read().splitlines())
        assert status["Uid"].split() == ["65532"] * 4 and status["Gid"].split() == ["65532"] * 4, status
        assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0 and status["NoNewPrivs"].strip() == "1"
        root = [line.split() for line in open("/proc/%s/mountinfo" % pid) if line.split()[4] == "/"]
        assert root and "ro" in root[-1][5].split(","), root


def test_exec_stdin_and_exit_status(env):
    since = env.kube.audit_mark()
    r = kubectl(env, "exec", "-i", "shell", "--", "tr", "a-z", "A-Z", input=b"hello through the relay\n")
    assert r.returncode == 0, r.stderr + env.proxy.text().encode()
    assert r.stdout == b"HELLO THROUGH THE RELAY\n"
    r = kubectl(env, "exec", "shell", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    # kubectl 1.32 itself sometimes logs "Unknown stream id 1, discarding
    # message" as an exec ends (straight to the API server too): skip its log lines.
    errs = [l for l in r.stderr.splitlines() if not l.startswith((b"E1", b"W1", b"I1"))]
    assert (r.returncode, r.stdout, errs[0]) == (3, b"out\n", b"err"), r.stderr
    evs = env.kube.wait_audit(lambda ev: (ev.get("objectRef") or {}).get("subresource") == "exec", since)
    assert set(audited(env, "exec", since)) == {(AGENT_SA, ALICE, 101)}, evs[-3:]


def test_exec_with_a_terminal(env):
    """kubectl exec -it on a real terminal: the pod gets a tty of its own
    and the typed line runs there."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(env.kube.kubectl_path, [env.kube.kubectl_path, "--kubeconfig", env.kc, "exec", "-it", "shell", "--",
                                         "sh"])
    out, deadline = b"", time.time() + 60
    sent = False
    try:
        while time.time() < deadline:
            if not sent and b"#" in out:  # the pod's shell prompt
                os.write(fd, b"tty; echo $((6*7)); exit 0\r")
                sent = True
            r, _, _ = select.select([fd], [], [], 1)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert sent and os.WEXITSTATUS(status) == 0, out
    assert b"/dev/pts/0" in out and b"\r\n42\r\n" in out, out


def test_attach_sends_stdin_to_the_running_process(env):
    since = env.kube.audit_mark()
    p = subprocess.Popen([env.kube.kubectl_path, "--kubeconfig", env.kc, "attach", "-i", "attachee"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got = []
    reader = threading.Thread(target=lambda: got.extend(iter(p.stdout.readline, b"")), daemon=True)
    reader.start()
    try:
        deadline = time.time() + 60
        while b"got:ping\n" not in got:
            # attach may connect after the first line was written: resend until it comes back
            p.stdin.write(b"ping\n")
            p.stdin.flush()
            assert time.time() < deadline and p.poll() is None, (got, p.poll())
            time.sleep(1)
    finally:
        p.terminate()
        p.wait(10)
    assert set(audited(env, "attach", since)) == {(AGENT_SA, ALICE, 101)}


def test_logs_follow_streams_new_lines(env):
    p = subprocess.Popen([env.kube.kubectl_path, "--kubeconfig", env.kc, "logs", "-f", "--tail=1", "talker"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = p.stdout.readline()
        assert first.startswith(b"line "), first
        n0 = int(first.split()[1])
        # Lines the pod writes only after the stream opened keep coming, in order.
        for i in range(1, 11):
            assert p.stdout.readline() == b"line %d\n" % (n0 + i)
    finally:
        p.terminate()
        p.wait(10)


def test_cp_both_ways(env, tmp_path):
    data = os.urandom(1024 * 1024)
    src = tmp_path / "up.bin"
    src.write_bytes(data)
    r = kubectl(env, "cp", str(src), "default/shell:/tmp/copied.bin")
    assert r.returncode == 0, r.stderr
    back = tmp_path / "back.bin"
    r = kubectl(env, "cp", "default/shell:/tmp/copied.bin", str(back))
    assert r.returncode == 0, r.stderr
    assert back.read_bytes() == data
    # And what landed in the pod is those bytes, checked by the pod.
    r = env.kube.kubectl("exec", "shell", "--", "sha256sum", "/tmp/copied.bin")
    assert r.stdout.split()[0] == hashlib.sha256(data).hexdigest()


def test_port_forward_carries_50_mb_each_way(env):
    since = env.kube.audit_mark()
    down, up = free_port(), free_port()
    pf = subprocess.Popen([env.kube.kubectl_path, "--kubeconfig", env.kc, "port-forward", "--address=127.0.0.1",
                           "pod/transfer", "%d:8080" % down, "%d:8081" % up], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lines = [pf.stdout.readline(), pf.stdout.readline()]
        assert all(b"Forwarding from 127.0.0.1" in l for l in lines), lines
        want = pod_file(env, "transfer", "/tmp/blob.sum", timeout=120).split()[0]
        h, n = hashlib.sha256(), 0
        with socket.create_connection(("127.0.0.1", down), timeout=60) as c:
            while n < BLOB:
                chunk = c.recv(1 << 20)
                assert chunk, "stream ended after %d bytes" % n
                h.update(chunk)
                n += len(chunk)
        assert (n, h.hexdigest()) == (BLOB, want)
        data = os.urandom(BLOB)
        with socket.create_connection(("127.0.0.1", up), timeout=60) as c:
            c.sendall(data)
            # The pod counts the bytes itself (head -c) while this side
            # stays open: closing first would race the last bytes in
            # flight against the close.
            got = pod_file(env, "transfer", "/tmp/up.sum", timeout=120).split()[0]
        assert got == hashlib.sha256(data).hexdigest()
    finally:
        pf.terminate()
        pf.wait(10)
    assert set(audited(env, "portforward", since)) == {(AGENT_SA, ALICE, 101)}


def test_a_caller_without_pods_exec_is_refused_by_the_api_server(env):
    """bob reaches the cluster (he may read pods) but holds no pods/exec:
    the agent forwards his exec as him and the API server says no."""
    kc = os.path.join(env.dir, "bob.kubeconfig")
    p = Proxy(env.bob, kc, free_port()).wait_ready()
    try:
        r = kubectl(env, "get", "pods", kc=kc)
        assert r.returncode == 0 and b"shell" in r.stdout, r.stderr
        since = env.kube.audit_mark()
        r = kubectl(env, "exec", "shell", "--", "id", kc=kc)
        assert r.returncode != 0 and b"Forbidden" in r.stderr and b'"%s"' % BOB.encode() in r.stderr, r.stderr
        assert b"uid=" not in r.stdout
        env.kube.wait_audit(lambda ev: (ev.get("objectRef") or {}).get("subresource") == "exec", since)
        assert set(audited(env, "exec", since)) == {(AGENT_SA, BOB, 403)}
    finally:
        assert p.stop() == 0


def test_delete_removes_the_agent_pods(env):
    """Runs last: `az connectedk8s delete` removes the resource and the
    agent's namespace; the namespace controller deletes the pods and the
    kubelet stops their processes."""
    env.proxy.stop()
    env.admin.run("connectedk8s", "delete", "-n", env.name, "-g", env.rg, "--kube-config", env.kube.kubeconfig,
                  "--yes")
    deadline = time.time() + 90
    while True:
        r = env.kube.kubectl("get", "pods", "-n", "azure-arc", "-o", "name", check=False)
        left = r.stdout.split()
        running = [pid for pid in filter(str.isdigit, os.listdir("/proc")) if _is_agent(pid)]
        if not left and not running:
            break
        assert time.time() < deadline, (left, running)
        time.sleep(0.5)


def _is_agent(pid):
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            cmd = f.read().split(b"\0")
    except OSError:
        return False
    return cmd[0] == b"/usr/bin/clusterconnect-agent" and any(a.startswith(b"--hub=") for a in cmd)
