"""The bulk rows' TLS upstream, one server for every path (direct, through
connectedk8s, through chisel), holding the kube-apiserver's certificate:

  GET /bench/bulk?bytes=N     200 with an N-byte body (a large response)
  GET /bench/pipe + Upgrade   101, then counts X-Bench-Bytes bytes sent by
                              the client and answers "ok N\\n" (the shape of a
                              port-forward pipe after its upgrade)
  GET /version                what the agent asks at start-up

kube-apiserver cannot serve these: a large body from it costs its own JSON
encoding, and a port-forward needs a kubelet. Threads per connection; the
bytes go out through OpenSSL in 1 MiB writes, so Python is not the limit
on two cores.
"""
import socket
import ssl
import threading
import urllib.parse

BLOCK = b"\x5a" * (1 << 20)


class Upstream:
    def __init__(self, cert, key):
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        self.srv = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.srv.close()

    def _accept(self):
        while True:
            try:
                raw, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s = self.ctx.wrap_socket(raw, server_side=True)
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                hdrs = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    hdrs[k.strip().lower()] = v.strip()
                u = urllib.parse.urlsplit(target)
                q = urllib.parse.parse_qs(u.query)
                n = int(hdrs.get("content-length", "0"))
                while len(buf) < n:  # no request body is used; drain it
                    buf += s.recv(65536)
                buf = buf[n:]
                if u.path == "/bench/bulk":
                    size = int(q["bytes"][0])
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                              b"Content-Length: %d\r\n\r\n" % size)
                    while size > 0:
                        chunk = BLOCK if size >= len(BLOCK) else BLOCK[:size]
                        s.sendall(chunk)
                        size -= len(chunk)
                elif u.path == "/bench/pipe" and "upgrade" in hdrs:
                    s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n"
                              % hdrs["upgrade"].encode())
                    self._sink(s, int(hdrs["x-bench-bytes"]), len(buf))
                    return
                elif u.path == "/version":
                    body = b'{"major":"1","minor":"32","gitVersion":"v1.32.4-bench-upstream"}'
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                              % len(body) + body)
                else:
                    s.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        except (OSError, ValueError, KeyError):
            pass
        finally:
            raw.close()

    @staticmethod
    def _sink(s, total, got):
        view = memoryview(bytearray(1 << 20))
        while got < total:
            n = s.recv_into(view)
            if not n:
                return
            got += n
        s.sendall(b"ok %d\n" % got)
        s.recv(1)  # the client closes
