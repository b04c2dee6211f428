"""Shared fixtures: the built tree, and a running arc-hub per test module."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import ssl

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ROOT_KEY = "rootkey-0123456789abcdef0123456789"
SEND_KEY = "sendkey-0123456789abcdef0123456789"
LISTEN_KEY = "listenkey-0123456789abcdef012345"

# What an unregistered agent in kube-system may do: impersonate, nothing
# else (the tests that run one apply this).
AGENT_RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: clusterconnect-agent-impersonator}
rules:
- apiGroups: [""]
  resources: [users, groups, serviceaccounts]
  verbs: [impersonate]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: clusterconnect-agent-impersonator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: clusterconnect-agent-impersonator}
subjects:
- {kind: ServiceAccount, name: clusterconnect-agent, namespace: kube-system}
"""


class Hub:
    def __init__(self, proc, port, dirpath, log_path):
        self.proc, self.port, self.dir, self.log_path = proc, port, dirpath, log_path
        self.ca = os.path.join(dirpath, "ca.pem")
        self.host = "127.0.0.1"

    def url(self, scheme="wss"):
        return "%s://127.0.0.1:%d" % (scheme, self.port)

    def resource(self, entity=""):
        return "http://127.0.0.1/" + entity

    def token(self, entity="", name="root", key=ROOT_KEY, **kw):
        from wsclient import sas_token
        return sas_token(self.resource(entity), name, key, **kw)

    def get(self, path):
        ctx = ssl.create_default_context(cafile=self.ca)
        with urllib.request.urlopen("https://127.0.0.1:%d%s" % (self.port, path), context=ctx, timeout=5) as r:
            return r.status, r.read().decode()

    def metric(self, series):
        """Value of one exposition series, e.g. 'arc_relay_listeners' or
        'arc_relay_rejects_total{reason="quota"}'."""
        _, text = self.get("/metrics")
        for line in text.splitlines():
            if not line.startswith("#") and line.rsplit(" ", 1)[0] == series:
                return float(line.rsplit(" ", 1)[1])
        raise KeyError(series)

    def log(self):
        with open(self.log_path) as f:
            return f.read()


def start_hub(tmpdir, extra_args=(), config=None, port=0):
    binary = os.path.join(BUILD, "bin", "arc-hub")
    assert os.path.exists(binary), "build first: make"
    cfg = config or {
        "namespaceRules": [{"name": "root", "key": ROOT_KEY, "rights": ["Listen", "Send", "Manage"]}],
        "hybridConnections": [
            {"name": "hyco"},
            {"name": "microsoft.kubernetes/connectedclusters/abc/def",
             "rules": [{"name": "send", "key": SEND_KEY, "rights": ["Send"]},
                       {"name": "listen", "key": LISTEN_KEY, "rights": ["Listen"]}]},
            {"name": "other"},
        ],
    }
    cfg_path = os.path.join(tmpdir, "relay.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    port_file = os.path.join(tmpdir, "port")
    log_path = os.path.join(tmpdir, "hub.log")
    log = open(log_path, "w")
    if os.path.exists(port_file):
        os.unlink(port_file)
    proc = subprocess.Popen([binary, "--dev", tmpdir, "--config", cfg_path, "--listen", "127.0.0.1:%d" % port,
                             "--port-file", port_file, *extra_args],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError("arc-hub did not start:\n" + open(log_path).read())
        time.sleep(0.02)
    port = int(open(port_file).read())
    return Hub(proc, port, tmpdir, log_path)


def stop_hub(hub):
    hub.proc.terminate()
    try:
        hub.proc.wait(5)
    except subprocess.TimeoutExpired:
        hub.proc.kill()
        raise


@pytest.fixture(scope="module")
def hub():
    d = tempfile.mkdtemp(prefix="ck-hub-")
    h = start_hub(d, ["--ping-interval", "1", "--rendezvous-timeout", "2", "--stall-timeout", "2"])
    yield h
    stop_hub(h)
    assert h.proc.returncode == 0, "arc-hub did not exit cleanly on SIGTERM:\n" + h.log()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def kube():
    """A throwaway control plane (tests/kube.py) for one test module."""
    from kube import KubeCluster
    d = tempfile.mkdtemp(prefix="ck-kube-")
    c = KubeCluster(d).start()
    yield c
    c.stop()
    shutil.rmtree(d, ignore_errors=True)
