"""Helpers of bench/run that are not measurements: the pinned peer tools
(chisel, Toxiproxy) built from the Go module proxy, the cipher's own cost
from `openssl speed`, and per-process CPU and memory from /proc.

The Go programs are pinned by bench/go/<tool>/go.mod and go.sum and built
with `go build` inside that module (`go install pkg@version` fails here on
the deprecation lookup). GOSUMDB is off: go.sum is the pin. Binaries are
cached in ~/.cache/connectedk8s/bench/, keyed by the go.sum they came from.
"""
import hashlib
import os
import re
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "connectedk8s", "bench")
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# tool -> (module directory under bench/go, package to build)
GO_TOOLS = {
    "chisel": ("chisel", "github.com/jpillora/chisel"),
    "toxiproxy": ("toxiproxy", "github.com/Shopify/toxiproxy/v2/cmd/server"),
}


def go_tool(name, log=print):
    """Path of the pinned binary, building it on first use; None (after
    saying why) when Go or the module proxy is not reachable."""
    moddir, pkg = GO_TOOLS[name]
    src = os.path.join(HERE, "go", moddir)
    with open(os.path.join(src, "go.sum"), "rb") as f:
        key = hashlib.sha256(f.read()).hexdigest()[:12]
    out = os.path.join(CACHE, "%s-%s" % (name, key), name)
    if os.access(out, os.X_OK):
        return out
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None)
    if not go:
        log("bench: no Go toolchain, %s skipped" % name)
        return None
    os.makedirs(os.path.dirname(out), exist_ok=True)
    env = dict(os.environ, GOSUMDB="off", GOFLAGS="-mod=mod -buildvcs=false", CGO_ENABLED="0")
    log("bench: building %s from the Go module proxy (once)" % name)
    try:
        r = subprocess.run([go, "build", "-trimpath", "-o", out + ".tmp", pkg], cwd=src, env=env,
                           capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        log("bench: building %s timed out, skipped" % name)
        return None
    if r.returncode != 0:
        log("bench: %s could not be built (module proxy unreachable?), skipped:\n%s" % (name, r.stderr[-800:]))
        return None
    os.replace(out + ".tmp", out)
    return out


def go_version(moddir, module):
    """The version go.mod pins for `module`."""
    with open(os.path.join(HERE, "go", moddir, "go.mod")) as f:
        m = re.search(r"^\s*(?:require\s+)?%s\s+(v\S+)" % re.escape(module), f.read(), re.M)
    return m.group(1) if m else "?"


OPENSSL_AEAD = {"TLS_AES_256_GCM_SHA384": "aes-256-gcm", "TLS_AES_128_GCM_SHA256": "aes-128-gcm",
                "TLS_CHACHA20_POLY1305_SHA256": "chacha20-poly1305"}


def cipher_speed(tls_cipher, seconds=1):
    """(evp name, MB/s for 16 KiB blocks) from `openssl speed -evp` for the
    AEAD of a negotiated TLS 1.3 cipher suite (one direction, one core)."""
    evp = OPENSSL_AEAD.get(tls_cipher, "aes-256-gcm")
    r = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "-bytes", "16384", "-evp", evp],
                       capture_output=True, text=True, timeout=120)
    # The last line: "<name>  <N>k" with N in thousands of bytes per second.
    for line in reversed(r.stdout.splitlines()):
        m = re.search(r"([\d.]+)k\s*$", line)
        if m:
            return evp, float(m.group(1)) * 1000 / 1e6
    raise RuntimeError("openssl speed printed no figure:\n" + r.stdout + r.stderr)


def cpu_seconds(pid):
    """User plus system CPU seconds of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def rss_bytes(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * PAGE


def openssl_version():
    return subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
