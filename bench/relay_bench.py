#!/usr/bin/env python3
"""Relay benchmark: arc-hub against a direct TLS connection, in one run.

  .cache/venv/bin/python bench/relay_bench.py [--mb 128] [--rounds 2000] [--record]

Measures, for the same client code on both paths:
  - bulk throughput: one stream of 1 MiB WebSocket frames, sender -> sink;
  - small-message round trips: 64-byte messages echoed one at a time.
"direct" is client --TLS--> sink; "relay" is client --TLS--> arc-hub --TLS-->
listener sink (two TLS hops plus frame unmasking in the relay). Both ends
are Python threads in this process, so absolute numbers include Python's
own TLS and framing cost; the ratio is the point. --record appends the
table to bench/RESULTS.md.
"""
import argparse
import datetime
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from conftest import start_hub, stop_hub  # noqa: E402
from wsclient import WS, connect, read_accept  # noqa: E402

CHUNK = 1 << 20
SMALL = b"x" * 64


def direct_server(hub, mode, total):
    """A TLS server with the hub's certificate: 'sink' counts `total`
    bytes of frames, 'echo' echoes frames. Returns (port, thread)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.path.join(hub.dir, "server.pem"), os.path.join(hub.dir, "server.key"))
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def run():
        raw, _ = srv.accept()
        s = ctx.wrap_socket(raw, server_side=True)
        serve(WS(s), mode, total, is_client=False)
        s.close()
        srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return port, t


def recv_frame_any(ws, timeout=30):
    """Reads one frame whether or not it is masked (the direct sink sees
    the client's masked frames; the relay delivers them unmasked)."""
    ws._need(2, timeout)
    b1 = ws.buf[1]
    n = b1 & 0x7F
    off = 2
    if n == 126:
        ws._need(4, timeout)
        n = int.from_bytes(ws.buf[2:4], "big")
        off = 4
    elif n == 127:
        ws._need(10, timeout)
        n = int.from_bytes(ws.buf[2:10], "big")
        off = 10
    if b1 & 0x80:
        off += 4
    ws._need(off + n, timeout)
    payload = ws.buf[off:off + n]
    ws.buf = ws.buf[off + n:]
    return payload


def serve(ws, mode, total, is_client):
    """Sinks or echoes frames. A relay listener is a WebSocket client and
    must mask what it sends; the direct server must not."""
    got = 0
    while got < total:
        p = recv_frame_any(ws)
        got += len(p)
        if mode == "echo":
            ws.send(2, p, mask=is_client)


def client_bulk(ws, total):
    frame = WS.frame(2, b"\xab" * CHUNK)  # masked like a real client, masking cost paid once
    t0 = time.perf_counter()
    for _ in range(total // CHUNK):
        ws.sock.sendall(frame)
    return t0


def client_rtt(ws, rounds):
    lat = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        ws.send(2, SMALL)
        recv_frame_any(ws)
        lat.append((time.perf_counter() - t0) * 1e6)
    return lat


def tls_client(port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return WS(s)


def relay_pair(hub, ctl, mode, total):
    """Opens a sender through the relay; the accepted listener end serves
    `mode` in a thread. Returns (sender WS, thread)."""
    res = {}
    t = threading.Thread(target=lambda: res.update(r=connect(hub.port, "/$hc/hyco?sb-hc-action=connect",
                                                             {"ServiceBusAuthorization": hub.token("hyco")},
                                                             ca=hub.ca)))
    t.start()
    acc = read_accept(ctl)
    u = urllib.parse.urlsplit(acc["address"])
    st, _, lws = connect(hub.port, u.path + "?" + u.query, ca=hub.ca)
    assert st == 101
    t.join()
    st, _, sws = res["r"]
    assert st == 101
    sws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    th = threading.Thread(target=serve, args=(lws, mode, total, True), daemon=True)
    th.start()
    return sws, th


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=128, help="bulk transfer size in MiB (default 128)")
    ap.add_argument("--rounds", type=int, default=2000, help="small-message round trips (default 2000)")
    ap.add_argument("--record", action="store_true", help="append the results to bench/RESULTS.md")
    a = ap.parse_args()
    total = a.mb * CHUNK
    tmp = tempfile.mkdtemp(prefix="ck-bench-")
    hub = start_hub(tmp, ["--log-level", "warn"])
    try:
        st, _, ctl = connect(hub.port, "/$hc/hyco?sb-hc-action=listen", {"ServiceBusAuthorization": hub.token("hyco")},
                             ca=hub.ca)
        assert st == 101
        rows = {}
        # Bulk.
        for path in ("direct", "relay"):
            if path == "direct":
                port, th = direct_server(hub, "sink", total)
                ws = tls_client(port, hub.ca)
            else:
                ws, th = relay_pair(hub, ctl, "sink", total)
            t0 = client_bulk(ws, total)
            th.join()
            secs = time.perf_counter() - t0
            rows.setdefault(path, {})["mibps"] = a.mb / secs
            ws.sock.close()
        # Round trips.
        for path in ("direct", "relay"):
            n = a.rounds + 50
            if path == "direct":
                port, th = direct_server(hub, "echo", n * len(SMALL))
                ws = tls_client(port, hub.ca)
            else:
                ws, th = relay_pair(hub, ctl, "echo", n * len(SMALL))
            lat = client_rtt(ws, n)[50:]  # drop warm-up
            th.join()
            lat.sort()
            rows[path]["p50"] = statistics.median(lat)
            rows[path]["p99"] = lat[int(len(lat) * 0.99) - 1]
            ws.sock.close()
        ctl.sock.close()
    finally:
        stop_hub(hub)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    d, r = rows["direct"], rows["relay"]
    lines = [
        "| path | bulk MiB/s | 64 B round trip p50 (us) | p99 (us) |",
        "|---|---:|---:|---:|",
        "| direct TLS | %.0f | %.0f | %.0f |" % (d["mibps"], d["p50"], d["p99"]),
        "| via arc-hub | %.0f | %.0f | %.0f |" % (r["mibps"], r["p50"], r["p99"]),
        "| relay / direct | %.2fx | %.2fx | %.2fx |" % (r["mibps"] / d["mibps"], r["p50"] / d["p50"], r["p99"] / d["p99"]),
    ]
    header = "### %s, commit %s, %d cores, %d MiB bulk, %d round trips" % (
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), commit or "?",
        os.cpu_count(), a.mb, a.rounds)
    print(header)
    print("\n".join(lines))
    if a.record:
        with open(os.path.join(HERE, "RESULTS.md"), "a") as f:
            f.write("\n" + header + "\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
