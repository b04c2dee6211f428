"""Test fixture: a stand-in upstream for the Kubernetes streaming endpoints.

There is no kubelet on these machines, so a real API server cannot run
`exec`. This small TLS server plays the API server for one pod: it answers
GET .../pods/<name> with a running Pod, and an `exec` WebSocket upgrade
with the v5.channel.k8s.io protocol (binary frames whose first byte is the
channel: 0 stdin, 1 stdout, 2 stderr, 3 status, 255 close-stream). It
echoes stdin back on stdout upper-cased, and, once stdin is closed, reports
Success on channel 3. A port-forward request (.../portforward) is handed,
bytes for bytes, to `kubelet` (host:port of tests/kubelet-portforward, the
kubelet's own port-forward server built from the pinned Kubernetes
modules), so real kubectl port-forward speaks real SPDY end to end. It
records the headers of every request, so tests can check what the agent
sent upstream (impersonation, credentials)."""
import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Just enough discovery for kubectl to map "pod" to /api/v1/.../pods.
DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:443"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"],
         "shortNames": ["po"]},
        {"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions",
         "verbs": ["create", "get"]}]},
}


class StreamFixture:
    def __init__(self, cert, key, kubelet=None):
        self.kubelet = kubelet
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.requests = []  # (method, path, headers dict lower-cased)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                raw, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        try:
            s = self.ctx.wrap_socket(raw, server_side=True)
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                hdrs = {}
                for l in lines[1:]:
                    k, v = l.split(":", 1)
                    hdrs.setdefault(k.strip().lower(), []).append(v.strip())
                self.requests.append((method, target, hdrs))
                path = target.split("?")[0]
                if path.endswith("/exec") and "upgrade" in hdrs:
                    self._exec(s, hdrs, buf)
                    return
                if path.endswith("/portforward") and self.kubelet and "upgrade" in hdrs:
                    self._to_kubelet(s, head, buf)
                    return
                if path in DISCOVERY:
                    self._json(s, 200, DISCOVERY[path])
                elif method == "GET" and "/pods/" in path and path.count("/") == 6:
                    ns, name = path.split("/")[4], path.split("/")[6]
                    self._json(s, 200, {"apiVersion": "v1", "kind": "Pod",
                                        "metadata": {"name": name, "namespace": ns},
                                        "spec": {"containers": [{"name": "app", "image": "fixture"}]},
                                        "status": {"phase": "Running"}})
                else:
                    self._json(s, 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                        "reason": "NotFound", "code": 404, "message": "not in the fixture"})
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            raw.close()

    @staticmethod
    def _json(s, code, obj):
        body = json.dumps(obj).encode()
        s.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                  % (code, len(body), body))

    def _exec(self, s, hdrs, buf):
        offered = [p.strip() for v in hdrs.get("sec-websocket-protocol", []) for p in v.split(",")]
        assert "v5.channel.k8s.io" in offered, offered
        key = hdrs["sec-websocket-key"][0]
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        s.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n" % accept).encode())

        def send(payload, op=2):
            n = len(payload)
            head = struct.pack("!BB", 0x80 | op, n) if n < 126 else struct.pack("!BBH", 0x80 | op, 126, n)
            s.sendall(head + payload)

        def need(n):
            nonlocal buf
            while len(buf) < n:
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError("eof")
                buf += chunk

        while True:
            need(2)
            op, ln = buf[0] & 0x0F, buf[1] & 0x7F
            off = 2
            if ln == 126:
                need(4)
                ln, off = struct.unpack("!H", buf[2:4])[0], 4
            elif ln == 127:
                need(10)
                ln, off = struct.unpack("!Q", buf[2:10])[0], 10
            need(off + 4 + ln)
            mask = buf[off:off + 4]
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(buf[off + 4:off + 4 + ln]))
            buf = buf[off + 4 + ln:]
            if op == 8:
                return
            if op != 2 or not data:
                continue
            if data[0] == 0 and len(data) > 1:  # stdin
                send(b"\x01" + data[1:].upper())
            elif data[0] == 255 and data[1:2] == b"\x00":  # v5: stdin closed
                send(b"\x03" + json.dumps({"metadata": {}, "status": "Success"}).encode())
                send(struct.pack("!H", 1000), op=8)
                return

    def _to_kubelet(self, s, head, buf):
        """Pipes the request and everything after it to the kubelet's
        port-forward server, and its answer back."""
        k = socket.create_connection(tuple(self.kubelet.rsplit(":", 1)[0:1]) + (int(self.kubelet.rsplit(":", 1)[1]),))
        k.sendall(head + b"\r\n\r\n" + buf)

        def back():
            try:
                while True:
                    d = k.recv(65536)
                    if not d:
                        break
                    s.sendall(d)
            except OSError:
                pass
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        t = threading.Thread(target=back, daemon=True)
        t.start()
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                k.sendall(d)
        except (OSError, ssl.SSLError):
            pass
        try:
            k.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        t.join(30)
        k.close()

    def close(self):
        self.srv.close()
