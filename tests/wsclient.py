"""A deliberately small WebSocket client for driving the relay in tests.

It speaks just enough RFC 6455 to act as a Hybrid Connections listener or
sender, and lets a test send frames a correct client never would (unmasked,
truncated, invalid UTF-8) or stop reading. It also makes SAS tokens with
its own HMAC code, independent of the C implementation under test.
"""
import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import struct
import time
import urllib.parse

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def sas_token(resource, key_name, key, ttl=3600, expiry=None):
    se = str(int(expiry if expiry is not None else time.time() + ttl))
    sr = urllib.parse.quote(resource, safe="")
    sig = base64.b64encode(hmac.new(key.encode(), (sr + "\n" + se).encode(), hashlib.sha256).digest()).decode()
    return "SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s" % (sr, urllib.parse.quote(sig, safe=""), se, key_name)


class Closed(Exception):
    pass


class WS:
    def __init__(self, sock, leftover=b""):
        self.sock = sock
        self.buf = leftover

    # -- frames ---------------------------------------------------------
    @staticmethod
    def frame(opcode, payload=b"", fin=True, mask=True):
        if isinstance(payload, str):
            payload = payload.encode()
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            head = struct.pack("!BBQ", b0, mbit | 127, n)
        if not mask:
            return head + payload
        key = os.urandom(4)
        masked = bytes(c ^ key[i % 4] for i, c in enumerate(payload)) if n < 65536 else _mask_fast(payload, key)
        return head + key + masked

    def send(self, opcode, payload=b"", fin=True, mask=True):
        self.sock.sendall(self.frame(opcode, payload, fin, mask))

    def send_text(self, s):
        self.send(1, s)

    def send_binary(self, b):
        self.send(2, b)

    def close(self, code=1000, reason=""):
        try:
            self.send(8, struct.pack("!H", code) + reason.encode())
        except OSError:
            pass

    def _need(self, n, timeout):
        deadline = time.time() + timeout
        while len(self.buf) < n:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no frame within %.1fs" % timeout)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(262144)
            except (ssl.SSLError, ConnectionError) as e:
                raise Closed(str(e))
            if not chunk:
                raise Closed("connection closed")
            self.buf += chunk

    def recv_frame(self, timeout=5):
        """Returns (opcode, fin, payload). Server frames must be unmasked."""
        self._need(2, timeout)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server sent a masked frame"
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4, timeout)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10, timeout)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        self._need(off + n, timeout)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, bool(b0 & 0x80), payload

    def recv_message(self, timeout=5, answer_pings=True):
        """Next data message (opcode, bytes), reassembled; ('close', code) on close."""
        parts, op = [], None
        while True:
            opcode, fin, payload = self.recv_frame(timeout)
            if opcode == 9:
                if answer_pings:
                    self.send(10, payload)
                continue
            if opcode == 10:
                continue
            if opcode == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return "close", code, payload[2:].decode(errors="replace")
            if opcode != 0:
                op = opcode
            parts.append(payload)
            if fin:
                return op, b"".join(parts), None


def _mask_fast(payload, key):
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def connect(port, target, headers=None, ca=None, host="127.0.0.1", tls=True, raw_request=None):
    """Opens a TLS connection and sends an upgrade for `target`.

    Returns (status, reason, ws_or_body). On 101 the third item is a WS.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls:
        ctx = ssl.create_default_context(cafile=ca)
        sock = ctx.wrap_socket(sock, server_hostname=host)
    key = base64.b64encode(os.urandom(16)).decode()
    if raw_request is None:
        lines = ["GET %s HTTP/1.1" % target, "Host: %s:%d" % (host, port), "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        raw_request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    sock.sendall(raw_request)
    data = b""
    sock.settimeout(10)
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n")[0].decode()
    parts = status_line.split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 else 0
    reason = parts[2] if len(parts) > 2 else ""
    if status == 101:
        hdrs = dict(l.split(": ", 1) for l in head.decode().split("\r\n")[1:])
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        assert hdrs.get("Sec-WebSocket-Accept") == want, "bad Sec-WebSocket-Accept"
        return status, reason, WS(sock, rest)
    body = rest
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    except (OSError, ssl.SSLError):
        pass
    sock.close()
    return status, reason, body


def read_accept(listener, timeout=5):
    op, data, _ = listener.recv_message(timeout)
    assert op == 1, "expected a text control message, got %r" % (op,)
    return json.loads(data)["accept"]
