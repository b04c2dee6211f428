#!/usr/bin/env python3
"""The local sandbox (run through scripts/sandbox): arc-hub in development
mode (relay, control plane and demo identity issuer), a real
kube-apiserver from the pinned Kubernetes build, the clusterconnect-agent
listening on the hub, the real az with this project's extension installed
from its wheel, `az connectedk8s proxy`, and then `kubectl get pods -A`
through proxy, relay and agent as the signed-in identity.

With --keep it stays up (Ctrl+C stops everything); otherwise it exits
after the demonstration.
"""
import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from conftest import BUILD, ROOT_KEY, start_hub, stop_hub  # noqa: E402
from azcli import Az  # noqa: E402
from kube import KubeCluster  # noqa: E402


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
        k("create", "clusterrole", "pod-reader", "--verb=get,list,watch", "--resource=pods")
        for ns, pod in (("default", "web"), ("kube-system", "dns")):
            k("run", pod, "--image=nginx", "-n", ns)
        say("kube-apiserver %s on https://127.0.0.1:%d (pods are stored, never run: no kubelet)"
            % (k("version", "-o", "json").stdout.split('"gitVersion": "')[2].split('"')[0], kube.port))

        hub = start_hub(os.path.join(base, "hub"), config={
            "namespaceRules": [{"name": "RootManageSharedAccessKey", "key": ROOT_KEY,
                                "rights": ["Listen", "Send", "Manage"]}],
            "hybridConnections": []})
        started.append(lambda: stop_hub(hub))
        say("arc-hub on https://127.0.0.1:%d: relay, ARM control plane, demo issuer (CA %s)" % (hub.port, hub.ca))

        directory = json.load(open(os.path.join(base, "hub", "directory.json")))
        admin = directory["principals"][0]
        az = Az(hub)
        started.append(az.close)
        az.env["AZURE_EXTENSION_DIR"] = os.path.join(base, "az-extensions")
        wheel = max(glob.glob(os.path.join(ROOT, "dist", "connectedk8s-*.whl")), key=os.path.getmtime)
        az.run("extension", "add", "--source", wheel, "--yes")
        az.login_sp(admin["appId"], admin["secret"], directory["tenantId"])
        say("az %s signed in offline as service principal %s; extension installed from %s"
            % (json.loads(az.run("version", "-o", "json").stdout)["azure-cli"], admin["name"], os.path.basename(wheel)))
        k("create", "clusterrolebinding", "sandbox-admin-view", "--clusterrole=view", "--user=" + admin["objectId"])
        k("create", "clusterrolebinding", "sandbox-admin-pods", "--clusterrole=pod-reader", "--user=" + admin["objectId"])

        sub = directory["subscriptions"][0]["subscriptionId"]
        cid = "/subscriptions/%s/resourceGroups/sandbox-rg/providers/Microsoft.Kubernetes/connectedClusters/sandbox" % sub
        # `az connectedk8s connect` is not built yet: the resource is created
        # through ARM directly, and the agent started by hand below.
        az.rest("put", cid, {"location": "local", "properties": {"agentPublicKeyCertificate": "sandbox"}})
        hc = json.loads(az.rest("post", cid + "/listClusterUserCredential", {}).stdout)[
            "hybridConnectionConfig"]["hybridConnectionName"]
        say("connectedCluster sandbox-rg/sandbox created (hybrid connection %s)" % hc)

        keyfile = os.path.join(base, "relay.key")
        with open(keyfile, "w") as f:
            f.write(ROOT_KEY)
        issuer = json.loads(hub.get("/adfs/.well-known/openid-configuration")[1])["issuer"]
        log = open(os.path.join(base, "agent.log"), "w")
        agent = subprocess.Popen([
            os.path.join(BUILD, "bin", "clusterconnect-agent"), "--relay", hub.url(), "--hybrid-connection", hc,
            "--key-name", "RootManageSharedAccessKey", "--key-file", keyfile, "--relay-ca", hub.ca,
            "--apiserver", "https://127.0.0.1:%d" % kube.port, "--apiserver-ca", os.path.join(kube.dir, "ca.pem"),
            "--token-file", agent_token, "--issuer", issuer, "--audience", "6256c85f-0aad-4d50-b960-e6e9b21efe35",
            "--jwks-file", os.path.join(base, "hub", "jwks.json"), "--health-listen", "127.0.0.1:0"],
            stdout=log, stderr=subprocess.STDOUT)
        started.append(lambda: (agent.terminate(), agent.wait(10)))
        deadline = time.time() + 15
        while hub.metric("arc_relay_listeners") < 2:
            if time.time() > deadline or agent.poll() is not None:
                raise SystemExit("sandbox: the agent did not connect; see " + log.name)
            time.sleep(0.1)
        say("clusterconnect-agent connected to the relay with 2 listener channels (log %s)" % log.name)

        kc = os.path.join(base, "kubeconfig")
        say("az connectedk8s proxy -n sandbox -g sandbox-rg -f %s" % kc)
        penv = dict(az.env)
        proxy_out = open(os.path.join(base, "proxy.out"), "w")
        proxy = subprocess.Popen([az.az, "connectedk8s", "proxy", "-n", "sandbox", "-g", "sandbox-rg", "-f", kc],
                                 env=penv, stdout=proxy_out, stderr=subprocess.STDOUT)

        def stop_proxy():
            if proxy.poll() is None:
                proxy.send_signal(signal.SIGINT)
                proxy.wait(20)
            sys.stdout.write("".join("  | " + l for l in open(proxy_out.name).readlines()[-1:]))
        started.append(stop_proxy)
        deadline = time.time() + 60
        while "Press Ctrl+C" not in open(proxy_out.name).read():
            if time.time() > deadline or proxy.poll() is not None:
                raise SystemExit("sandbox: the proxy did not start:\n" + open(proxy_out.name).read())
            time.sleep(0.05)
        sys.stdout.write("".join("  | " + l for l in open(proxy_out.name).readlines()))
        say("kubectl get pods -A  (kubectl -> az proxy -> arc-hub -> agent -> kube-apiserver, as %s)" % admin["name"])
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
