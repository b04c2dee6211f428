"""A real node for the test cluster (tests/kube.py): Debian's containerd
and runc with a configuration of our own, the CNI bridge and host-local
plugins from Debian's containernetworking-plugins, and a kubelet and
kube-scheduler built by scripts/kube-build at the pinned release. Pods run
from images built here (scripts/ociimage.py) and imported with `ctr`: a
pause image (tests/pause.c) as the sandbox image, a small busybox image
for test pods (TEST_IMAGE), and whatever else the caller imports (the
agent's). No registry is ever asked.

    node = KubeNode(cluster).start(); ...; node.stop()
    unavailable()  # None, or why this machine cannot run a node (tests skip with it)

Everything lives under the cluster's directory except what the kubelet,
containerd and the CNI plugins insist on creating on the host; stop()
removes those (/var/lib/kubelet, /var/lib/cni, /run/containerd, the
/var/log/containers links, the cni0 bridge, the pods' network namespaces,
the kubepods cgroups, the service rule) and puts back the sysctls the
kubelet changes (vm.overcommit_memory, kernel.panic, kernel.panic_on_oops).
A lock in /run/lock keeps a second node off this machine while one runs.

The node stands in for kube-proxy only for the API server's service
address: one nat OUTPUT rule sends 10.96.0.1:443 to the API server's
loopback port, so host-network pods (the agent) reach it the way every
in-cluster client does, from KUBERNETES_SERVICE_HOST.
"""
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time

from kube import ROOT, free_port, kube_bin

sys.path.insert(0, os.path.join(ROOT, "scripts"))
from ociimage import Image, full_ref  # noqa: E402

PAUSE_IMAGE = "connectedk8s.test/pause:1"
TEST_IMAGE = "connectedk8s.test/busybox:1"
CNI_BIN = "/usr/lib/cni"
SERVICE_IP = "10.96.0.1"
POD_SUBNET = "10.88.0.0/16"
BRIDGE = "cni0"
SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")
# Host paths the node's parts create whatever they are told; removed on
# stop when they were not there before.
HOST_PATHS = ("/var/lib/kubelet", "/var/lib/cni", "/run/containerd", "/var/log/containers", "/var/log/pods",
              "/opt/containerd", "/etc/cni")
LOCK = "/run/lock/connectedk8s-node.lock"


def unavailable():
    """Why this machine cannot run the test node, or None."""
    if os.geteuid() != 0:
        return "the test node needs root (containerd, runc, CNI, cgroups)"
    for exe in ("containerd", "ctr", "runc", "iptables", "ip", "cc"):
        if not shutil.which(exe):
            return "%s is not installed (Debian: scripts/install-deps installs containerd runc " \
                   "containernetworking-plugins busybox-static iptables)" % exe
    for plugin in ("bridge", "host-local", "loopback"):
        if not os.access(os.path.join(CNI_BIN, plugin), os.X_OK):
            return "CNI plugin %s/%s is missing (Debian: containernetworking-plugins)" % (CNI_BIN, plugin)
    if not os.path.exists("/bin/busybox") or not _static("/bin/busybox"):
        return "a static /bin/busybox is needed for the test image (Debian: busybox-static)"
    if not (os.path.isdir("/sys/fs/cgroup/memory") or os.path.exists("/sys/fs/cgroup/cgroup.controllers")):
        return "no memory cgroup controller on this machine"
    return None


def _static(path):
    r = subprocess.run(["ldd", path], capture_output=True, text=True)
    return r.returncode != 0 or "not a dynamic executable" in r.stdout + r.stderr


def build_pause_image(workdir, out):
    """The sandbox image: tests/pause.c, linked statically."""
    binary = os.path.join(workdir, "pause")
    with open(os.path.join(ROOT, "csrc", "warnings")) as f:
        warn = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    subprocess.run(["cc", *warn, "-Werror", "-O2", "-static", "-o", binary, os.path.join(ROOT, "tests", "pause.c")],
                   check=True, capture_output=True)
    img = Image()
    img.file("/pause", src=binary, mode=0o755)
    return img.write(out, PAUSE_IMAGE, entrypoint=["/pause"], user="65535:65535")


def build_test_image(out):
    """Busybox (static) with its applets linked in /bin, a root and a
    nobody user, and a writable /tmp: enough for exec, attach, logs, cp
    (tar) and a port-forward target (nc)."""
    img = Image()
    img.file("/bin/busybox", src=os.path.realpath("/bin/busybox"), mode=0o755)
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout.split()
    for a in applets:
        if a != "busybox":
            img.symlink("/bin/" + a, "busybox")
    img.file("/etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    img.file("/etc/group", data=b"root:x:0:\nnogroup:x:65534:\n")
    img.dir("/root", mode=0o700)
    img.dir("/tmp", mode=0o1777)
    return img.write(out, TEST_IMAGE, cmd=["sh"], env=("PATH=/bin",))


CONTAINERD_CONFIG = """version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # containerd would raise its children's oom_score_adj, which needs
  # CAP_SYS_RESOURCE: the VMs here lack it. Keep them at containerd's own.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{d}/net.d"
    max_conf_num = 1
"""

KUBELET_CONFIG = """apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: {port}
healthzBindAddress: 127.0.0.1
healthzPort: {healthz}
readOnlyPort: 0
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://{sock}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
  x509: {{clientCAFile: {ca}}}
authorization: {{mode: AlwaysAllow}}
failSwapOn: false
podLogsDir: {d}/pod-logs
resolvConf: /etc/resolv.conf
serializeImagePulls: false
# The test's disk is the machine's: do not evict pods because other work
# filled it, and never collect the imported images (nothing can pull them back).
evictionHard: {{memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
staticPodPath: ""
"""


class KubeNode:
    def __init__(self, cluster):
        self.cluster = cluster
        self.dir = os.path.join(cluster.dir, "node")
        self.procs = []
        self._undo = []
        self.name = socket.gethostname().lower()

    # -- helpers ------------------------------------------------------------
    def _spawn(self, name, args):
        log = open(os.path.join(self.dir, name + ".log"), "w")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, p))
        return p

    def log(self, name):
        with open(os.path.join(self.dir, name + ".log")) as f:
            return f.read()

    def ctr(self, *args, check=True, timeout=120):
        r = subprocess.run(["ctr", "--address", self.sock, "--namespace", "k8s.io", *args], capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("ctr %s failed: %s" % (" ".join(args), r.stderr))
        return r

    def import_image(self, archive):
        """Imports an image archive (OCI layout or docker-archive) into the
        node's containerd, where the kubelet finds it without pulling."""
        self.ctr("images", "import", archive)

    def images(self):
        return self.ctr("images", "ls", "-q").stdout.split()

    # -- lifecycle ----------------------------------------------------------
    def start(self, timeout=180):
        reason = unavailable()
        if reason:
            raise RuntimeError(reason)
        os.makedirs(self.dir, exist_ok=True)
        os.makedirs(os.path.dirname(LOCK), exist_ok=True)
        self.lock = open(LOCK, "w")
        deadline = time.time() + 600
        while True:  # another test run's node on this machine: wait for it to stop
            try:
                fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.time() > deadline:
                    raise RuntimeError("another test node held %s for 10 minutes" % LOCK)
                time.sleep(1)
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout):
        c, d = self.cluster, self.dir
        bindir = kube_bin()
        self.existed = {p for p in HOST_PATHS if os.path.lexists(p)}
        self.sysctls = {}
        for s in SYSCTLS:
            with open("/proc/sys/" + s) as f:
                self.sysctls[s] = f.read().strip()
        self.cgroups_before = set(self._kubepods_cgroups())
        self.netns_before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        cd = os.path.join(d, "containerd")
        os.makedirs(os.path.join(cd, "net.d"), exist_ok=True)
        self.sock = os.path.join(cd, "containerd.sock")
        with open(os.path.join(cd, "config.toml"), "w") as f:
            f.write(CONTAINERD_CONFIG.format(d=cd, pause=PAUSE_IMAGE, cni_bin=CNI_BIN))
        with open(os.path.join(cd, "net.d", "10-connectedk8s-test.conflist"), "w") as f:
            json.dump({"cniVersion": "0.4.0", "name": "connectedk8s-test", "plugins": [
                {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]], "routes": [{"dst": "0.0.0.0/0"}],
                          "dataDir": os.path.join(d, "ipam")}}]}, f)
        self._spawn("containerd", ["containerd", "--config", os.path.join(cd, "config.toml"), "--log-level", "warn"])
        deadline = time.time() + 30
        while self.ctr("version", check=False, timeout=10).returncode != 0:
            self._check_alive("containerd")
            if time.time() > deadline:
                raise RuntimeError("containerd did not answer:\n" + self.log("containerd")[-3000:])
            time.sleep(0.2)
        imgs = os.path.join(d, "images")
        os.makedirs(imgs, exist_ok=True)
        build_pause_image(imgs, os.path.join(imgs, "pause.tar"))
        build_test_image(os.path.join(imgs, "busybox.tar"))
        for t in ("pause.tar", "busybox.tar"):
            self.import_image(os.path.join(imgs, t))
        # The service address of the API server, as kube-proxy would route it.
        self.nat_rule = ["OUTPUT", "-d", SERVICE_IP, "-p", "tcp", "--dport", "443", "-j", "DNAT",
                         "--to-destination", "127.0.0.1:%d" % c.port, "-m", "comment", "--comment",
                         "connectedk8s-test-node"]
        subprocess.run(["iptables", "-t", "nat", "-A", *self.nat_rule], check=True, capture_output=True)
        self._undo.append(lambda: subprocess.run(["iptables", "-t", "nat", "-D", *self.nat_rule],
                                                 capture_output=True))
        self.port, self.healthz = free_port(), free_port()
        kcfg = os.path.join(d, "kubelet.yaml")
        with open(kcfg, "w") as f:
            f.write(KUBELET_CONFIG.format(port=self.port, healthz=self.healthz, sock=self.sock,
                                          ca=os.path.join(c.dir, "ca.pem"), d=d))
        os.makedirs(os.path.join(d, "pod-logs"), exist_ok=True)
        # No --node-ip: the kubelet refuses a loopback one, and finds the
        # node's address from its hostname itself.
        self._spawn("kubelet", [os.path.join(bindir, "kubelet"), "--config", kcfg, "--kubeconfig", c.kubeconfig,
                                "--root-dir", os.path.join(d, "kubelet"), "--v", "1"])
        self._spawn("kube-scheduler", [os.path.join(bindir, "kube-scheduler"), "--kubeconfig", c.kubeconfig,
                                       "--authentication-kubeconfig", c.kubeconfig,
                                       "--authorization-kubeconfig", c.kubeconfig,
                                       "--leader-elect=false", "--bind-address", "127.0.0.1",
                                       "--secure-port", str(free_port()), "--v", "1"])
        deadline = time.time() + timeout
        while True:
            r = c.kubectl("get", "node", self.name, "-o", "json", check=False)
            if r.returncode == 0:
                conds = {x["type"]: x["status"] for x in json.loads(r.stdout)["status"].get("conditions", [])}
                if conds.get("Ready") == "True":
                    break
            self._check_alive("containerd", "kubelet", "kube-scheduler")
            if time.time() > deadline:
                raise RuntimeError("node %s not Ready:\n%s\n%s" % (self.name, r.stdout[-2000:],
                                                                    self.log("kubelet")[-4000:]))
            time.sleep(0.5)
        # A pod may only be created once its namespace's default service account exists.
        deadline = time.time() + 30
        while c.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode != 0:
            assert time.time() < deadline, "no default service account"
            time.sleep(0.2)
        return self

    def _check_alive(self, *names):
        for name, p in self.procs:
            if name in names and p.poll() is not None:
                raise RuntimeError("%s exited:\n%s" % (name, self.log(name)[-3000:]))

    def run_pod(self, name, command, namespace="default", image=TEST_IMAGE, extra=None, timeout=120):
        """Creates a pod running `command` (a list) and waits until it is
        Running; returns its JSON."""
        spec = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                    {"name": "main", "image": image, "imagePullPolicy": "Never", "command": command,
                     **(extra or {})}]}}
        path = os.path.join(self.dir, "pod-%s.json" % name)
        with open(path, "w") as f:
            json.dump(spec, f)
        self.cluster.kubectl("apply", "-f", path)
        return self.wait_running(name, namespace, timeout)

    def wait_running(self, name, namespace="default", timeout=120):
        deadline = time.time() + timeout
        while True:
            pod = json.loads(self.cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout)
            if pod["status"].get("phase") == "Running" and all(
                    s.get("ready") for s in pod["status"].get("containerStatuses", [{}])):
                return pod
            if time.time() > deadline:
                raise AssertionError("pod %s/%s not running: %s\n%s" % (
                    namespace, name, json.dumps(pod["status"])[-2000:], self.log("kubelet")[-3000:]))
            time.sleep(0.3)

    # -- teardown -----------------------------------------------------------
    def _kubepods_cgroups(self):
        out = []
        for root in ("/sys/fs/cgroup",) + tuple(
                os.path.join("/sys/fs/cgroup", h) for h in sorted(os.listdir("/sys/fs/cgroup"))):
            p = os.path.join(root, "kubepods")
            if os.path.isdir(p) and not os.path.islink(root):
                out.append(p)
        return out

    def _stop_pods(self):
        """Kills every container and sandbox the kubelet started (their
        processes are runc's children, not ours), then their shims."""
        r = self.ctr("tasks", "ls", "-q", check=False, timeout=30)
        for task in r.stdout.split():
            self.ctr("tasks", "kill", "-s", "SIGKILL", "--all", task, check=False, timeout=30)
        deadline = time.time() + 20
        for task in r.stdout.split():
            while time.time() < deadline and self.ctr("tasks", "delete", task, check=False, timeout=30).returncode:
                time.sleep(0.2)
        for cid in self.ctr("containers", "ls", "-q", check=False, timeout=30).stdout.split():
            self.ctr("containers", "delete", cid, check=False, timeout=30)

    def _shims(self):
        """containerd-shim processes serving this node's containerd."""
        out = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"containerd-shim-runc-v2") and self.sock.encode() in cmd:
                out.append(int(pid))
        return out

    def _unmount_under(self, prefixes):
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        for mp in sorted({p for p in points if p.startswith(prefixes)}, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True)

    def stop(self):
        """Stops what start() started and undoes every host change it made;
        safe to call after a failed start."""
        procs = dict(self.procs)
        for name in ("kube-scheduler", "kubelet"):  # no new pods while containers go
            p = procs.get(name)
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if getattr(self, "sock", None) and procs.get("containerd") and procs["containerd"].poll() is None:
            try:
                self._stop_pods()
            except Exception:  # keep cleaning up
                pass
            p = procs["containerd"]
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if getattr(self, "sock", None):
            for pid in self._shims():
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        self.procs = []
        for undo in reversed(self._undo):
            undo()
        self._undo = []
        if not hasattr(self, "existed"):
            return self._unlock()
        netns_before = getattr(self, "netns_before", set())
        self._unmount_under((self.dir + "/", "/run/netns/cni-", "/var/run/netns/cni-", "/var/lib/kubelet",
                             "/run/containerd"))
        for ns in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else []):
            if ns.startswith("cni-") and ns not in netns_before:
                try:
                    os.unlink(os.path.join("/run/netns", ns))
                except OSError:
                    pass
        subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True)
        for cg in self._kubepods_cgroups():
            if cg in self.cgroups_before:
                continue
            for dirpath, _, _ in sorted(os.walk(cg), key=lambda w: len(w[0]), reverse=True):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass
        for path in HOST_PATHS:
            if path not in self.existed and os.path.lexists(path):
                shutil.rmtree(path, ignore_errors=True)
        for s, v in self.sysctls.items():
            with open("/proc/sys/" + s, "w") as f:
                f.write(v)
        self._unlock()

    def _unlock(self):
        lock = getattr(self, "lock", None)
        if lock:
            lock.close()
            self.lock = None

    def host_leftovers(self):
        """What stop() should have removed and is still there (for tests)."""
        left = [p for p in HOST_PATHS if p not in self.existed and os.path.lexists(p)]
        if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode == 0:
            left.append("link " + BRIDGE)
        left += [cg for cg in self._kubepods_cgroups() if cg not in self.cgroups_before]
        for s, v in self.sysctls.items():
            with open("/proc/sys/" + s) as f:
                if f.read().strip() != v:
                    left.append("sysctl %s" % s)
        if "connectedk8s-test-node" in subprocess.run(["iptables", "-t", "nat", "-S", "OUTPUT"], capture_output=True,
                                                      text=True).stdout:
            left.append("iptables nat rule")
        left += ["shim %d" % pid for pid in self._shims()]
        return left


__all__ = ["KubeNode", "unavailable", "TEST_IMAGE", "PAUSE_IMAGE", "full_ref"]
