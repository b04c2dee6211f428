"""Interop with Microsoft's own Hybrid Connections client (npm hyco-ws
1.0.5): a hyco-ws listener and a hyco-ws sender talk through arc-hub over
wss, trusting the hub's private CA via NODE_EXTRA_CA_CERTS."""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import ROOT, ROOT_KEY

INTEROP = os.path.join(ROOT, "tests", "interop")
SCRIPT = os.path.join(INTEROP, "hyco_ws.js")


@pytest.fixture(scope="module")
def node_env(hub):
    if not os.path.isdir(os.path.join(INTEROP, "node_modules", "hyco-ws")):
        pytest.fail("npm packages missing: run scripts/install-deps --with-node")
    env = dict(os.environ, NODE_EXTRA_CA_CERTS=hub.ca)
    return env


def hyco(hub, role, *extra, env):
    args = ["node", SCRIPT, role, "--relay", hub.url(), "--path", "hyco", "--key-name", "root", "--key", ROOT_KEY,
            *extra]
    return args


@pytest.fixture
def hyco_listener(hub, node_env):
    proc = subprocess.Popen(hyco(hub, "listen", env=node_env), env=node_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline().strip()
    assert line == "LISTENING", line
    yield proc
    proc.terminate()
    proc.wait(5)


@pytest.mark.parametrize("nbytes", [0, 10 * 1024 * 1024])
def test_hyco_ws_listener_and_sender(hub, node_env, hyco_listener, nbytes):
    before = hub.metric('arc_relay_bytes_total{direction="sender_to_listener"}')
    out = subprocess.run(hyco(hub, "send", "--bytes", str(nbytes), "--messages", "5", "--timeout", "60",
                              env=node_env), env=node_env, capture_output=True, text=True, timeout=90)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert out.returncode == 0, out.stdout + out.stderr
    assert result["ok"] and result["greeting"] and result["texts"] == 5
    if nbytes:
        assert result["binaryBytes"] == nbytes and result["sha256Match"]
        # The payload crossed the relay in both directions.
        after = hub.metric('arc_relay_bytes_total{direction="sender_to_listener"}')
        assert after - before >= nbytes


def test_hyco_ws_sender_without_listener_gets_404(hub, node_env):
    out = subprocess.run(["node", SCRIPT, "send", "--relay", hub.url(), "--path", "other", "--key-name", "root",
                          "--key", ROOT_KEY, "--timeout", "10"], env=node_env, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 1
    assert "404" in out.stdout
