"""The sandbox as a newcomer uses it: `scripts/sandbox --keep` comes up,
lists the pods through the proxy (the agent's own two among them,
Running on the sandbox's node where the machine can run one), prints an environment that another
shell can paste to run the walkthrough's commands by hand, and stops
everything on SIGTERM (Ctrl+C takes the same path)."""
import os
import re
import signal
import subprocess
import sys
import time

from conftest import ROOT
from node import unavailable


def test_sandbox_keep_prints_a_working_environment_and_stops_cleanly():
    log_path = os.path.join(ROOT, ".sandbox.test.log")
    log = open(log_path, "w")
    # The Python half of scripts/sandbox: scripts/test has installed and built everything already.
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "sandbox.py"), "--keep"], cwd=ROOT,
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        while "press Ctrl+C here" not in open(log_path).read():
            assert p.poll() is None, open(log_path).read()
            assert time.time() < deadline, open(log_path).read()
            time.sleep(1)
        out = open(log_path).read()
        # kubectl get pods -A went through proxy, relay and agent
        assert re.search(r"^default\s+web\s", out, re.M) and re.search(r"^kube-system\s+dns\s", out, re.M), out
        no_node = unavailable()
        if no_node:  # the agent runs as a local process, and the sandbox says why
            assert "no node: " + no_node in out, out
        else:  # the agent's two pods, Running on the node, seen through the agent itself
            agents = re.findall(r"^azure-arc\s+clusterconnect-agent-\S+\s+1/1\s+Running\s", out, re.M)
            assert len(agents) == 2 and re.search(r"^default\s+web\s+1/1\s+Running\s", out, re.M), out
        exports = [l.strip().split("#")[0] for l in out.splitlines() if l.startswith("    export ")]
        names = {e.split()[1].split("=")[0] for e in exports}
        assert {"AZURE_CONFIG_DIR", "AZURE_EXTENSION_DIR", "KUBECONFIG", "REQUESTS_CA_BUNDLE", "CLUSTER_NAME",
                "PATH", "DEMO_USER", "DEMO_USER_AZURE_CONFIG_DIR"} <= names, exports
        script = "set -e\n" + "\n".join(exports) + (
            "\naz connectedk8s show -n $CLUSTER_NAME -g $RESOURCE_GROUP --query connectivityStatus -o tsv"
            "\nkubectl get pods -n default -o name"
            "\nAZURE_CONFIG_DIR=$DEMO_USER_AZURE_CONFIG_DIR az ad signed-in-user show --query userPrincipalName -o tsv"
            "\nAZURE_CONFIG_DIR=$DEMO_USER_AZURE_CONFIG_DIR az connectedk8s show -n $CLUSTER_NAME -g $RESOURCE_GROUP"
            " --query name -o tsv\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "KUBECONFIG"))}
        r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        user = re.search(r"export DEMO_USER=(\S+)", out).group(1)
        assert r.stdout.split() == ["Connected", "pod/web", user, "sandbox"], r.stdout + r.stderr
        assert user == "alice@example.test"
        port = int(re.search(r"Proxy is listening on port (\d+)", out).group(1))
        p.send_signal(signal.SIGTERM)
        assert p.wait(60) == 0, open(log_path).read()[-2000:]
        out = open(log_path).read()
        assert "sandbox: stopped everything it started" in out and "Proxy closed." in out, out[-2000:]
        import socket
        s = socket.socket()
        try:
            assert s.connect_ex(("127.0.0.1", port)) != 0, "the proxy port still accepts connections"
        finally:
            s.close()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        log.close()
        os.unlink(log_path)
