#!/usr/bin/env python3
"""The local sandbox (run through scripts/sandbox): arc-hub in development
mode, a real kube-apiserver from the pinned Kubernetes build, the
clusterconnect-agent listening on the hub, and `kubectl get pods -A`
through relay and agent as an impersonated user.

Until `az connectedk8s proxy` lands (issue 5), the local end is the test
fixture tests/relay_pipe.py, and the user's token comes from the test
issuer tests/issuer.py; the sandbox says so when it uses them.
With --keep it stays up (Ctrl+C stops everything); otherwise it exits
after the demonstration.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from conftest import BUILD, ROOT_KEY, start_hub, stop_hub  # noqa: E402
from issuer import TestIssuer  # noqa: E402
from kube import KubeCluster  # noqa: E402
from relay_pipe import RelayPipe  # noqa: E402

HC = "sandbox-cluster"


def say(msg):
    print("sandbox: " + msg, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="stay up until Ctrl+C")
    a = ap.parse_args()
    base = os.path.join(ROOT, ".sandbox")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(os.path.join(base, "hub"))
    started = []
    try:
        say("starting a real kube-apiserver (etcd, controller-manager) ...")
        kube = KubeCluster(os.path.join(base, "kube")).start()
        started.append(kube.stop)
        k = kube.kubectl
        k("apply", "-k", os.path.join(ROOT, "deploy", "agent"))  # namespace, RBAC, SA (the Deployment never runs here)
        token = k("create", "token", "clusterconnect-agent", "-n", "azure-arc", "--duration=24h").stdout.strip()
        agent_token = os.path.join(base, "agent.token")
        with open(agent_token, "w") as f:
            f.write(token)
        k("create", "clusterrolebinding", "sandbox-user-view", "--clusterrole=view", "--user=oid-sandbox-user")
        k("create", "clusterrole", "pod-reader", "--verb=get,list,watch", "--resource=pods")
        k("create", "clusterrolebinding", "sandbox-user-pods", "--clusterrole=pod-reader", "--user=oid-sandbox-user")
        for ns, pod in (("default", "web"), ("kube-system", "dns")):
            k("run", pod, "--image=nginx", "-n", ns)
        say("kube-apiserver %s on https://127.0.0.1:%d (pods are stored, never run: no kubelet)"
            % (k("version", "-o", "json").stdout.split('"gitVersion": "')[2].split('"')[0], kube.port))

        hub = start_hub(os.path.join(base, "hub"), config={
            "namespaceRules": [{"name": "RootManageSharedAccessKey", "key": ROOT_KEY,
                                "rights": ["Listen", "Send", "Manage"]}],
            "hybridConnections": [{"name": HC}]})
        started.append(lambda: stop_hub(hub))
        say("arc-hub relay on %s (CA %s)" % (hub.url(), hub.ca))

        issuer = TestIssuer(base)
        keyfile = os.path.join(base, "relay.key")
        with open(keyfile, "w") as f:
            f.write(ROOT_KEY)
        log = open(os.path.join(base, "agent.log"), "w")
        agent = subprocess.Popen([
            os.path.join(BUILD, "bin", "clusterconnect-agent"), "--relay", hub.url(), "--hybrid-connection", HC,
            "--key-name", "RootManageSharedAccessKey", "--key-file", keyfile, "--relay-ca", hub.ca,
            "--apiserver", "https://127.0.0.1:%d" % kube.port, "--apiserver-ca", os.path.join(kube.dir, "ca.pem"),
            "--token-file", agent_token, "--issuer", issuer.issuer, "--audience", issuer.audience,
            "--jwks-file", issuer.jwks_file, "--health-listen", "127.0.0.1:0"], stdout=log, stderr=subprocess.STDOUT)
        started.append(lambda: (agent.terminate(), agent.wait(10)))
        deadline = time.time() + 15
        while hub.metric("arc_relay_listeners") < 2:
            if time.time() > deadline or agent.poll() is not None:
                raise SystemExit("sandbox: the agent did not connect; see " + log.name)
            time.sleep(0.1)
        say("clusterconnect-agent connected to the relay with 2 listener channels (log %s)" % log.name)

        pipe = RelayPipe(hub, HC, hub.token(HC, name="RootManageSharedAccessKey"))
        started.append(pipe.close)
        user_token = issuer.mint("oid-sandbox-user", ttl=24 * 3600)
        kc = os.path.join(base, "user.kubeconfig")
        with open(kc, "w") as f:
            f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: %s\n  cluster: {server: 'https://127.0.0.1:%d', "
                    "certificate-authority: '%s'}\nusers:\n- name: oid-sandbox-user\n  user: {token: '%s'}\n"
                    "contexts:\n- name: %s\n  context: {cluster: %s, user: oid-sandbox-user}\ncurrent-context: %s\n"
                    % (HC, pipe.port, hub.ca, user_token, HC, HC, HC))
        say("local end: the relay_pipe TEST FIXTURE on https://127.0.0.1:%d stands in for "
            "`az connectedk8s proxy` (issue 5); the user token is from the test issuer" % pipe.port)
        say("kubectl get pods -A  (kubectl -> local end -> arc-hub -> agent -> kube-apiserver, as oid-sandbox-user)")
        r = subprocess.run([kube.kubectl_path, "--kubeconfig", kc, "get", "pods", "-A"], capture_output=True, text=True,
                           timeout=60)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        if r.returncode != 0:
            raise SystemExit(1)
        if a.keep:
            say("up; KUBECONFIG=%s kubectl ...   Press Ctrl+C to stop." % kc)
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        for stop in reversed(started):
            try:
                stop()
            except Exception:  # keep stopping the rest
                pass
        say("stopped everything it started")


if __name__ == "__main__":
    main()
