"""The latency azure-rbac adds to each request, before and after the hot
path was reworked (issue 13).

Before: every impersonated request opened a new TLS connection to the hub
and signed a fresh RSA JWT for the checkaccess call. After: libcurl keeps
the connection to the hub, the agent JWT is reused for its lifetime, and
decisions are cached for --authz-cache-ttl seconds (default 10).

The whole system runs on loopback (tests/arcenv.py: real kube-apiserver,
arc-hub, the real az, `az connectedk8s proxy`); requests are GETs of
/api/v1/namespaces/default/pods sent over one kept-alive connection to the
local proxy, so what differs between the rows is the agent alone:

  rbac off           the agent without azure-rbac (the baseline)
  before             the agent built from --before (a source tree or a
                     binary) with azure-rbac on
  after, no cache    this tree's agent, --authz-cache-ttl 0
  after              this tree's agent, default cache

Usage: .cache/venv/bin/python bench/authz_bench.py [--before PATH] [-n 200]
Prints a table of median and p90 per request and the median added over
the baseline."""
import argparse
import http.client
import json
import os
import shutil
import ssl
import statistics
import sys
import tempfile
import time
import base64

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import yaml  # noqa: E402

from agentproc import Agent, wait_for  # noqa: E402
from arcenv import ArcEnv, Proxy  # noqa: E402
from kube import free_port  # noqa: E402

VIEWER = "63f0a09d-1495-4db4-a681-037d84835eb4"


def client(kc, port):
    """An HTTPS connection to the local proxy with the kubeconfig's
    client certificate."""
    doc = yaml.safe_load(open(kc))
    ctx_name = doc["current-context"]
    ctx = [c for c in doc["contexts"] if c["name"] == ctx_name][0]["context"]
    user = [u for u in doc["users"] if u["name"] == ctx["user"]][0]["user"]
    cluster = [c for c in doc["clusters"] if c["name"] == ctx["cluster"]][0]["cluster"]
    d = tempfile.mkdtemp(prefix="ck-bench-cert-")
    paths = {}
    for k, field in (("ca", cluster["certificate-authority-data"]), ("crt", user["client-certificate-data"]),
                     ("key", user["client-key-data"])):
        paths[k] = os.path.join(d, k)
        with open(paths[k], "wb") as f:
            f.write(base64.b64decode(field))
    sc = ssl.create_default_context(cafile=paths["ca"])
    sc.load_cert_chain(paths["crt"], paths["key"])
    return http.client.HTTPSConnection("127.0.0.1", port, context=sc, timeout=30)


def measure(conn, n):
    times = []
    for i in range(n + 5):
        t0 = time.perf_counter()
        conn.request("GET", "/api/v1/namespaces/default/pods?limit=1")
        r = conn.getresponse()
        body = r.read()
        dt = time.perf_counter() - t0
        if r.status != 200:
            raise RuntimeError("HTTP %d: %s" % (r.status, body[:300]))
        if i >= 5:  # warm-up: the first requests open the rendezvous and fill caches
            times.append(dt * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9)]


def build_before(path):
    if os.path.isfile(path):
        return path
    binary = os.path.join(path, "build", "bin", "clusterconnect-agent")
    if not os.path.exists(binary):
        raise SystemExit("build the old agent first: make -C %s build/bin/clusterconnect-agent" % path)
    return binary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", help="source tree (built) or binary of the agent before the change")
    ap.add_argument("-n", type=int, default=200)
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="ck-authz-bench-")
    e = ArcEnv(d).start()
    e.stops = []
    rows = []
    try:
        k = e.kube
        k.kubectl("run", "web", "--image=nginx", "-n", "default")
        k.kubectl("create", "clusterrolebinding", "alice-reads", "--clusterrole=pod-reader",
                  "--user=alice@example.test")
        e.agent.terminate()
        e.agent.wait(10)
        wait_for(lambda: e.hub.metric("arc_relay_listeners") == 0, "the connect agent to leave")
        cm = json.loads(k.kubectl("get", "configmap", "clusterconnect-config", "-n", "azure-arc", "-o",
                                  "json").stdout)
        e.agent_hub, e.agent_rid = cm["data"]["hub"], cm["data"]["resourceId"]
        e.grant(e.ids["alice"])
        e.grant(e.ids["alice"], role=VIEWER, scope=e.cid)
        alice = e.az()
        alice.login_msi(e.ids["alice"])
        variants = [("rbac off", None, ()), ("after, no cache", None, ("--authz-cache-ttl", "0")),
                    ("after", None, ())]
        if args.before:
            variants.insert(1, ("before", build_before(args.before), ()))
        rbac_on = False
        for label, binary, extra in variants:
            want_rbac = label != "rbac off"
            if want_rbac and not rbac_on:
                e.admin.run("connectedk8s", "enable-features", "-n", e.name, "-g", e.rg, "--features", "azure-rbac",
                            "--kube-config", k.kubeconfig)
                rbac_on = True
            a = Agent(e, label.replace(" ", "-").replace(",", ""), *extra, binary=binary)
            wait_for(lambda: e.hub.metric("arc_relay_listeners") >= 2, "channels of " + label, on_fail=a.text)
            if want_rbac:
                wait_for(lambda: '"azure-rbac":"on"' in a.text(), "azure-rbac on in " + label, on_fail=a.text)
            kc = os.path.join(d, "kc-" + label.replace(" ", "-").replace(",", ""))
            port = free_port()
            p = Proxy(alice, kc, port).wait_ready()
            try:
                conn = client(kc, port)
                med, p90 = measure(conn, args.n)
                conn.close()
            finally:
                p.stop()
            rows.append((label, med, p90))
            a.stop()
            wait_for(lambda: e.hub.metric("arc_relay_listeners") == 0, label + " to leave")
    finally:
        for s in reversed(e.stops):
            try:
                s()
            except Exception:
                pass
        e.stop()
        shutil.rmtree(d, ignore_errors=True)
    base = rows[0][1]
    print("%-18s %10s %10s %12s" % ("agent", "median ms", "p90 ms", "added ms"))
    for label, med, p90 in rows:
        print("%-18s %10.2f %10.2f %12.2f" % (label, med, p90, med - base))


if __name__ == "__main__":
    main()
