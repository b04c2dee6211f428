#!/usr/bin/env python3
"""The local sandbox (run through scripts/sandbox): arc-hub in development
mode (relay, control plane and demo identity issuer), a real
kube-apiserver from the pinned Kubernetes build with a real node
(tests/node.py: kubelet, containerd) where the machine can run one,
clusterconnect-agent listening on the hub (as the two pods `az connectedk8s
connect` deploys from the image scripts/agent-image builds; without a node,
as a local process), the real az
signed in offline with this project's extension installed from its wheel,
`az connectedk8s proxy`, and then `kubectl get pods -A` through proxy,
relay and agent as the signed-in identity. A demo user (a person, in its
own az profile) is signed in too, with `az login -u UPN -p PASSWORD`
against the hub's demo issuer, bound by its UPN to the `view` ClusterRole
and holding the Cluster User Role on the cluster, so the walkthrough's
user steps can be typed as that person.

With --keep it stays up (Ctrl+C stops everything); otherwise it exits
after the demonstration.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from arcenv import ArcEnv, Proxy  # noqa: E402
from kube import free_port  # noqa: E402
from node import TEST_IMAGE, unavailable  # noqa: E402


def say(msg):
    print("sandbox: " + msg, flush=True)


def stop_on_term(signum, frame):
    raise KeyboardInterrupt


def keep_banner(env, kc, user_az, upn):
    """What to paste into another shell to type the walkthrough by hand
    against this sandbox: the same az profiles, kubeconfig and CA."""
    lines = [
        "export AZURE_CONFIG_DIR=%s" % env.admin.dir,
        "export AZURE_EXTENSION_DIR=%s   # this extension, installed from its wheel" % env.ext_dir,
        "export KUBECONFIG=%s" % kc,
        "export REQUESTS_CA_BUNDLE=%s" % env.hub.ca,
        "export AZURE_CORE_COLLECT_TELEMETRY=false",
        "export CLUSTER_NAME=%s RESOURCE_GROUP=%s" % (env.name, env.rg),
        "export PATH=%s:$PATH   # the pinned kubectl" % os.path.dirname(env.kube.kubectl_path),
        "export DEMO_USER=%s   # a person, signed in with az login -u in the profile below" % upn,
        "export DEMO_USER_AZURE_CONFIG_DIR=%s" % user_az.dir,
    ]
    return ("sandbox: up. In another shell, paste:\n\n" + "".join("    %s\n" % l for l in lines) +
            "\nthen for example:\n\n"
            "    az connectedk8s show -n $CLUSTER_NAME -g $RESOURCE_GROUP -o table\n"
            "    kubectl get pods -A          # through the proxy this sandbox runs\n"
            "    AZURE_CONFIG_DIR=$DEMO_USER_AZURE_CONFIG_DIR az ad signed-in-user show --query userPrincipalName -o tsv\n\n"
            "sandbox: press Ctrl+C here to stop everything.")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="stay up until Ctrl+C")
    a = ap.parse_args()
    # Ctrl+C and SIGTERM both stop everything it started (a shell that
    # started us in the background may have left SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop_on_term)
    base = os.path.join(ROOT, ".sandbox")
    shutil.rmtree(base, ignore_errors=True)
    no_node = unavailable()
    env = ArcEnv(base, rg="sandbox-rg", name="sandbox", node=not no_node)
    proxy = None
    try:
        say("starting a real kube-apiserver, arc-hub and clusterconnect-agent; signing az in offline ...")
        env.start()
        k = env.kube.kubectl
        for ns, pod in (("default", "web"), ("kube-system", "dns")):  # the node's own image: nothing is pulled
            k("run", pod, "--image=" + TEST_IMAGE, "--image-pull-policy=Never", "-n", ns, "--command", "--",
              "sleep", "86400")
        admin = env.directory["principals"][0]
        k("create", "clusterrolebinding", "sandbox-admin-view", "--clusterrole=view", "--user=" + admin["objectId"])
        k("create", "clusterrolebinding", "sandbox-admin-pods", "--clusterrole=pod-reader",
          "--user=" + admin["objectId"])
        # The demo user: a role at the cluster only (as Azure's docs set a
        # user up), Reader on the group to see it, bound by UPN in Kubernetes.
        user = next(p for p in env.directory["principals"] if p["type"] == "User")
        env.grant(user["objectId"])
        env.grant(user["objectId"], role="acdd72a7-3385-48ef-bd42-f606fba81ae7",
                  scope="/subscriptions/%s/resourceGroups/%s" % (env.ids["sub"], env.rg))
        k("create", "clusterrolebinding", "sandbox-user-view", "--clusterrole=view", "--user=" + user["name"])
        user_az = env.az()
        user_az.login_user(user["name"], user["password"])
        version = json.loads(k("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
        say("kube-apiserver %s on https://127.0.0.1:%d, %s" % (version, env.kube.port, (
            "pods stored, never run (no node: %s)" % no_node) if no_node else "one node: kubelet and containerd"))
        say("arc-hub on https://127.0.0.1:%d: relay, ARM control plane, demo issuer (CA %s)"
            % (env.hub.port, env.hub.ca))
        say("az %s signed in as service principal %s; az connectedk8s connect created %s"
            % (json.loads(env.admin.run("version", "-o", "json").stdout)["azure-cli"], admin["name"], env.cid))
        say("demo user %s signed in with az login -u (the hub's demo issuer; profile %s)"
            % (user["name"], user_az.dir))
        if no_node:
            say("az connectedk8s connect installed the agent (server-side apply); with no node here it runs as a "
                "local process with the identity connect left in the cluster (log %s)" % env.agent_log)
        else:
            say("az connectedk8s connect deployed the agent: 2 pods from %s (%s), imported, not pulled"
                % (env.agent_image_ref, env.agent_image_digest))
        kc = os.path.join(base, "kubeconfig")
        say("az connectedk8s proxy -n sandbox -g sandbox-rg   (KUBECONFIG=%s)" % kc)
        proxy = Proxy(env.admin, kc, free_port(), rg="sandbox-rg", name="sandbox").wait_ready()
        sys.stdout.write("".join("  | " + line for line in proxy.text().splitlines(True)))
        say("kubectl get pods -A  (kubectl -> az proxy -> arc-hub -> agent -> kube-apiserver, as %s)"
            % admin["name"])
        r = subprocess.run([env.kube.kubectl_path, "--kubeconfig", kc, "get", "pods", "-A"], capture_output=True,
                           text=True, timeout=60)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        if r.returncode != 0:
            raise SystemExit(1)
        if a.keep:
            print(keep_banner(env, kc, user_az, user["name"]), flush=True)
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        if proxy:
            proxy.stop()
            say("proxy: " + proxy.text().strip().splitlines()[-1])
        env.stop()
        say("stopped everything it started")


if __name__ == "__main__":
    main()
