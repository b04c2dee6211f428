"""A registered clusterconnect-agent run by a test as `az connectedk8s
connect` installed it (identity and hub from what connect left in the
cluster), with extra flags and environment, optionally inside a network
namespace; its JSON log lines read back as events."""
import json
import os
import re
import subprocess
import time
import urllib.request

from conftest import BUILD


def wait_for(pred, what, timeout=60, poll=0.1, on_fail=lambda: ""):
    deadline = time.time() + timeout
    while not pred():
        if time.time() > deadline:
            raise AssertionError("timed out waiting for %s\n%s" % (what, on_fail()))
        time.sleep(poll)


class Agent:
    """A registered clusterconnect-agent as connect installed it, run here
    (optionally inside the namespace) with extra flags and environment."""

    def __init__(self, env, name, *extra, ns=None, environ=None, binary=None):
        """env: an ArcEnv after connect, with agent_hub and agent_rid (the
        ConfigMap's hub and resourceId) and a list env.stops."""
        self.env = env
        self.log_path = os.path.join(env.dir, "agent-%s.log" % name)
        args = [binary or os.path.join(BUILD, "bin", "clusterconnect-agent"), "--hub", env.agent_hub,
                "--resource-id", env.agent_rid, "--identity-key", os.path.join(env.dir, "identity.key"),
                "--apiserver", "https://127.0.0.1:%d" % env.kube.port,
                "--apiserver-ca", os.path.join(env.kube.dir, "ca.pem"), "--token-file", env.agent_token,
                "--ping-interval", "1", "--health-listen", "127.0.0.1:0", "--log-level", "debug", *extra]
        ca = os.path.join(env.dir, "identity-hub-ca.pem")
        if os.path.exists(ca):
            args += ["--relay-ca", ca]
        e = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        e.update(environ or {})
        self.ns = ns
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen((ns.prefix() if ns else []) + args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=e)
        env.stops.append(self.stop)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def events(self, name):
        out = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                ev = json.loads(line)
                if ev.get("event") == name:
                    out.append(ev)
        return out

    def health_port(self):
        m = re.search(r"health on http://127\.0\.0\.1:(\d+)", self.text())
        return int(m.group(1)) if m else None

    def get(self, path):
        """GET on the health listener (inside the namespace if there)."""
        url = "http://127.0.0.1:%d%s" % (self.health_port(), path)
        if self.ns:
            r = self.ns.exec_run("curl", "-s", "--max-time", "10", url)
            assert r.returncode == 0, r.stderr
            return r.stdout
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
