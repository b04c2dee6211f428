"""arc-hub's relay on loopback, driven by a raw WebSocket client: the
protocol's status and close codes, rendezvous rules, bad input, and a peer
that stops reading. Microsoft's own clients are in test_interop.py."""
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import urllib.parse

import pytest

from conftest import BUILD, LISTEN_KEY, SEND_KEY
from wsclient import Closed, connect, read_accept

ARC = "microsoft.kubernetes/connectedclusters/abc/def"


def listen(hub, entity="hyco", token=None, via="header", extra=""):
    tok = hub.token(entity) if token is None else token
    if via == "query":
        return connect(hub.port, "/$hc/%s?sb-hc-action=listen&sb-hc-token=%s%s"
                       % (entity, urllib.parse.quote(tok, safe=""), extra), ca=hub.ca)
    return connect(hub.port, "/$hc/%s?sb-hc-action=listen%s" % (entity, extra),
                   {"ServiceBusAuthorization": tok}, ca=hub.ca)


def send(hub, entity="hyco", token=None, suffix="", header="ServiceBusAuthorization"):
    tok = hub.token(entity) if token is None else token
    return connect(hub.port, "/$hc/%s%s?sb-hc-action=connect" % (entity, suffix), {header: tok}, ca=hub.ca)


class SendAsync:
    """Starts a sender in a thread (its upgrade completes only after the
    listener acts); .join() returns (status, reason, ws_or_body)."""

    def __init__(self, hub, entity="hyco", **kw):
        import threading
        self.res = {}
        self.t = threading.Thread(target=lambda: self.res.update(r=send(hub, entity, **kw)))
        self.t.start()

    def join(self, timeout=5):
        self.t.join(timeout)
        return self.res["r"]


def rendezvous_path(address):
    u = urllib.parse.urlsplit(address)
    return u.path + "?" + u.query


class Pair:
    """A listener control channel plus one spliced sender/listener stream."""

    def __init__(self, hub, entity="hyco"):
        st, _, self.control = listen(hub, entity)
        assert st == 101
        sender = SendAsync(hub, entity)
        acc = read_accept(self.control)
        self.accept = acc
        st, _, self.listener = connect(hub.port, rendezvous_path(acc["address"]), ca=hub.ca)
        assert st == 101
        st, reason, self.sender = sender.join()
        assert st == 101, (st, reason)

    def close(self):
        for ws in (self.sender, self.listener, self.control):
            try:
                ws.sock.close()
            except OSError:
                pass


# ---- happy paths -------------------------------------------------------------

def test_stream_both_ways_and_accept_message_shape(hub):
    p = Pair(hub)
    acc = p.accept
    assert acc["address"].startswith("wss://127.0.0.1:%d/$hc/hyco?sb-hc-action=accept&sb-hc-id=" % hub.port)
    assert len(acc["id"]) == 32
    hdrs = {k.lower(): v for k, v in acc["connectHeaders"].items()}
    assert "sec-websocket-key" in hdrs and hdrs["sec-websocket-version"] == "13"
    assert "servicebusauthorization" not in hdrs and "authorization" not in hdrs  # credentials stripped
    assert acc["remoteEndpoint"]["address"] == "127.0.0.1" and acc["remoteEndpoint"]["port"] > 0
    p.sender.send_text("to listener")
    assert p.listener.recv_message() == (1, b"to listener", None)
    p.listener.send_binary(b"\x00\x01to sender")
    assert p.sender.recv_message() == (2, b"\x00\x01to sender", None)
    # Fragmented message with a ping in the middle passes through intact.
    p.sender.send(1, "frag", fin=False)
    p.sender.send(9, "pp")
    p.sender.send(0, "mented", fin=True)
    op, fin, data = p.listener.recv_frame()
    assert (op, fin, data) == (1, False, b"frag")
    assert p.listener.recv_frame() == (9, True, b"pp")
    assert p.listener.recv_frame() == (0, True, b"mented")
    # A close in one direction does not tear down the other.
    p.sender.close(1000, "sender done")
    assert p.listener.recv_message() == ("close", 1000, "sender done")
    p.listener.send_text("late reply")
    assert p.sender.recv_message() == (1, b"late reply", None)
    p.listener.close(1000, "")
    assert p.sender.recv_message()[0:2] == ("close", 1000)
    p.close()


def test_token_in_query_and_authorization_header(hub):
    """Tokens are accepted from sb-hc-token and from Authorization as well
    as from ServiceBusAuthorization."""
    st, _, ctl = listen(hub, via="query")
    assert st == 101
    sender = SendAsync(hub, header="Authorization")
    acc = read_accept(ctl)
    st, _, _ = connect(hub.port, rendezvous_path(acc["address"]), ca=hub.ca)
    assert st == 101 and sender.join()[0] == 101
    ctl.sock.close()


def test_long_entity_name_with_slashes_and_suffix(hub):
    tok = hub.token(ARC, name="listen", key=LISTEN_KEY)
    st, _, ctl = listen(hub, ARC, token=tok)
    assert st == 101
    sender = SendAsync(hub, ARC, token=hub.token(ARC, name="send", key=SEND_KEY), suffix="/api/v1")
    acc = read_accept(ctl)
    assert "/$hc/" + ARC + "?" in acc["address"]
    st2, _, lws = connect(hub.port, rendezvous_path(acc["address"]), ca=hub.ca)
    assert st2 == 101 and sender.join()[0] == 101
    ctl.sock.close()


def test_healthz_and_metrics(hub):
    assert hub.get("/healthz") == (200, "ok\n")
    st, text = hub.get("/metrics")
    assert st == 200
    for series in ("arc_relay_listeners", "arc_relay_connections_active", "arc_relay_bytes_total",
                   "arc_relay_rejects_total"):
        assert series in text


# ---- errors ---------------------------------------------------------------------

def test_unknown_path_is_404(hub):
    st, reason, _ = send(hub, "nosuch")
    assert (st, reason) == (404, "Endpoint does not exist.")
    st, reason, _ = listen(hub, "nosuch")
    assert (st, reason) == (404, "Endpoint does not exist.")


def test_no_listener_is_404(hub):
    st, reason, _ = send(hub, "other")
    assert (st, reason) == (404, "There are no listeners connected for the endpoint.")


@pytest.mark.parametrize("case", ["missing", "bad-signature", "expired", "forged-expiry", "unknown-key",
                                  "garbage"])
def test_bad_tokens_are_401(hub, case):
    good = hub.token("hyco")
    tok = {
        "missing": "",
        "bad-signature": hub.token("hyco", key="not-the-real-key-0123456789"),
        "expired": hub.token("hyco", expiry=time.time() - 5),
        "forged-expiry": good.replace("&se=", "&se=9"),
        "unknown-key": hub.token("hyco", name="nobody"),
        "garbage": "SharedAccessSignature nonsense",
    }[case]
    headers = {"ServiceBusAuthorization": tok} if tok else {}
    st, reason, _ = connect(hub.port, "/$hc/hyco?sb-hc-action=listen", headers, ca=hub.ca)
    assert st == 401, reason
    st, reason, _ = connect(hub.port, "/$hc/hyco?sb-hc-action=connect", headers, ca=hub.ca)
    assert st == 401, reason


def test_send_token_cannot_listen_and_scope_is_enforced(hub):
    tok = hub.token(ARC, name="send", key=SEND_KEY)
    st, reason, _ = listen(hub, ARC, token=tok)
    assert st == 403 and "right" in reason
    # An entity token for one hybrid connection is no good for another.
    st, _, _ = listen(hub, "hyco", token=hub.token("other"))
    assert st == 403


def test_26th_listener_is_refused(hub):
    ctls = []
    try:
        for _ in range(25):
            st, _, ws = listen(hub, "other")
            assert st == 101
            ctls.append(ws)
        assert hub.metric("arc_relay_listeners") >= 25
        st, reason, _ = listen(hub, "other")
        assert st == 403 and "Quota" in reason
    finally:
        for ws in ctls:
            ws.close()
            ws.sock.close()


def test_rendezvous_is_single_use(hub):
    p = Pair(hub)
    st, reason, _ = connect(hub.port, rendezvous_path(p.accept["address"]), ca=hub.ca)
    assert st == 404 and "expired" in reason
    p.close()


def test_rendezvous_expires_and_sender_hears(hub):
    st, _, ctl = listen(hub, "hyco")
    sender = SendAsync(hub)
    acc = read_accept(ctl)
    assert sender.join(6)[0] == 504  # the hub runs with --rendezvous-timeout 2
    st, _, _ = connect(hub.port, rendezvous_path(acc["address"]), ca=hub.ca)
    assert st == 404
    ctl.sock.close()


def test_guessed_rendezvous_id_is_refused(hub):
    st, _, _ = connect(hub.port, "/$hc/hyco?sb-hc-action=accept&sb-hc-id=" + "0" * 32, ca=hub.ca)
    assert st == 404


def test_listener_can_reject_a_sender(hub):
    st, _, ctl = listen(hub, "hyco")
    sender = SendAsync(hub)
    acc = read_accept(ctl)
    st, _, _ = connect(hub.port, rendezvous_path(acc["address"]) +
                       "&sb-hc-statusCode=403&sb-hc-statusDescription=" + urllib.parse.quote("not you"), ca=hub.ca)
    assert st == 410
    assert sender.join()[0:2] == (403, "not you")
    ctl.sock.close()


def test_renew_token(hub):
    st, _, ctl = listen(hub, "hyco")
    ctl.send_text(json.dumps({"renewToken": {"token": hub.token("hyco")}}))
    ctl.send(9, b"alive?")
    assert ctl.recv_frame() == (10, True, b"alive?")  # still open after a good renewal
    ctl.send_text(json.dumps({"renewToken": {"token": hub.token("hyco", key="wrong-key-0123456789")}}))
    msg = ctl.recv_message()
    assert msg[0:2] == ("close", 1008)


def test_listener_token_expiry_closes_with_1008(hub):
    st, _, ctl = listen(hub, "hyco", token=hub.token("hyco", ttl=2))
    assert st == 101
    msg = ctl.recv_message(timeout=6)
    assert msg[0:2] == ("close", 1008) and "expired" in msg[2]


def test_relay_pings_and_drops_silent_listeners(hub):
    st, _, ctl = listen(hub, "other")
    before = hub.metric("arc_relay_listeners")
    op, fin, _ = ctl.recv_frame(timeout=3)  # --ping-interval 1
    assert op == 9
    # Answering nothing from now on: the relay must drop us.
    deadline = time.time() + 6
    while time.time() < deadline and hub.metric("arc_relay_listeners") >= before:
        time.sleep(0.2)
    assert hub.metric("arc_relay_listeners") == before - 1


# ---- bad input ---------------------------------------------------------------------

def test_oversized_head_is_431(hub):
    st, _, _ = connect(hub.port, "/$hc/hyco?sb-hc-action=listen", {"X-Pad": "a" * 7000, "X-Pad2": "b" * 7000,
                                                                    "X-Pad3": "c" * 7000}, ca=hub.ca)
    assert st == 431


def test_malformed_request_is_400(hub):
    st, _, _ = connect(hub.port, "", raw_request=b"GET /$hc/hyco HTTP/1.1\nHost: x\n\n\r\n\r\n", ca=hub.ca)
    assert st == 400
    st, _, _ = connect(hub.port, "/$hc/hyco?sb-hc-action=listen", raw_request=
                       b"GET /$hc/hyco?sb-hc-action=listen HTTP/1.1\r\nHost: x\r\n\r\n", ca=hub.ca)
    assert st == 400  # not an upgrade


def test_unmasked_frame_gets_1002_and_others_carry_on(hub):
    bad = Pair(hub)
    good = Pair(hub)
    bad.sender.send(2, b"unmasked", mask=False)
    assert bad.sender.recv_message()[0:2] == ("close", 1002)
    assert bad.listener.recv_message()[0:2] == ("close", 1001)
    good.sender.send_text("still fine")
    assert good.listener.recv_message() == (1, b"still fine", None)
    bad.close()
    good.close()


def test_invalid_utf8_in_text_gets_1007(hub):
    p = Pair(hub)
    p.sender.send(1, b"ok \xe2\x28\xa1 not ok")
    assert p.sender.recv_message()[0:2] == ("close", 1007)
    assert p.listener.recv_message()[0:2] == ("close", 1001)
    p.close()


def test_oversized_control_message_gets_1009(hub):
    st, _, ctl = listen(hub, "hyco")
    ctl.send_text("x" * (70 * 1024))
    assert ctl.recv_message()[0:2] == ("close", 1009)


def test_peer_leaving_without_close_frame(hub):
    """Between frames the other side hears 1001; mid-frame it can only be
    disconnected (a close frame would land inside the frame)."""
    p = Pair(hub)
    p.sender.send_binary(b"whole")
    p.sender.sock.close()
    assert p.listener.recv_message() == (2, b"whole", None)
    assert p.listener.recv_message()[0:2] == ("close", 1001)
    p.close()

    p = Pair(hub)
    frame = p.sender.frame(2, b"y" * 1000)
    p.sender.sock.sendall(frame[:500])
    time.sleep(0.2)
    p.sender.sock.close()
    with pytest.raises(Closed):
        p.listener.recv_message()
    p.close()
    q = Pair(hub)
    q.listener.send_text("after")
    assert q.sender.recv_message() == (1, b"after", None)
    q.close()


def test_reader_that_stops_is_bounded_and_closed(hub):
    """The listener floods a sender that never reads. Relay memory stays
    bounded (backpressure), another stream keeps flowing meanwhile, and the
    stalled stream is closed after --stall-timeout (2 s here)."""
    slow = Pair(hub)
    other = Pair(hub)
    chunk = b"z" * 65536
    slow.listener.sock.settimeout(0.2)
    sent = 0
    peak_queued = 0
    start = time.time()
    blocked_since = None
    while time.time() - start < 15:
        try:
            slow.listener.sock.sendall(slow.listener.frame(2, chunk))
            sent += len(chunk)
            blocked_since = None
        except (socket.timeout, ssl.SSLWantWriteError, TimeoutError):
            blocked_since = blocked_since or time.time()
        except (OSError, ssl.SSLError):
            break  # the relay closed the stalled stream
        peak_queued = max(peak_queued, hub.metric("arc_relay_queued_bytes"))
        other.sender.send_text("tick")
        assert other.listener.recv_message(timeout=2) == (1, b"tick", None)
    assert sent > 0
    # 256 KiB high water + one 64 KiB delivery + framing, per direction.
    assert peak_queued < 1024 * 1024, peak_queued
    assert time.time() - start < 15, "the stalled stream was never closed"
    assert "peer stopped reading" in hub.log()
    slow.close()
    other.close()


def test_failed_listen_storm_is_rate_limited(hub):
    statuses = [listen(hub, "hyco", token=hub.token("hyco", key="bad-key-0123456789abc"))[0] for _ in range(25)]
    assert statuses[0] == 401
    assert statuses[-1] == 429
    # A correct listener from elsewhere would still be served; from here we wait out the window.


# ---- listen addresses on the command line ----------------------------------

HUB_BIN = os.path.join(BUILD, "bin", "arc-hub")
AGENT_BIN = os.path.join(BUILD, "bin", "clusterconnect-agent")


def run(*argv, env=None):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    out = r.stdout + r.stderr
    assert "Assertion" not in out and r.returncode >= 0, (r.returncode, out)  # no libuv abort
    return r.returncode, out


@pytest.mark.parametrize("value,message", [
    ("localhost:8443", "'localhost:8443' is not an IP address and port (host names are not resolved); "
                       "use e.g. 127.0.0.1:8443"),
    ("999.1.1.1:1", "'999.1.1.1:1' is not an IP address and port; use e.g. 127.0.0.1:1"),
    ("127.0.0.1", "'127.0.0.1' is not an IP address and port; use e.g. 127.0.0.1:8443 or [::1]:8443"),
    ("127.0.0.1:65536", "'127.0.0.1:65536' has no port in 0..65535; use e.g. 127.0.0.1:8443"),
])
@pytest.mark.parametrize("binary,flag", [(HUB_BIN, "--listen"), (AGENT_BIN, "--health-listen")])
def test_bad_listen_address_is_a_usage_error(binary, flag, value, message):
    code, out = run(binary, flag, value)
    assert code == 2, out
    assert out == "%s: %s: %s\n" % (os.path.basename(binary), flag, message)


def test_listen_address_in_use_fails_cleanly(hub):
    """A bind failure after the handle exists: each daemon closes it (the
    conn_listen contract) and exits 1 with the address and the reason."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    d = tempfile.mkdtemp(prefix="ck-listen-")
    try:
        code, out = run(HUB_BIN, "--dev", d, "--listen", "127.0.0.1:%d" % port)
        assert code == 1, out
        assert "arc-hub: cannot listen on 127.0.0.1:%d: address already in use\n" % port in out
        token = os.path.join(d, "token")
        with open(token, "w") as f:
            f.write("agent-token")
        code, out = run(AGENT_BIN, "--relay", hub.url(), "--hybrid-connection", "hyco", "--key-name", "root",
                        "--apiserver", "https://127.0.0.1:1", "--apiserver-ca", hub.ca, "--relay-ca", hub.ca,
                        "--token-file", token, "--health-listen", "127.0.0.1:%d" % port,
                        env=dict(os.environ, CK_RELAY_KEY="unused-key"))
        assert code == 1, out
        assert out == ("clusterconnect-agent: --health-listen: cannot listen on 127.0.0.1:%d: "
                       "address already in use\n" % port)
    finally:
        busy.close()
        shutil.rmtree(d, ignore_errors=True)
