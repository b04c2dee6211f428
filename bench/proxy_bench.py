#!/usr/bin/env python3
"""`az connectedk8s proxy` benchmark, against a direct connection in the same run.

  .cache/venv/bin/python bench/proxy_bench.py [--starts 5] [--fresh 40] [--requests 300] [--record]

Brings up the whole system on loopback (tests/arcenv.py: real
kube-apiserver, arc-hub, agent, the real az with the extension) and
measures:
  - startup: from launching `az connectedk8s proxy` to its "Proxy is
    listening" line (az's own start-up, ARM calls, certificates, kubeconfig
    merge), next to `az version` as the floor of any az command;
  - a fresh kubectl connection: TLS handshake to the local port plus one
    GET /version, with the sender pool (default 2) and without it
    (--pool-size 0), against the same through a fresh direct TLS
    connection to kube-apiserver;
  - requests on one kept-alive connection: GET /version, proxy vs direct.
The client is Python's http.client with the session's client certificate
from the kubeconfig the proxy wrote. --record appends the table to
bench/RESULTS.md.
"""
import argparse
import base64
import datetime
import http.client
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from arcenv import ArcEnv, Proxy  # noqa: E402
from kube import free_port  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def proxy_context(env, kubeconfig, tmp):
    """An SSL context holding the session CA and client certificate that
    the proxy wrote into `kubeconfig`."""
    import json
    doc = json.loads(subprocess.run([env.kube.kubectl_path, "--kubeconfig", kubeconfig, "config", "view", "--raw",
                                     "-o", "json"], capture_output=True, text=True, check=True).stdout)
    cl = doc["clusters"][0]["cluster"]
    us = doc["users"][0]["user"]
    paths = {}
    for name, data in (("ca", cl["certificate-authority-data"]), ("crt", us["client-certificate-data"]),
                       ("key", us["client-key-data"])):
        paths[name] = os.path.join(tmp, name + ".pem")
        with open(paths[name], "wb") as f:
            f.write(base64.b64decode(data))
    ctx = ssl.create_default_context(cafile=paths["ca"])
    ctx.load_cert_chain(paths["crt"], paths["key"])
    return ctx


def direct_context(env):
    d = env.kube.dir
    ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
    ctx.load_cert_chain(os.path.join(d, "admin.pem"), os.path.join(d, "admin.key"))
    return ctx


def get_version(conn):
    conn.request("GET", "/version")
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200, (r.status, body[:200])


def fresh_connections(port, ctx, n, pause):
    out = []
    for _ in range(n):
        time.sleep(pause)  # the same idle gap on every path (lets the pool refill)
        t = time.perf_counter()
        c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)
        get_version(c)
        out.append((time.perf_counter() - t) * 1000)
        c.close()
    return out


def kept_alive(port, ctx, n):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)
    get_version(c)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        get_version(c)
        out.append((time.perf_counter() - t) * 1000)
    c.close()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--fresh", type=int, default=40)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--record", action="store_true")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ck-bench-")
    env = ArcEnv(os.path.join(tmp, "env")).start()
    rows = []
    try:
        admin_oid = env.directory["principals"][0]["objectId"]
        env.kube.kubectl("create", "clusterrolebinding", "bench-view", "--clusterrole=view", "--user=" + admin_oid)
        az = env.admin
        floor = []
        for _ in range(a.starts):
            t = time.perf_counter()
            az.run("version", "-o", "none")
            floor.append((time.perf_counter() - t) * 1000)
        starts = []
        for i in range(a.starts):
            kc = os.path.join(tmp, "start-%d.kubeconfig" % i)
            p = Proxy(az, kc, free_port())
            t = time.perf_counter()
            p.wait_ready(poll=0.002)  # fine polling: the start-up is a few hundred ms
            starts.append((time.perf_counter() - t) * 1000)
            p.stop()
        rows.append(("`az version` (floor of any az command)", statistics.median(floor), None, None))
        rows.append(("`az connectedk8s proxy` start to listening", statistics.median(starts), None, None))

        dctx = direct_context(env)
        results = {}
        for label, pool in (("with pool (2)", "2"), ("without pool", "0")):
            kc = os.path.join(tmp, "pool-%s.kubeconfig" % pool)
            port = free_port()
            p = Proxy(az, kc, port, "--pool-size", pool).wait_ready()
            try:
                ctx = proxy_context(env, kc, tmp)
                fresh_connections(port, ctx, 3, 0.3)  # warm-up
                results[label] = fresh_connections(port, ctx, a.fresh, 0.3)
                if pool == "2":
                    results["kept"] = kept_alive(port, ctx, a.requests)
            finally:
                p.stop()
        fresh_connections(env.kube.port, dctx, 3, 0.3)
        direct_fresh = fresh_connections(env.kube.port, dctx, a.fresh, 0.3)
        direct_kept = kept_alive(env.kube.port, dctx, a.requests)
        d50 = statistics.median(direct_fresh)
        for label in ("with pool (2)", "without pool"):
            xs = results[label]
            rows.append(("fresh connection + GET, proxy %s" % label, statistics.median(xs), pct(xs, 99),
                         statistics.median(xs) / d50))
        rows.append(("fresh connection + GET, direct to kube-apiserver", d50, pct(direct_fresh, 99), 1.0))
        k50 = statistics.median(direct_kept)
        rows.append(("kept-alive GET, proxy", statistics.median(results["kept"]), pct(results["kept"], 99),
                     statistics.median(results["kept"]) / k50))
        rows.append(("kept-alive GET, direct", k50, pct(direct_kept, 99), 1.0))
    finally:
        env.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    head = "### %s UTC, commit %s, %d cores, %d starts, %d fresh connections, %d kept-alive requests" % (
        datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), commit, os.cpu_count(), a.starts, a.fresh,
        a.requests)
    lines = [head, "", "| measurement | p50 (ms) | p99 (ms) | vs direct |", "|---|---:|---:|---:|"]
    for name, p50, p99, ratio in rows:
        lines.append("| %s | %.1f | %s | %s |" % (name, p50, "%.1f" % p99 if p99 is not None else "",
                                                  "%.2fx" % ratio if ratio is not None else ""))
    table = "\n".join(lines)
    print(table)
    if a.record:
        with open(os.path.join(HERE, "RESULTS.md"), "a") as f:
            f.write("\n" + table.replace(head, head + "\n\nRecorded by `bench/proxy_bench.py --record`.") + "\n")


if __name__ == "__main__":
    main()
