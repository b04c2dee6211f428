"""The whole system on loopback, as the proxy tests, the sandbox and the
benchmarks need it: a real kube-apiserver, arc-hub (relay, control plane,
demo issuer), the real az signed in with this extension installed from
its wheel, one connectedCluster and clusterconnect-agent listening for it.

The cluster is connected with `az connectedk8s connect`. With node=True
the cluster gets a real node (tests/node.py) and the agent runs as
`connect` deploys it: two replicas of the image scripts/agent-image builds,
imported into the node's containerd, in the node's network (the API
server and the hub listen on loopback here). Without a node the agent
`connect` installs runs as a local process with the identity connect left
in the cluster (as the systemd deployment runs it)."""
import glob
import importlib.machinery
import importlib.util
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.request
import uuid

from azcli import Az, dev_directory
from conftest import BUILD, ROOT, start_hub, stop_hub
from kube import KubeCluster

AGENT_AUDIENCE = "6256c85f-0aad-4d50-b960-e6e9b21efe35"
CLUSTER_USER_ROLE = "00493d72-78f6-4148-b6c5-d3ce8e4799dd"
def load_agent_image():
    """scripts/agent-image as a module (its build() and VERSION)."""
    path = os.path.join(ROOT, "scripts", "agent-image")
    loader = importlib.machinery.SourceFileLoader("agent_image", path)
    spec = importlib.util.spec_from_loader("agent_image", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


class ArcEnv:
    def __init__(self, workdir, cred_ttl=3600, hub_args=(), az=None, rg="rg1", name="c1", register=True, audit=False,
                 n_groups_carol=3, agent_args=(), node=False):
        """register=False stops after signing az in: no resource, no agent
        (for `az connectedk8s connect` to make them). audit=True gives the
        kube-apiserver an audit log (KubeCluster.audit_events).
        n_groups_carol: carol's groups (over 200: the hub's tokens carry
        the overage marker); agent_args go on the agent's command line."""
        self.dir, self.cred_ttl, self.hub_args, self.az_path = workdir, cred_ttl, list(hub_args), az
        self.audit = audit
        self.n_groups_carol, self.agent_args = n_groups_carol, list(agent_args)
        self.node = node
        self.agent_pods = node
        self.rg, self.name, self.register = rg, name, register
        self._stops = []

    def start(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.kube = k = KubeCluster(os.path.join(self.dir, "kube"), audit=self.audit).start()
        self._stops.append(k.stop)
        if self.node:
            from node import KubeNode
            self.node = KubeNode(k).start()
            self._stops.append(self.node.stop)
            agent_image = load_agent_image()
            self.agent_image_ref = "connectedk8s.test/clusterconnect-agent:" + agent_image.VERSION
            archive, self.agent_image_digest = agent_image.build(
                self.agent_image_ref, os.path.join(self.node.dir, "images", "agent.tar"), make=False)
            self.node.import_image(archive)
            self.agent_image_archive = archive
        if not self.node:
            # The project's own manifests: namespace, impersonation-only RBAC
            # and the service account, whose token a local agent uses (the
            # Deployment never runs: no node). With a node, connect's own
            # objects are all there is.
            k.kubectl("apply", "-k", os.path.join(ROOT, "deploy", "agent"))
            self.agent_token = os.path.join(self.dir, "agent.token")
            with open(self.agent_token, "w") as f:
                f.write(k.kubectl("create", "token", "clusterconnect-agent", "-n", "azure-arc",
                                  "--duration=24h").stdout.strip())
        k.kubectl("create", "clusterrole", "pod-reader", "--verb=get,list,watch", "--resource=pods")

        hubdir = os.path.join(self.dir, "hub")
        os.makedirs(hubdir, exist_ok=True)
        self.ids, self.directory = dev_directory(n_groups_carol=self.n_groups_carol)
        with open(os.path.join(hubdir, "directory.json"), "w") as f:
            json.dump(self.directory, f)
        self.hub = start_hub(hubdir, ["--ping-interval", "1", "--credential-ttl", str(self.cred_ttl),
                                      *self.hub_args], config={
            # No shared relay key: registered agents get Listen tokens from the hub.
            "namespaceRules": [], "hybridConnections": []})
        self._stops.append(lambda: stop_hub(self.hub))

        self.ext_dir = os.path.join(self.dir, "az-extensions")
        self.admin = self.az()
        wheel = max(glob.glob(os.path.join(ROOT, "dist", "connectedk8s-*.whl")), key=os.path.getmtime)
        self.admin.run("extension", "add", "--source", wheel, "--yes")
        self.admin.login_sp(self.ids["admin_app"], self.directory["principals"][0]["secret"], self.ids["tenant"])
        if not self.register:
            return
        self.cid = "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Kubernetes/connectedClusters/%s" % (
            self.ids["sub"], self.rg, self.name)
        self.connect()

    def connect(self):
        """`az connectedk8s connect` as a user runs it; the agent it installs
        runs on the node, or is started here from the identity it left in
        the cluster."""
        if self.agent_pods:
            return self._connect_pods()
        out_path = os.path.join(self.dir, "connect.out")
        with open(out_path, "w") as out:
            p = subprocess.Popen([self.admin.az, "connectedk8s", "connect", "-n", self.name, "-g", self.rg,
                                  "--kube-config", self.kube.kubeconfig, "--timeout", "120", "-o", "none"],
                                 env=self.admin.env, stdout=out, stderr=subprocess.STDOUT)
            deadline = time.time() + 60
            while self.kube.kubectl("get", "secret", "clusterconnect-identity", "-n", "azure-arc",
                                    check=False).returncode != 0:
                if p.poll() is not None or time.time() > deadline:
                    raise RuntimeError("connect did not install the agent:\n" + open(out_path).read())
                time.sleep(0.2)
            self.agent = self.start_registered_agent()
            self.agent_log = self.agent.log_path
            if p.wait(150) != 0:
                raise RuntimeError("connect failed:\n" + open(out_path).read() + open(self.agent_log).read())
        self.hc = json.loads(self.admin.rest("post", self.cid + "/listClusterUserCredential", {}).stdout)[
            "hybridConnectionConfig"]["hybridConnectionName"]
        deadline = time.time() + 15
        while self.hub.metric("arc_relay_listeners") < 2:
            if time.time() > deadline or self.agent.poll() is not None:
                raise RuntimeError("the agent did not listen:\n" + open(self.agent_log).read())
            time.sleep(0.1)

    def _connect_pods(self):
        out_path = os.path.join(self.dir, "connect.out")
        with open(out_path, "w") as out:
            r = subprocess.run([self.admin.az, "connectedk8s", "connect", "-n", self.name, "-g", self.rg,
                                "--kube-config", self.kube.kubeconfig, "--timeout", "120", "-o", "none",
                                "--agent-image", self.agent_image_ref, "--agent-host-network"],
                               env=self.admin.env, stdout=out, stderr=subprocess.STDOUT, timeout=200)
        if r.returncode != 0:
            raise RuntimeError("connect failed:\n%s\n%s" % (open(out_path).read(), self.agent_pod_logs()))
        self.agent = None
        self.hc = json.loads(self.admin.rest("post", self.cid + "/listClusterUserCredential", {}).stdout)[
            "hybridConnectionConfig"]["hybridConnectionName"]
        deadline = time.time() + 60
        while self.hub.metric("arc_relay_listeners") < 2 * 2:  # two replicas, two channels each
            if time.time() > deadline:
                raise RuntimeError("the agent pods did not listen:\n" + self.agent_pod_logs())
            time.sleep(0.2)

    def agent_pods_json(self):
        return json.loads(self.kube.kubectl("get", "pods", "-n", "azure-arc", "-l", "app=clusterconnect-agent",
                                            "-o", "json").stdout)["items"]

    def agent_pod_logs(self):
        """Every agent replica's log (kubectl logs through the kubelet)."""
        out = []
        for pod in self.agent_pods_json():
            name = pod["metadata"]["name"]
            r = self.kube.kubectl("logs", "-n", "azure-arc", name, check=False)
            out.append("== %s (%s)\n%s%s" % (name, pod["status"].get("phase"), r.stdout, r.stderr))
        return "\n".join(out)

    def start_registered_agent(self, log_name="agent-registered.log"):
        """Runs the agent as `az connectedk8s connect` installed it, but as a
        local process (no kubelet here): identity and settings are read back
        from the Secret and ConfigMap connect applied. Returns the Popen."""
        k = self.kube
        cfg = json.loads(k.kubectl("get", "configmap", "clusterconnect-config", "-n", "azure-arc", "-o", "json").stdout)
        sec = json.loads(k.kubectl("get", "secret", "clusterconnect-identity", "-n", "azure-arc", "-o", "json").stdout)
        import base64
        key = os.path.join(self.dir, "identity.key")
        with open(key, "wb") as f:
            f.write(base64.b64decode(sec["data"]["key.pem"]))
        os.chmod(key, 0o600)
        args = [os.path.join(BUILD, "bin", "clusterconnect-agent"), "--hub", cfg["data"]["hub"],
                "--resource-id", cfg["data"]["resourceId"], "--identity-key", key,
                "--apiserver", "https://127.0.0.1:%d" % k.port, "--apiserver-ca", os.path.join(k.dir, "ca.pem"),
                "--token-file", self.agent_token, "--ping-interval", "1", "--health-listen", "127.0.0.1:0"]
        # Who the API server sees, as the Deployment's env expands from the ConfigMap.
        args += ["--username-claim", cfg["data"].get("usernameClaim", "upn"),
                 "--username-prefix", cfg["data"].get("usernamePrefix", ""),
                 "--groups-prefix", cfg["data"].get("groupsPrefix", "")]
        args += [a.format(dir=self.dir) for a in self.agent_args]
        if "hub-ca.pem" in sec["data"]:
            ca = os.path.join(self.dir, "identity-hub-ca.pem")
            with open(ca, "wb") as f:
                f.write(base64.b64decode(sec["data"]["hub-ca.pem"]))
            args += ["--relay-ca", ca]
        log = open(os.path.join(self.dir, log_name), "w")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self._stops.append(lambda: (p.terminate(), p.wait(10)))
        p.log_path = log.name
        return p

    def issuer(self):
        ctx = ssl.create_default_context(cafile=self.hub.ca)
        with urllib.request.urlopen("https://127.0.0.1:%d/adfs/.well-known/openid-configuration" % self.hub.port,
                                    context=ctx, timeout=5) as r:
            return json.loads(r.read())["issuer"]

    def az(self):
        """A fresh az profile with the extension directory shared."""
        a = Az(self.hub, **({"az": self.az_path} if self.az_path else {}))
        a.env["AZURE_EXTENSION_DIR"] = self.ext_dir
        self._stops.append(a.close)
        return a

    def grant(self, principal, role=CLUSTER_USER_ROLE, scope=None):
        """Assigns a role; returns the assignment's path for revoking it."""
        path = (scope or self.cid) + "/providers/Microsoft.Authorization/roleAssignments/%s" % uuid.uuid4()
        self.admin.rest("put", path, {"properties": {"roleDefinitionId": role, "principalId": principal}},
                        api="2022-04-01")
        return path

    def stop(self):
        for s in reversed(self._stops):
            try:
                s()
            except Exception:  # keep stopping the rest
                pass
        self._stops = []


class Proxy:
    """`az connectedk8s proxy` as a user runs it, in the background."""

    def __init__(self, az, kubeconfig, port, *extra, verbose=False, rg="rg1", name="c1"):
        self.port, self.kubeconfig = port, kubeconfig
        env = dict(az.env)
        env["KUBECONFIG"] = kubeconfig
        self.out_path = kubeconfig + ".proxy.out"
        self.out = open(self.out_path, "w")
        self.started = time.time()
        self.proc = subprocess.Popen([az.az, "connectedk8s", "proxy", "-n", name, "-g", rg, "--port", str(port),
                                      *extra, *(["--verbose"] if verbose else [])],
                                     env=env, stdout=self.out, stderr=subprocess.STDOUT)

    def text(self):
        with open(self.out_path) as f:
            return f.read()

    def wait_ready(self, timeout=60, poll=0.05):
        deadline = time.time() + timeout
        while "Proxy is listening on port %d" % self.port not in self.text():
            assert self.proc.poll() is None, "proxy exited:\n" + self.text()
            assert time.time() < deadline, "proxy not ready:\n" + self.text()
            time.sleep(poll)
        return self

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(20)
        self.out.close()
        return self.proc.returncode
