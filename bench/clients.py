"""The clients of bench/run: one implementation of each mechanism, used on
every path. An endpoint is where a path starts on loopback (the upstream
itself, the proxy's port, chisel's local port) plus the TLS material a
client presents there; the bytes after TLS are the same on every path.
"""
import multiprocessing
import os
import selectors
import socket
import ssl
import statistics
import threading
import time

BLOCK = b"\xa5" * (1 << 20)


class Endpoint:
    def __init__(self, name, port, ca, cert, key):
        self.name, self.port, self.ca, self.cert, self.key = name, port, ca, cert, key
        self._ctx = None

    def ctx(self):
        if self._ctx is None:
            c = ssl.create_default_context(cafile=self.ca)
            c.load_cert_chain(self.cert, self.key)
            self._ctx = c
        return self._ctx

    def connect(self, timeout=60, rcvbuf=None):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.settimeout(timeout)
        raw.connect(("127.0.0.1", self.port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.ctx().wrap_socket(raw, server_hostname="127.0.0.1")


class Reader:
    """HTTP/1.1 responses off one TLS socket (Content-Length or chunked)."""

    def __init__(self, s):
        self.s, self.buf = s, b""

    def _more(self):
        d = self.s.recv(1 << 16)
        if not d:
            raise ConnectionError("closed")
        self.buf += d

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return int(lines[0].split(" ", 2)[1]), hdrs

    def body(self, hdrs):
        if "content-length" in hdrs:
            n = int(hdrs["content-length"])
            while len(self.buf) < n:
                self._more()
            b, self.buf = self.buf[:n], self.buf[n:]
            return b
        assert hdrs.get("transfer-encoding", "").lower() == "chunked", hdrs
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._more()
            line, _, self.buf = self.buf.partition(b"\r\n")
            n = int(line.split(b";")[0], 16)
            while len(self.buf) < n + 2:
                self._more()
            out, self.buf = out + self.buf[:n], self.buf[n + 2:]
            if n == 0:
                return out

    def response(self):
        st, h = self.head()
        return st, self.body(h)


def get(path, host="127.0.0.1"):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\nUser-Agent: ck-bench\r\n\r\n"
            % (path, host)).encode()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


# ---- row 1: bulk, one stream ----

def bulk_body(ep, nbytes):
    """Seconds to receive an nbytes response body (from the first byte of
    the head to the last of the body)."""
    s = ep.connect()
    s.sendall(get("/bench/bulk?bytes=%d" % nbytes))
    r = Reader(s)
    t0 = time.perf_counter()
    st, h = r.head()
    assert st == 200, (st, h)
    got = len(r.buf)
    view = memoryview(bytearray(1 << 20))
    while got < nbytes:
        n = s.recv_into(view)
        if not n:
            raise ConnectionError("body cut at %d of %d" % (got, nbytes))
        got += n
    dt = time.perf_counter() - t0
    s.close()
    return dt


def bulk_pipe(ep, nbytes):
    """Seconds to push nbytes through an upgraded connection until the
    upstream acknowledges it counted them all."""
    s = ep.connect()
    s.sendall(("GET /bench/pipe HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
               "X-Bench-Bytes: %d\r\n\r\n" % nbytes).encode())
    r = Reader(s)
    st, h = r.head()
    assert st == 101, (st, h)
    t0 = time.perf_counter()
    left = nbytes
    while left > 0:
        chunk = BLOCK if left >= len(BLOCK) else BLOCK[:left]
        s.sendall(chunk)
        left -= len(chunk)
    while b"\n" not in r.buf:
        r._more()
    dt = time.perf_counter() - t0
    assert r.buf.startswith(b"ok %d" % nbytes), r.buf[:80]
    s.close()
    return dt


# ---- row 2: small requests on a warm connection ----

def warm_latencies(ep, n, path="/version"):
    """Microseconds per GET on one kept-alive connection."""
    s = ep.connect()
    r = Reader(s)
    req = get(path)
    for _ in range(20):  # warm-up
        s.sendall(req)
        r.response()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        s.sendall(req)
        st, _ = r.response()
        out.append((time.perf_counter() - t) * 1e6)
        assert st == 200, st
    s.close()
    return out


def _rps_worker(ep, threads, t_start, t_end, q):
    counts = [0] * threads
    errors = []

    def run(i):
        try:
            s = ep.connect()
            r = Reader(s)
            req = get("/version")
            for _ in range(3):
                s.sendall(req)
                r.response()
            while time.time() < t_start:
                time.sleep(0.001)
            while time.time() < t_end:
                s.sendall(req)
                st, _ = r.response()
                if st != 200:
                    raise RuntimeError("status %d" % st)
                counts[i] += 1
            s.close()
        except Exception as e:  # reported, never counted
            errors.append(repr(e))

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put((sum(counts), errors))


def requests_per_second(ep, clients, seconds, procs=4, cpu_pids=()):
    """Requests/s over `clients` kept-alive connections (GET /version), from
    `procs` processes so the client is not one interpreter's lock. Returns
    (rps, {pid: CPU seconds used during the window}, requests)."""
    from tools import cpu_seconds
    mp = multiprocessing.get_context("fork")
    q = mp.Queue()
    ramp = 3.0 + clients * 0.05
    t_start = time.time() + ramp
    t_end = t_start + seconds
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    ps = [mp.Process(target=_rps_worker, args=(ep, n, t_start, t_end, q)) for n in per if n]
    for p in ps:
        p.start()
    time.sleep(max(0, t_start - time.time()))
    c0 = {pid: cpu_seconds(pid) for pid in cpu_pids}
    time.sleep(max(0, t_end - time.time()))
    c1 = {pid: cpu_seconds(pid) for pid in cpu_pids}
    total, errs = 0, []
    for _ in ps:
        n, e = q.get(timeout=120)
        total += n
        errs += e
    for p in ps:
        p.join(30)
    if errs:
        raise RuntimeError("%d of %d clients failed: %s" % (len(errs), clients, errs[:3]))
    return total / seconds, {pid: c1[pid] - c0[pid] for pid in cpu_pids}, total


# ---- row 3: fresh connection + first response byte ----

def fresh_ttfb(ep, n, pause):
    """Milliseconds from connect() to the first byte of the response to
    GET /version on a new TLS connection; the same idle pause before each
    (it lets a proxy's pool of senders refill)."""
    out = []
    req = get("/version")
    for _ in range(n):
        time.sleep(pause)
        t = time.perf_counter()
        s = ep.connect()
        s.sendall(req)
        first = s.recv(1)
        out.append((time.perf_counter() - t) * 1000)
        assert first == b"H", first
        r = Reader(s)
        r.buf = first
        st, _ = r.response()
        assert st == 200, st
        s.close()
    return out


# ---- row 4: many watches ----

def open_watches(ep, paths, threads=8, rcvbuf=None):
    """One watch per entry of `paths`, each its own connection, opened from
    a few threads; returns the sockets, each past its 200 response head
    (any event bytes already read are kept in sock.pending)."""
    socks = [None] * len(paths)
    errors = []
    it = iter(range(len(paths)))
    lock = threading.Lock()

    def run():
        while True:
            with lock:
                i = next(it, None)
            if i is None:
                return
            try:
                s = ep.connect(rcvbuf=rcvbuf)
                s.sendall(get(paths[i]))
                r = Reader(s)
                st, h = r.head()
                assert st == 200, (st, r.buf[:200])
                s.pending = r.buf
                socks[i] = s
            except Exception as e:
                errors.append(repr(e))
                return

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        for s in socks:
            if s:
                s.close()
        raise RuntimeError("%d watches failed to open: %s" % (len(errors), errors[:3]))
    return socks


class EventCounter:
    """Counts watch events of one type on many sockets from one thread
    (selectors), recording when each socket saw its k-th event."""

    MARK = b'"type":"ADDED"'

    def __init__(self, socks):
        self.socks = socks
        self.times = {id(s): [] for s in socks}
        self.carry = {id(s): b"" for s in socks}
        self.sel = selectors.DefaultSelector()
        self.stop = False
        for s in socks:
            s.setblocking(False)
            self._feed(s, getattr(s, "pending", b""), time.perf_counter())
            self.sel.register(s, selectors.EVENT_READ)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _feed(self, s, data, now):
        buf = self.carry[id(s)] + data
        self.times[id(s)] += [now] * buf.count(self.MARK)
        self.carry[id(s)] = buf[-(len(self.MARK) - 1):]

    def _run(self):
        while not self.stop:
            for key, _ in self.sel.select(0.05):
                s = key.fileobj
                now = time.perf_counter()
                while True:
                    try:
                        d = s.recv(1 << 16)
                    except (ssl.SSLWantReadError, BlockingIOError):
                        break
                    except OSError:
                        d = b""
                    if not d:
                        self.sel.unregister(s)
                        break
                    self._feed(s, d, now)

    def wait(self, k, timeout):
        """Waits until every socket saw k events; returns whether they did."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(len(v) >= k for v in self.times.values()):
                return True
            time.sleep(0.01)
        return False

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sel.close()


def latencies_ms(counter, sent_at):
    """Per event and socket: arrival minus the moment the event was made."""
    out = []
    for ts in counter.times.values():
        for k, t in enumerate(ts[:len(sent_at)]):
            out.append((t - sent_at[k]) * 1000)
    return out


def median(xs):
    return statistics.median(xs) if xs else None


def ready_bytes(s):
    """What a stalled socket has buffered right now (read without waiting)."""
    s.setblocking(False)
    n = 0
    try:
        while True:
            d = s.recv(1 << 16)
            if not d:
                break
            n += len(d)
    except (ssl.SSLWantReadError, BlockingIOError, OSError):
        pass
    return n


def cpu_count():
    return os.cpu_count()
