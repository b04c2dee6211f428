#!/usr/bin/env python3
"""The benchmark suite: direct vs connectedk8s vs chisel, same upstream, one run.

  bench/run [--short] [--no-record] [--out DIR] [--rows 1,2,3,4,5]

Brings up the whole system on loopback (tests/arcenv.py: real
kube-apiserver, arc-hub, clusterconnect-agent, the real az with this
extension and `az connectedk8s proxy`) and, beside it, chisel (server and
client, pinned, built from the Go module proxy by bench/tools.py) with its
server on loopback. Every row is measured on three paths in the same run:

  direct        client --TLS--> upstream
  connectedk8s  client --mTLS--> proxy --WSS--> arc-hub <--WSS-- agent --TLS--> upstream
  chisel        client --TCP--> chisel client --WSS(SSH)--> chisel server --TCP--> upstream
                (the client's TLS runs end to end to the upstream)

The upstream is kube-apiserver for rows 2 to 5 and bench/upstream.py
(kube-apiserver's own certificate) for row 1, where kube-apiserver could
neither serve a bare large body nor a port-forward without a kubelet.

Rows:
  1. bulk, one stream: a large response body and a port-forward style pipe
     (an upgraded connection): MiB/s, and CPU seconds per GiB for each
     relaying process (/proc/<pid>/stat) next to the negotiated cipher's
     decrypt+encrypt cost from `openssl speed -evp`;
  2. small requests (GET /version) on a warm connection: p50/p99/p99.9 at
     one client; requests/s at 64 clients and the CPU each relaying
     process spends per request;
  3. fresh connection to first response byte; the same with 50 ms round
     trip (Toxiproxy latency, 25 ms each way) between the proxy and the
     relay (chisel: between its client and server; direct: in front of
     the upstream);
  4. N idle watches (ConfigMaps) through one proxy, relay and agent; then
     a tenth of them active (events made at a steady pace, latency to each
     watcher); RSS per watch per process; and a stalled consumer (one
     watcher that never reads) beside flowing ones: their latency with and
     without it;
  5. `kubectl get pods -A` against many Pods (created in kube-apiserver;
     they never run: no node) and `kubectl apply` of 200 ConfigMaps, wall
     time.

Prints the table, writes results.json and PNG plots into --out (default
bench/out, not committed except through RESULTS.md), and unless
--no-record appends the table to bench/RESULTS.md with the machine,
versions, commit, command and load.
"""
import argparse
import base64
import datetime
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
import clients as C  # noqa: E402
import tools  # noqa: E402
from arcenv import ArcEnv, Proxy  # noqa: E402
from kube import free_port  # noqa: E402
from upstream import Upstream  # noqa: E402

GiB = 1 << 30
MiB = 1 << 20

FULL = dict(body=GiB, pipe=GiB, warm=5000, rps_seconds=10, fresh=40, fresh_pause=0.3, watches=10000,
            events=20, stall_flowing=8, stall_updates=64, stall_kib=512, pods=5000, apply=200, reps=3)
SHORT = dict(body=64 * MiB, pipe=64 * MiB, warm=300, rps_seconds=2, fresh=8, fresh_pause=0.1, watches=100,
             events=3, stall_flowing=3, stall_updates=6, stall_kib=256, pods=200, apply=200, reps=1)

PATHS = ("direct", "connectedk8s", "chisel")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Rig:
    """Everything running for one suite run, and the endpoints of each path."""

    def __init__(self, tmp, a):
        self.tmp, self.a = tmp, a
        self._stops = []
        self.notes = []

    def stop(self):
        for s in reversed(self._stops):
            try:
                s()
            except Exception as e:  # keep stopping the rest
                log("bench: stop:", e)

    def popen(self, name, args, env=None):
        out = open(os.path.join(self.tmp, name + ".log"), "w")
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)

        def stop():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            out.close()
        self._stops.append(stop)
        p.log_path = out.name
        return p

    def start(self):
        t = self.tmp
        self.env = env = ArcEnv(os.path.join(t, "env")).start()
        self._stops.append(env.stop)
        k = env.kube
        self.kdir = k.dir
        # The proxy's caller is the hub's admin service principal, which the
        # agent impersonates by object id: let it do what the rows do.
        oid = env.directory["principals"][0]["objectId"]
        k.kubectl("create", "clusterrolebinding", "bench-admin", "--clusterrole=cluster-admin", "--user=" + oid)
        self.admin = (os.path.join(k.dir, "ca.pem"), os.path.join(k.dir, "admin.pem"), os.path.join(k.dir, "admin.key"))
        self.upstream = Upstream(os.path.join(k.dir, "server.pem"), os.path.join(k.dir, "server.key"))
        self._stops.append(self.upstream.close)

        self.proxy_port = free_port()
        self.proxy_kc = os.path.join(t, "proxy.kubeconfig")
        t0 = time.perf_counter()
        self.proxy = Proxy(env.admin, self.proxy_kc, self.proxy_port).wait_ready(poll=0.01)
        self.proxy_start_s = time.perf_counter() - t0
        self._stops.append(self.proxy.stop)
        self.proxy_tls = self.proxy_material(self.proxy_kc, "proxy")

        self.toxi = tools.go_tool("toxiproxy", log)
        if self.toxi:
            self.toxi_api = free_port()
            self.popen("toxiproxy", [self.toxi, "-host", "127.0.0.1", "-port", str(self.toxi_api)])
            self.wait_http("http://127.0.0.1:%d/version" % self.toxi_api)
        else:
            self.notes.append("Toxiproxy could not be built: the 50 ms rows are missing.")
        self.chisel = tools.go_tool("chisel", log)
        if self.chisel:
            self.start_chisel()
        else:
            self.notes.append("chisel could not be built from the Go module proxy: its column is empty.")
        return self

    def wait_http(self, url, timeout=20):
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                return
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    def proxy_material(self, kubeconfig, tag):
        """CA, client certificate and key files from a kubeconfig the proxy wrote."""
        doc = json.loads(subprocess.run([self.env.kube.kubectl_path, "--kubeconfig", kubeconfig, "config", "view",
                                         "--raw", "-o", "json"], capture_output=True, text=True, check=True).stdout)
        ctxname = doc["current-context"]
        ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctxname)
        cl = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
        us = next(u["user"] for u in doc["users"] if u["name"] == ctx["user"])
        out = []
        for name, data in (("ca", cl["certificate-authority-data"]), ("crt", us["client-certificate-data"]),
                           ("key", us["client-key-data"])):
            p = os.path.join(self.tmp, "%s-%s.pem" % (tag, name))
            with open(p, "wb") as f:
                f.write(base64.b64decode(data))
            out.append(p)
        return tuple(out)

    def toxiproxy(self, name, upstream_port, latency_ms=25):
        """A Toxiproxy listener forwarding to upstream_port, with latency_ms
        added in each direction. Returns its port."""
        port = free_port()

        def call(path, body):
            req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.toxi_api, path),
                                         data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=10).read()
        call("/proxies", {"name": name, "listen": "127.0.0.1:%d" % port, "upstream": "127.0.0.1:%d" % upstream_port,
                          "enabled": True})
        for stream in ("upstream", "downstream"):
            call("/proxies/%s/toxics" % name, {"name": "lat-" + stream, "type": "latency", "stream": stream,
                                               "toxicity": 1.0, "attributes": {"latency": latency_ms, "jitter": 0}})
        return port

    def start_chisel(self):
        hub = self.env.hub
        self.chisel_port = free_port()
        self.chisel_server = self.popen("chisel-server", [
            self.chisel, "server", "--host", "127.0.0.1", "--port", str(self.chisel_port),
            "--tls-cert", os.path.join(hub.dir, "server.pem"), "--tls-key", os.path.join(hub.dir, "server.key")])
        self.chisel_kube = free_port()
        self.chisel_up = free_port()
        self.chisel_client = self.chisel_client_to(self.chisel_port, "chisel-client", [
            (self.chisel_kube, self.env.kube.port), (self.chisel_up, self.upstream.port)])

    def chisel_client_to(self, server_port, name, remotes):
        p = self.popen(name, [self.chisel, "client", "--tls-ca", self.env.hub.ca,
                              "https://127.0.0.1:%d" % server_port,
                              *["127.0.0.1:%d:127.0.0.1:%d" % r for r in remotes]])
        deadline = time.time() + 30
        while "Connected" not in open(p.log_path).read():
            if p.poll() is not None or time.time() > deadline:
                raise RuntimeError("chisel client did not connect:\n" + open(p.log_path).read())
            time.sleep(0.05)
        return p

    def endpoints(self, upstream):
        """{path: Endpoint} for the 'kube' or the 'bulk' upstream."""
        up_port = self.env.kube.port if upstream == "kube" else self.upstream.port
        eps = {"direct": C.Endpoint("direct", up_port, *self.admin),
               "connectedk8s": C.Endpoint("connectedk8s", self.proxy_port, *self.proxy_tls)}
        if self.chisel:
            eps["chisel"] = C.Endpoint("chisel", self.chisel_kube if upstream == "kube" else self.chisel_up,
                                       *self.admin)
        return eps

    def relaying(self):
        """{path: {process: pid}} of the processes that carry a path's bytes."""
        out = {"connectedk8s": {"proxy": self.proxy.proc.pid, "hub": self.env.hub.proc.pid,
                                "agent": self.env.agent.pid}}
        if self.chisel:
            out["chisel"] = {"chisel client": self.chisel_client.pid, "chisel server": self.chisel_server.pid}
        return out

    def kubeconfig(self, path):
        """A kubeconfig file per path, for the kubectl rows."""
        if path == "direct":
            return self.env.kube.kubeconfig
        if path == "connectedk8s":
            return self.proxy_kc
        p = os.path.join(self.tmp, "chisel.kubeconfig")
        ca, crt, key = self.admin
        with open(p, "w") as f:
            f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:%d\n"
                    "    certificate-authority: %s\nusers:\n- name: u\n  user:\n    client-certificate: %s\n"
                    "    client-key: %s\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n"
                    % (self.chisel_kube, ca, crt, key))
        return p

    def point_agent_at(self, port):
        """Restarts the agent as connect installed it, with --apiserver on
        127.0.0.1:port (the kube CA still vouches: the bulk upstream holds
        kube-apiserver's certificate), and waits until the proxy reaches it."""
        env = self.env
        env.agent.terminate()
        try:
            env.agent.wait(10)
        except subprocess.TimeoutExpired:
            # It drains open rendezvous streams first (the proxy's idle
            # kept-alive ones too); noted in the report.
            rig_note = "the agent did not exit within 10 s of SIGTERM (open streams); killed"
            if rig_note not in self.notes:
                self.notes.append(rig_note)
            env.agent.kill()
            env.agent.wait()
        real = env.kube.port
        env.kube.port = port
        try:
            env.agent = env.start_registered_agent("agent-bulk.log")
        finally:
            env.kube.port = real
        ep = self.endpoints("bulk")["connectedk8s"]
        deadline = time.time() + 60
        while True:
            try:
                s = ep.connect(timeout=5)
                s.sendall(C.get("/bench/bulk?bytes=1"))
                st, _ = C.Reader(s).response()
                s.close()
                if st == 200:
                    return
            except (OSError, AssertionError):
                pass
            if time.time() > deadline:
                raise RuntimeError("the proxy does not reach the restarted agent:\n" + open(env.agent.log_path).read())
            time.sleep(0.3)


# ---------------------------------------------------------------- rows

class Table:
    def __init__(self):
        self.rows = []

    def add(self, row, what, unit, better, direct=None, connectedk8s=None, chisel=None, ref=None):
        """One line; `direct` is the reference the ratios divide by (for CPU
        lines: the cipher's own cost; named by `ref`)."""
        self.rows.append(dict(row=row, what=what, unit=unit, better=better, direct=direct,
                              connectedk8s=connectedk8s, chisel=chisel, ref=ref))


def row1_bulk(rig, p, t):
    rig.point_agent_at(rig.upstream.port)
    eps = rig.endpoints("bulk")
    pids = rig.relaying()
    s = eps["connectedk8s"].connect()
    cipher = s.cipher()[0]
    s.close()
    evp, mbps = tools.cipher_speed(cipher)
    per_dir = GiB / (mbps * 1e6)  # seconds to encrypt (or decrypt) one GiB, one core
    cipher_cost = 2 * per_dir     # a relaying TLS hop decrypts and encrypts every byte
    t.cipher = dict(tls=cipher, evp=evp, mb_s=mbps, s_per_gib=cipher_cost)
    for kind, n, fn in (("response body", p["body"], C.bulk_body), ("pipe (after 101)", p["pipe"], C.bulk_pipe)):
        speed, cpu = {}, {}
        for path, ep in eps.items():
            fn(ep, 4 * MiB)  # warm-up
            procs = pids.get(path, {})
            c0 = {k: tools.cpu_seconds(v) for k, v in procs.items()}
            dt = fn(ep, n)
            c1 = {k: tools.cpu_seconds(v) for k, v in procs.items()}
            speed[path] = n / MiB / dt
            cpu[path] = {k: (c1[k] - c0[k]) * GiB / n for k in procs}
            log("bench: 1 %s %s: %.0f MiB/s %s" % (kind, path, speed[path], cpu[path]))
        t.add("1", "bulk %s, %d MiB" % (kind, n // MiB), "MiB/s", "higher", speed["direct"], speed["connectedk8s"],
              speed.get("chisel"))
        for name in ("proxy", "hub", "agent"):
            t.add("1", "CPU per GiB, %s, %s (ref: %s decrypt+encrypt)" % (kind, name, evp), "s/GiB", "lower",
                  cipher_cost, cpu["connectedk8s"][name], ref="cipher")
        if "chisel" in cpu:
            for name in ("chisel client", "chisel server"):
                t.add("1", "CPU per GiB, %s, %s (ref: %s decrypt+encrypt)" % (kind, name, evp), "s/GiB", "lower",
                      cipher_cost, None, cpu["chisel"][name], ref="cipher")
    t.add("1", "openssl speed -evp %s, 16 KiB blocks, one direction" % evp, "MB/s", "higher", mbps, ref="info")


def row2_small(rig, p, t):
    eps = rig.endpoints("kube")
    pids = rig.relaying()
    lat, rps, cpu = {}, {}, {}
    for path, ep in eps.items():
        lat[path] = C.warm_latencies(ep, p["warm"])
        procs = pids.get(path, {})
        rps[path], used, n = C.requests_per_second(ep, 64, p["rps_seconds"], cpu_pids=procs.values())
        cpu[path] = {k: used[v] * 1e6 / n for k, v in procs.items()}
        log("bench: 2 %s p50 %.0f us, %.0f req/s" % (path, C.pct(lat[path], 50), rps[path]))
    t.latencies = lat
    for q in (50, 99, 99.9):
        t.add("2", "small GET /version, warm connection, 1 client, p%s" % q, "us", "lower",
              *[C.pct(lat[x], q) if x in lat else None for x in PATHS])
    t.add("2", "small GET /version, 64 clients, kept alive", "req/s", "higher", *[rps.get(x) for x in PATHS])
    for name in ("proxy", "hub", "agent"):
        t.add("2", "CPU per request at 64 clients, %s" % name, "us/req", "lower", None, cpu["connectedk8s"][name])
    for name in ("chisel client", "chisel server"):
        if "chisel" in cpu:
            t.add("2", "CPU per request at 64 clients, %s" % name, "us/req", "lower", None, None, cpu["chisel"][name])
    # The request framer (issue 10) is on the connectedk8s path of every
    # request above; there is no before run to set these against.
    t.framer = dict(p50_us=C.pct(lat["connectedk8s"], 50), p99_us=C.pct(lat["connectedk8s"], 99),
                    agent_us_per_req=cpu["connectedk8s"]["agent"], rps=rps["connectedk8s"])


def row3_fresh(rig, p, t):
    eps = rig.endpoints("kube")
    res = {}
    for path, ep in eps.items():
        C.fresh_ttfb(ep, 3, p["fresh_pause"])
        res[path] = C.fresh_ttfb(ep, p["fresh"], p["fresh_pause"])
    t.add("3", "fresh TLS connection to first response byte, p50", "ms", "lower",
          *[C.median(res[x]) if x in res else None for x in PATHS])
    t.add("3", "fresh TLS connection to first response byte, p99", "ms", "lower",
          *[C.pct(res[x], 99) if x in res else None for x in PATHS])
    # The same without the proxy's pool of pre-opened senders: each
    # connection then waits for its own rendezvous through the relay.
    port, kc = free_port(), os.path.join(rig.tmp, "proxy-nopool.kubeconfig")
    px = Proxy(rig.env.admin, kc, port, "--pool-size", "0").wait_ready()
    rig._stops.append(px.stop)
    ep = C.Endpoint("connectedk8s", port, *rig.proxy_material(kc, "proxy-nopool"))
    C.fresh_ttfb(ep, 3, p["fresh_pause"])
    nopool = C.fresh_ttfb(ep, p["fresh"], p["fresh_pause"])
    px.stop()
    t.add("3", "fresh TLS connection to first response byte, proxy --pool-size 0, p50", "ms", "lower",
          C.median(res["direct"]), C.median(nopool))
    if not rig.toxi:
        return
    # 50 ms round trip: direct in front of the upstream; connectedk8s
    # between the proxy and the relay (a second proxy, its relay connects
    # redirected through Toxiproxy by bench/redirect.c); chisel between its
    # client and its server.
    slow = {"direct": C.Endpoint("direct", rig.toxiproxy("direct-rtt", rig.env.kube.port), *rig.admin)}
    so = os.path.join(tools.CACHE, "redirect.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", so, os.path.join(HERE, "redirect.c"), "-ldl"], check=True)
    relay_rtt = rig.toxiproxy("relay-rtt", rig.env.hub.port)
    az = rig.env.admin
    saved = dict(az.env)
    az.env.update(LD_PRELOAD=so, CK_BENCH_REDIRECT="%d:%d" % (rig.env.hub.port, relay_rtt))
    try:
        port, kc = free_port(), os.path.join(rig.tmp, "proxy-rtt.kubeconfig")
        px = Proxy(az, kc, port).wait_ready()
    finally:
        az.env.clear()
        az.env.update(saved)
    rig._stops.append(px.stop)
    slow["connectedk8s"] = C.Endpoint("connectedk8s", port, *rig.proxy_material(kc, "proxy-rtt"))
    if rig.chisel:
        cport = free_port()
        rig.chisel_client_to(rig.toxiproxy("chisel-rtt", rig.chisel_port), "chisel-client-rtt",
                             [(cport, rig.env.kube.port)])
        slow["chisel"] = C.Endpoint("chisel", cport, *rig.admin)
    res = {}
    for path, ep in slow.items():
        C.fresh_ttfb(ep, 2, p["fresh_pause"])
        res[path] = C.fresh_ttfb(ep, max(4, p["fresh"] // 2), p["fresh_pause"])
        log("bench: 3 rtt %s %.1f ms" % (path, C.median(res[path])))
    t.add("3", "fresh connection to first byte, 50 ms RTT proxy<->relay, p50", "ms", "lower",
          *[C.median(res[x]) if x in res else None for x in PATHS])
    px.stop()


class Poster:
    """Creates objects on one kept-alive direct connection (the event source)."""

    def __init__(self, rig):
        self.s = C.Endpoint("direct", rig.env.kube.port, *rig.admin).connect()
        self.r = C.Reader(self.s)

    def post(self, path, obj):
        body = json.dumps(obj).encode()
        self.s.sendall(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        "Content-Length: %d\r\n\r\n" % (path, len(body))).encode() + body)
        st, b = self.r.response()
        assert st in (200, 201), (st, b[:300])

    def close(self):
        self.s.close()


def cm(name, kib=0):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"d": "x" * (kib * 1024)} if kib else {}}


def row4_scale(rig, p, t):
    k = rig.env.kube
    n = p["watches"]
    active = max(1, n // 10)
    eps = rig.endpoints("kube")
    pids = rig.relaying()
    apiserver = next(pr for name, pr in k.procs if name == "kube-apiserver").pid
    rss, act, stall = {}, {}, {}
    for path in [x for x in ("direct", "chisel", "connectedk8s") if x in eps]:
        ep = eps[path]
        ns_a, ns_i, ns_s = "bench-act-" + path, "bench-idle-" + path, "bench-stall-" + path
        for ns in (ns_a, ns_i, ns_s):
            k.kubectl("create", "namespace", ns)
        procs = dict(pids.get(path, {}))
        procs["kube-apiserver"] = apiserver
        r0 = {x: tools.rss_bytes(v) for x, v in procs.items()}
        t0 = time.perf_counter()
        urls = ["/api/v1/namespaces/%s/configmaps?watch=1" % (ns_a if i < active else ns_i) for i in range(n)]
        socks = C.open_watches(ep, urls)
        opened_s = time.perf_counter() - t0
        time.sleep(2)
        r1 = {x: tools.rss_bytes(v) for x, v in procs.items()}
        rss[path] = {x: (r1[x] - r0[x]) / 1024 / n for x in procs}
        log("bench: 4 %s: %d watches open in %.0f s, KiB/watch %s" % (path, n, opened_s, rss[path]))
        # A tenth active: events at a steady pace, latency to every watcher.
        counter = C.EventCounter(socks[:active])
        poster = Poster(rig)
        sent = []
        for i in range(p["events"]):
            sent.append(time.perf_counter())
            poster.post("/api/v1/namespaces/%s/configmaps" % ns_a, cm("ev-%d" % i))
            time.sleep(0.2)
        ok = counter.wait(p["events"], 60 + n / 100)
        lats = C.latencies_ms(counter, sent)
        counter.close()
        delivered = sum(min(len(v), p["events"]) for v in counter.times.values())
        act[path] = dict(p50=C.median(lats), p99=C.pct(lats, 99) if lats else None,
                         delivered=delivered / (active * p["events"]), complete=ok)
        idle_alive = sum(1 for s in socks[active:] if s.fileno() >= 0)
        for s in socks:
            s.close()
        # A stalled consumer beside flowing ones, with large events: the
        # flowing watchers' latency without and then with the stalled one.
        stall[path] = {}
        for case in ("without", "with"):
            flowing = C.open_watches(ep, ["/api/v1/namespaces/%s/configmaps?watch=1" % ns_s] * p["stall_flowing"])
            stuck = C.open_watches(ep, ["/api/v1/namespaces/%s/configmaps?watch=1" % ns_s], rcvbuf=4096) \
                if case == "with" else []
            counter = C.EventCounter(flowing)
            sent = []
            for i in range(p["stall_updates"]):
                sent.append(time.perf_counter())
                poster.post("/api/v1/namespaces/%s/configmaps" % ns_s, cm("big-%s-%d" % (case, i), p["stall_kib"]))
            ok = counter.wait(p["stall_updates"], 120)
            lats = C.latencies_ms(counter, sent)
            done_s = max(v[-1] for v in counter.times.values()) - sent[0] if ok else None
            counter.close()
            stuck_events = C.ready_bytes(stuck[0]) if stuck else 0
            stall[path][case] = dict(p50=C.median(lats), done_s=done_s, complete=ok, stuck_ready_bytes=stuck_events)
            for s in flowing + stuck:
                s.close()
            k.kubectl("delete", "configmaps", "--all", "-n", ns_s, timeout=120)
        poster.close()
        log("bench: 4 %s: active %s; stall %s; idle still open %d" % (path, act[path], stall[path], idle_alive))
    t.add("4", "%d watches opened (idle), then %d active: event latency p50" % (n, active), "ms", "lower",
          *[act[x]["p50"] if x in act else None for x in PATHS])
    t.add("4", "active watchers: events delivered", "fraction", "higher",
          *[act[x]["delivered"] if x in act else None for x in PATHS])
    t.add("4", "RSS per watch, kube-apiserver (reference)", "KiB", "lower",
          *[rss[x]["kube-apiserver"] if x in rss else None for x in PATHS], ref="info")
    for name in ("proxy", "hub", "agent"):
        t.add("4", "RSS per idle watch, %s" % name, "KiB", "lower", None, rss["connectedk8s"][name])
    if "chisel" in rss:
        for name in ("chisel client", "chisel server"):
            t.add("4", "RSS per idle watch, %s" % name, "KiB", "lower", None, None, rss["chisel"][name])
    t.add("4", "stalled consumer: %d flowing watchers, %d x %d KiB events, p50 latency with / without stall"
          % (p["stall_flowing"], p["stall_updates"], p["stall_kib"]), "ratio", "lower",
          *[stall[x]["with"]["p50"] / stall[x]["without"]["p50"] if x in stall else None for x in PATHS],
          ref="none")
    t.add("4", "stalled consumer: time until the flowing watchers had every event, with / without stall",
          "ratio", "lower",
          *[stall[x]["with"]["done_s"] / stall[x]["without"]["done_s"]
            if x in stall and stall[x]["with"]["done_s"] and stall[x]["without"]["done_s"] else None
            for x in PATHS], ref="none")
    t.add("4", "stalled consumer: flowing watchers got every event while it stalled", "yes=1", "higher",
          *[1.0 if x in stall and stall[x]["with"]["complete"] else (0.0 if x in stall else None) for x in PATHS],
          ref="none")
    t.stall = stall
    t.rss = rss


def timed(cmd, **kw):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd[:4]), r.stderr[-1500:]))
    return dt, r


def row5_kubectl(rig, p, t):
    k = rig.env.kube
    ns = "bench-pods"
    k.kubectl("create", "namespace", ns)
    deadline = time.time() + 60
    while k.kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode != 0:
        assert time.time() < deadline, "no default service account in %s" % ns
        time.sleep(0.3)
    # The pods, straight into kube-apiserver from a few connections (they
    # stay Pending: no scheduler, no node).
    import threading
    t0 = time.perf_counter()
    nxt = iter(range(p["pods"]))
    lock = threading.Lock()

    def make():
        po = Poster(rig)
        while True:
            with lock:
                i = next(nxt, None)
            if i is None:
                break
            po.post("/api/v1/namespaces/%s/pods" % ns, {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p-%05d" % i, "labels": {"app": "bench"}},
                "spec": {"automountServiceAccountToken": False,
                         "containers": [{"name": "c", "image": "registry.invalid/bench:1"}]}})
        po.close()
    ts = [threading.Thread(target=make) for _ in range(8)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    log("bench: 5 created %d pods in %.0f s" % (p["pods"], time.perf_counter() - t0))
    kubectl = k.kubectl_path
    manifest = os.path.join(rig.tmp, "apply.yaml")
    with open(manifest, "w") as f:
        for i in range(p["apply"]):
            f.write("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%03d\ndata:\n  k: v%d\n" % (i, i))
    get_s, apply_s = {}, {}
    paths = [x for x in PATHS if x != "chisel" or rig.chisel]
    for path in paths:
        kc = rig.kubeconfig(path)
        cache = os.path.join(rig.tmp, "kcache-" + path)
        base = [kubectl, "--kubeconfig", kc, "--cache-dir", cache]
        timed(base + ["get", "namespaces"])  # discovery cached, as for a user's second command
        runs = []
        for _ in range(p["reps"]):
            dt, r = timed(base + ["get", "pods", "-A", "--no-headers"])
            got = r.stdout.count("\n")
            assert got >= p["pods"], (path, got)
            runs.append(dt)
        get_s[path] = statistics.median(runs)
        runs = []
        for rep in range(p["reps"]):
            target = "bench-apply-%s-%d" % (path, rep)
            k.kubectl("create", "namespace", target)
            dt, _ = timed(base + ["apply", "-n", target, "-f", manifest])
            runs.append(dt)
        apply_s[path] = statistics.median(runs)
        log("bench: 5 %s get %.2f s apply %.2f s" % (path, get_s[path], apply_s[path]))
    t.add("5", "kubectl get pods -A, %d pods" % p["pods"], "s", "lower", *[get_s.get(x) for x in PATHS])
    t.add("5", "kubectl apply, %d ConfigMaps" % p["apply"], "s", "lower", *[apply_s.get(x) for x in PATHS])


ROWS = {"2": row2_small, "3": row3_fresh, "5": row5_kubectl, "4": row4_scale, "1": row1_bulk}


# ---------------------------------------------------------------- report

def fmt(v):
    if v is None:
        return ""
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def ratio(x, ref):
    return x / ref if x is not None and ref else None


def markdown(t):
    out = ["| row | measurement | unit | direct / ref | connectedk8s | chisel | connectedk8s ÷ ref | chisel ÷ ref |",
           "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in t.rows:
        show_ratio = r["ref"] not in ("info", "none")
        rc = ratio(r["connectedk8s"], r["direct"]) if show_ratio else None
        rh = ratio(r["chisel"], r["direct"]) if show_ratio else None
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["row"], r["what"], r["unit"], fmt(r["direct"]), fmt(r["connectedk8s"]), fmt(r["chisel"]),
            fmt(rc) + "×" if rc is not None else "", fmt(rh) + "×" if rh is not None else ""))
    return "\n".join(out)


def find(t, row, prefix):
    return [r for r in t.rows if r["row"] == row and r["what"].startswith(prefix)]


def targets(t):
    """The issue's targets, judged from this run: (target, value, met)."""
    out = []

    def one(name, rows, f, test):
        for r in rows:
            v = f(r)
            if v is not None:
                what = r["what"].split(" (ref")[0].replace("CPU per GiB, ", "").replace("RSS per idle watch, ", "")
                out.append((name + ("" if len(rows) == 1 else " (%s)" % what), v, test(v)))
    one("fresh connection ≤ 1.2× direct", find(t, "3", "fresh TLS connection to first response byte, p50"),
        lambda r: ratio(r["connectedk8s"], r["direct"]), lambda v: v <= 1.2)
    one("64 clients ≥ 0.6× direct", find(t, "2", "small GET /version, 64"),
        lambda r: ratio(r["connectedk8s"], r["direct"]), lambda v: v >= 0.6)
    one("small p50 added ≤ 150 µs", find(t, "2", "small GET /version, warm connection, 1 client, p50"),
        lambda r: r["connectedk8s"] - r["direct"], lambda v: v <= 150)
    one("CPU per GiB per relaying process ≤ 1.5× cipher", [r for r in find(t, "1", "CPU per GiB")
                                                          if r["connectedk8s"] is not None],
        lambda r: ratio(r["connectedk8s"], r["direct"]), lambda v: v <= 1.5)
    one("≤ 32 KiB per idle watch per process", [r for r in find(t, "4", "RSS per idle watch")
                                               if r["connectedk8s"] is not None],
        lambda r: r["connectedk8s"], lambda v: v <= 32)
    ahead = []
    for r in t.rows:
        if r["connectedk8s"] is None or r["chisel"] is None or r["ref"] == "info":
            continue
        hi = r["better"] == "higher"
        ahead.append(r["connectedk8s"] >= r["chisel"] if hi else r["connectedk8s"] <= r["chisel"])
    # Per-process lines compare each of our processes with each of chisel's.
    for pre in ("CPU per GiB, response body", "CPU per GiB, pipe", "CPU per request", "RSS per idle watch"):
        ours = [r["connectedk8s"] for r in t.rows if r["what"].startswith(pre) and r["connectedk8s"] is not None]
        theirs = [r["chisel"] for r in t.rows if r["what"].startswith(pre) and r["chisel"] is not None]
        if ours and theirs:
            ahead.append(max(ours) <= max(theirs))
    if ahead:
        out.append(("ahead of chisel on every row", "%d of %d lines" % (sum(ahead), len(ahead)), all(ahead)))
    return [(n, v if isinstance(v, str) else fmt(v), bool(m)) for n, v, m in out]


def plots(t, outdir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("bench: no matplotlib (scripts/install-deps --with-bench): no plots")
        return []
    files = []
    rows = [r for r in t.rows if r["direct"] and r["ref"] is None]
    if rows:
        fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.5))
        ys = range(len(rows))
        ax.barh([y + 0.2 for y in ys], [ratio(r["connectedk8s"], r["direct"]) or 0 for r in rows], 0.4,
                label="connectedk8s")
        ax.barh([y - 0.2 for y in ys], [ratio(r["chisel"], r["direct"]) or 0 for r in rows], 0.4, label="chisel")
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_yticks(list(ys))
        ax.set_yticklabels(["%s: %s (%s, %s is better)" % (r["row"], r["what"][:60], r["unit"], r["better"])
                            for r in rows], fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("ratio to direct (same run)")
        ax.legend()
        fig.tight_layout()
        files.append(os.path.join(outdir, "ratios.png"))
        fig.savefig(files[-1], dpi=110)
        plt.close(fig)
    if getattr(t, "latencies", None):
        fig, ax = plt.subplots(figsize=(7, 4))
        for path, xs in t.latencies.items():
            xs = sorted(xs)
            ax.plot(xs, [i / len(xs) for i in range(len(xs))], label=path)
        ax.set_xscale("log")
        ax.set_xlabel("GET /version on a warm connection (µs)")
        ax.set_ylabel("fraction of requests")
        ax.legend()
        fig.tight_layout()
        files.append(os.path.join(outdir, "small-latency-cdf.png"))
        fig.savefig(files[-1], dpi=110)
        plt.close(fig)
    per = [r for r in t.rows if r["what"].startswith(("CPU per GiB", "RSS per idle watch"))]
    if per:
        fig, axs = plt.subplots(1, 2, figsize=(11, 4))
        for ax, pre, unit in ((axs[0], "CPU per GiB", "CPU s per GiB"), (axs[1], "RSS per idle watch", "KiB per watch")):
            sel = [r for r in per if r["what"].startswith(pre)]
            labels = [r["what"].replace(pre + ", ", "").split(" (ref")[0] for r in sel]
            vals = [r["connectedk8s"] if r["connectedk8s"] is not None else r["chisel"] for r in sel]
            colors = ["C0" if r["connectedk8s"] is not None else "C1" for r in sel]
            ax.barh(range(len(sel)), vals, color=colors)
            ax.set_yticks(range(len(sel)))
            ax.set_yticklabels(labels, fontsize=7)
            ax.set_xlabel(unit + " (blue: connectedk8s, orange: chisel)")
            if pre == "CPU per GiB" and getattr(t, "cipher", None):
                ax.axvline(t.cipher["s_per_gib"], color="k", ls="--", lw=0.8, label="cipher decrypt+encrypt")
                ax.axvline(1.5 * t.cipher["s_per_gib"], color="r", ls=":", lw=0.8, label="target 1.5×")
                ax.legend(fontsize=7)
            if pre == "RSS per idle watch":
                ax.axvline(32, color="r", ls=":", lw=0.8)
        fig.tight_layout()
        files.append(os.path.join(outdir, "per-process.png"))
        fig.savefig(files[-1], dpi=110)
        plt.close(fig)
    return files


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    return "%s, %d cores, %d MiB, Linux %s" % (model, os.cpu_count(), mem, platform.release())


def versions(rig):
    kv = subprocess.run([rig.env.kube.kubectl_path, "version", "--client", "-o", "json"], capture_output=True,
                        text=True).stdout
    try:
        kubectl = json.loads(kv)["clientVersion"]["gitVersion"]
    except ValueError:
        kubectl = "?"
    with open(os.path.join(ROOT, "scripts", "KUBE_VERSION")) as f:
        kube = f.read().strip()
    return ("kube-apiserver %s, kubectl %s, %s, Python %s, chisel %s%s, Toxiproxy %s%s"
            % (kube, kubectl, tools.openssl_version(), platform.python_version(),
               tools.go_version("chisel", "github.com/jpillora/chisel"), "" if rig.chisel else " (not built)",
               tools.go_version("toxiproxy", "github.com/Shopify/toxiproxy/v2"), "" if rig.toxi else " (not built)"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", action="store_true", help="small sizes: the CI smoke test (a few minutes)")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    ap.add_argument("--out", default=os.path.join(HERE, "out"), help="results.json and PNG plots (bench/out)")
    ap.add_argument("--rows", default="1,2,3,4,5", help="which rows to run (default all)")
    ap.add_argument("--watches", type=int, help="row 4's number of watches (full: 10000, short: 100)")
    a = ap.parse_args()
    p = dict(SHORT if a.short else FULL)
    if a.watches:
        p["watches"] = a.watches
    want = sorted(set(a.rows.split(",")))
    fds = raise_fd_limit(4 * p["watches"] + 4096)
    if fds < 2 * p["watches"] + 1024:
        p["watches"] = max(10, (fds - 1024) // 2)
        log("bench: open-file limit %d: row 4 uses %d watches" % (fds, p["watches"]))
    os.makedirs(a.out, exist_ok=True)
    load0 = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    tmp = tempfile.mkdtemp(prefix="ck-bench-")
    t = Table()
    rig = Rig(tmp, a)
    failed = []
    vers = "?"
    try:
        rig.start()
        t.add("0", "`az connectedk8s proxy` start to listening", "s", "lower", None, rig.proxy_start_s, ref="info")
        for key, fn in ROWS.items():
            if key in want:
                log("bench: row %s" % key)
                t0 = time.perf_counter()
                try:
                    fn(rig, p, t)
                except Exception as e:
                    failed.append("row %s: %r" % (key, e))
                    log("bench: row %s failed: %r" % (key, e))
                log("bench: row %s took %.0f s" % (key, time.perf_counter() - t0))
        vers = versions(rig)
    finally:
        rig.stop()
        if not failed:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log("bench: logs kept in", tmp)
    load1 = os.getloadavg()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "csrc", "azext_connectedk8s"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    cmd = " ".join(["bench/run"] + [shlex.quote(x) for x in sys.argv[1:]])
    table = markdown(t)
    tg = targets(t)
    files = plots(t, a.out)
    doc = dict(rows=t.rows, targets=tg, failed=failed, params=p, commit=commit, command=cmd,
               cipher=getattr(t, "cipher", None), framer=getattr(t, "framer", None),
               stall=getattr(t, "stall", None), notes=rig.notes, plots=files)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
    head = "### %s, commit %s%s, %s" % (started.strftime("%Y-%m-%d %H:%M UTC"), commit,
                                        " (csrc or azext changed)" if dirty else "",
                                        "short mode" if a.short else "full mode")
    lines = [head, "",
             "- command: `%s`" % cmd,
             "- machine: %s" % machine(),
             "- load average (1, 5, 15 min): %.2f %.2f %.2f at the start, %.2f %.2f %.2f at the end"
             % (load0 + load1),
             "- versions: %s" % vers,
             ]
    if getattr(t, "cipher", None):
        c = t.cipher
        lines.append("- negotiated cipher %s; `openssl speed -evp %s`: %.0f MB/s one direction, so one relaying "
                     "TLS hop's decrypt+encrypt costs %.2f CPU s/GiB" % (c["tls"], c["evp"], c["mb_s"], c["s_per_gib"]))
    for n in rig.notes:
        lines.append("- " + n)
    for f_ in failed:
        lines.append("- FAILED: " + f_)
    lines += ["", table, "", "Targets (issue 16), judged from this run:", ""]
    for name, v, met in tg:
        lines.append("- %s: %s, %s" % (name, v, "met" if met else "not met"))
    if getattr(t, "framer", None):
        fr = t.framer
        lines += ["", "Request framer (issue 10, csrc/core/framer.c), current numbers on the connectedk8s path: "
                  "small GET p50 %.0f µs, p99 %.0f µs; %.0f req/s at 64 clients, agent %.0f CPU µs per request. "
                  "There is no before run." % (fr["p50_us"], fr["p99_us"], fr["rps"], fr["agent_us_per_req"])]
    text = "\n".join(lines)
    print(text)
    if not a.no_record:
        with open(os.path.join(HERE, "RESULTS.md"), "a") as f:
            f.write("\n" + text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
