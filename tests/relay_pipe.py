"""Test fixture standing in for `az connectedk8s proxy` until that lands
(issue 5): a TLS port on 127.0.0.1 whose every connection becomes a
Hybrid Connections sender through the relay, carrying the decrypted bytes
unchanged in binary frames. It serves TLS (with the hub's development
certificate) because kubectl sends bearer tokens only over TLS. kubectl
points at https://127.0.0.1:<port> trusting the hub's CA."""
import os
import socket
import ssl
import threading

from wsclient import Closed, connect


class RelayPipe:
    def __init__(self, hub, entity, token):
        self.hub, self.entity, self.token = hub, entity, token
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(os.path.join(hub.dir, "server.pem"), os.path.join(hub.dir, "server.key"))
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, raw):
        try:
            c = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        st, reason, ws = connect(self.hub.port, "/$hc/%s?sb-hc-action=connect" % self.entity,
                                 {"ServiceBusAuthorization": self.token}, ca=self.hub.ca)
        if st != 101:
            body = ("relay refused the sender: %d %s" % (st, reason)).encode()
            c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                      % (len(body), body))
            c.close()
            return

        def up():
            try:
                while True:
                    data = c.recv(65536)
                    if not data:
                        break
                    ws.send(2, data)
            except OSError:
                pass
            ws.close()

        threading.Thread(target=up, daemon=True).start()
        try:
            while True:
                op, fin, payload = ws.recv_frame(timeout=3600)
                if op == 8:
                    break
                if op in (0, 1, 2):
                    c.sendall(payload)
        except (Closed, OSError, TimeoutError):
            pass
        # shutdown() first: close() alone does not send FIN while the other
        # thread is still blocked reading this socket.
        try:
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        c.close()

    def close(self):
        self.running = False
        self.srv.close()
