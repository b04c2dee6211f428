"""Fixtures for the outbound-proxy tests: a real forward proxy (Debian's
tinyproxy) on a given address, a small misbehaving proxy (fixture: it
refuses with 407/403/502, hangs up mid-handshake, or answers slowly and
then tunnels), and a network namespace whose only route is a veth pair to
the host, so a process inside can reach the host only at the address the
test names (the proxy's)."""
import ctypes
import os
import re
import socket
import shutil
import subprocess
import tempfile
import threading
import time

from kube import free_port


def wait_port(host, port, timeout=10):
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


class Tinyproxy:
    """tinyproxy listening on host:port, optionally with Basic auth; its
    access log (LogLevel Connect) records each CONNECT."""

    def __init__(self, workdir, host="127.0.0.1", auth=None):
        self.host, self.port = host, free_port()
        # Its own directory, outside the (0700) work directory: tinyproxy
        # drops to nobody and writes its log here.
        self.dir = tempfile.mkdtemp(prefix="ck-tinyproxy-%d-" % self.port)
        os.chmod(self.dir, 0o777)
        self.workdir = workdir
        self.log_path = os.path.join(self.dir, "access.log")
        conf = os.path.join(self.dir, "tinyproxy.conf")
        lines = ["Port %d" % self.port, "Listen %s" % host, "Timeout 600", 'LogFile "%s"' % self.log_path,
                 "LogLevel Connect", "MaxClients 200", "Allow 127.0.0.1", "Allow 10.0.0.0/8",
                 "User nobody", "Group nogroup"]
        if auth:
            lines.append("BasicAuth %s %s" % auth)
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.out = open(os.path.join(self.dir, "stdout"), "w")
        self.proc = subprocess.Popen(["tinyproxy", "-d", "-c", conf], stdout=self.out, stderr=subprocess.STDOUT)
        wait_port(host, self.port)

    def url(self, auth=None):
        return "http://%s%s:%d" % ("%s:%s@" % auth if auth else "", self.host, self.port)

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def connects(self):
        """host:port of every CONNECT the proxy was asked for."""
        return re.findall(r"Request \(file descriptor \d+\): CONNECT (\S+) HTTP/1\.[01]", self.log())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.out.close()
        # Keep the log with the test's files.
        shutil.copytree(self.dir, os.path.join(self.workdir, os.path.basename(self.dir)), dirs_exist_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class BadProxy:
    """A fixture proxy on 127.0.0.1 that misbehaves as `mode` says:
    "407", "403", "502": refuses the CONNECT with that status;
    "hangup": reads the CONNECT and closes the connection;
    "slow": waits `delay` seconds, then tunnels like a real proxy."""

    def __init__(self, mode, delay=2.0):
        self.mode, self.delay = mode, delay
        self.requests = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, auth=None):
        return "http://%s127.0.0.1:%d" % ("%s:%s@" % auth if auth else "", self.port)

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                b = c.recv(4096)
                if not b:
                    return
                head += b
            line = head.split(b"\r\n", 1)[0].decode()
            self.requests.append(line)
            if self.mode in ("407", "403", "502"):
                reason = {"407": "Proxy Authentication Required", "403": "Forbidden", "502": "Bad Gateway"}[self.mode]
                extra = b"Proxy-Authenticate: Basic realm=\"fixture\"\r\n" if self.mode == "407" else b""
                c.sendall(b"HTTP/1.1 %s %s\r\n%sContent-Length: 0\r\n\r\n" % (self.mode.encode(), reason.encode(), extra))
                time.sleep(0.2)
                return
            if self.mode == "hangup":
                return
            time.sleep(self.delay)
            host, port = line.split()[1].rsplit(":", 1)
            up = socket.create_connection((host.strip("[]"), int(port)))
            c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _pipe(c, up)
        finally:
            c.close()

    def stop(self):
        self.closed = True
        self.sock.close()


def _pipe(a, b):
    """Copies both ways until either side closes."""
    def one(src, dst):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                dst.sendall(d)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
    t = threading.Thread(target=one, args=(b, a), daemon=True)
    t.start()
    one(a, b)
    t.join(5)
    b.close()


CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetNS:
    """A network namespace joined to the host by one veth pair:
    host side HOST_IP/30, namespace side NS_IP/30, loopback up, no other
    route. The namespace's 127.0.0.1 is its own: the host's loopback
    services (the hub) are out of reach except through what listens on
    HOST_IP (the proxy)."""

    def __init__(self, index):
        self.name = "ckpx%d-%d" % (os.getpid() % 100000, index)
        base = 64 + (os.getpid() + index * 4) % 180
        self.host_ip = "10.213.%d.1" % base
        self.ns_ip = "10.213.%d.2" % base
        self.veth = "ckv%d%d" % (os.getpid() % 10000, index)
        self._run("ip", "netns", "add", self.name)
        try:
            self._run("ip", "link", "add", self.veth, "type", "veth", "peer", "name", self.veth + "n")
            self._run("ip", "link", "set", self.veth + "n", "netns", self.name)
            self._run("ip", "addr", "add", self.host_ip + "/30", "dev", self.veth)
            self._run("ip", "link", "set", self.veth, "up")
            self.exec_run("ip", "addr", "add", self.ns_ip + "/30", "dev", self.veth + "n")
            self.exec_run("ip", "link", "set", self.veth + "n", "up")
            self.exec_run("ip", "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise
        self._bridges = []

    @staticmethod
    def _run(*args):
        subprocess.run(args, check=True, capture_output=True, text=True)

    def prefix(self):
        return ["ip", "netns", "exec", self.name]

    def exec_run(self, *args, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.prefix() + list(args), **kw)

    def routes(self):
        return self.exec_run("ip", "route", "show").stdout

    def bridge(self, port):
        """Makes host 127.0.0.1:port reachable as the namespace's own
        127.0.0.1:port (the one direct path the test allows: the cluster's
        API server, which an in-cluster agent reaches without a proxy). The
        listening socket is created inside the namespace; connections are
        forwarded from the host side."""
        own = os.open("/proc/self/ns/net", os.O_RDONLY)
        target = os.open("/run/netns/" + self.name, os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            try:
                lsock = socket.socket()
                lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                lsock.bind(("127.0.0.1", port))
                lsock.listen(64)
            finally:
                if _libc.setns(own, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(own)
            os.close(target)
        self._bridges.append(lsock)

        def accept():
            while True:
                try:
                    c, _ = lsock.accept()
                except OSError:
                    return
                try:
                    up = socket.create_connection(("127.0.0.1", port))
                except OSError:
                    c.close()
                    continue
                threading.Thread(target=_pipe, args=(c, up), daemon=True).start()
        threading.Thread(target=accept, daemon=True).start()

    def close(self):
        for s in getattr(self, "_bridges", []):
            s.close()
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
