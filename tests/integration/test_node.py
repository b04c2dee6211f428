"""The agent image (scripts/agent-image) and the test node (tests/node.py).

The image: two builds from the same tree are the same bytes and digest;
it holds the agent, every library the loader needs for it, the CA bundle
and an unprivileged user it runs as; and the node's containerd imports it
and runs it with nothing but its own files (the agent prints its usage).

The node: it registers Ready with the pinned kubelet, the scheduler places
pods without nodeName, service-account volumes mount (kube-root-ca.crt is
published), pods on the bridge network get addresses from host-local, and
stop() leaves the host as it found it (paths, bridge, cgroups, sysctls,
the service rule, no shim left running).

Where this machine cannot run a node, the node tests skip with the reason."""
import json
import os
import subprocess
import tarfile
import time

import pytest

from conftest import BUILD, ROOT
from kube import KubeCluster
from node import SYSCTLS, KubeNode, full_ref, unavailable
from ociimage import read_archive

AGENT_IMAGE = os.path.join(ROOT, "scripts", "agent-image")


def build_image(out, ref="clusterconnect-agent:0.1.0"):
    r = subprocess.run([AGENT_IMAGE, "--no-make", "--ref", ref, "--out", str(out)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def test_agent_image_builds_reproducibly(tmp_path):
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    da, db = build_image(a), build_image(b)
    assert da.startswith("sha256:") and da == db
    assert a.read_bytes() == b.read_bytes()
    # Another reference is another image name over the same manifest.
    assert build_image(tmp_path / "c.tar", "registry.example.com/ck/clusterconnect-agent:0.1.0") == da


def test_agent_image_holds_what_the_agent_needs(tmp_path):
    out = tmp_path / "agent.tar"
    digest = build_image(out)
    mdigest, _, config = read_archive(str(out))
    assert mdigest == digest
    cfg = config["config"]
    assert cfg["User"] == "65532:65532" and cfg["Entrypoint"] == ["/usr/bin/clusterconnect-agent"]
    with tarfile.open(out) as t:
        index = json.load(t.extractfile("index.json"))
        assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == \
            "docker.io/library/clusterconnect-agent:0.1.0"
        docker = json.load(t.extractfile("manifest.json"))  # docker-archive view of the same blobs
        assert docker[0]["RepoTags"] == ["clusterconnect-agent:0.1.0"]
        layer = tarfile.open(fileobj=t.extractfile(docker[0]["Layers"][0]), mode="r:gz")
        members = {m.name: m for m in layer.getmembers()}
        passwd = layer.extractfile(members["etc/passwd"]).read().decode()
    assert all(m.mtime == 0 and m.uname == "" for m in members.values())
    assert members["usr/bin/clusterconnect-agent"].mode == 0o755
    assert "etc/ssl/certs/ca-certificates.crt" in members
    ldd = subprocess.run(["ldd", os.path.join(BUILD, "bin", "clusterconnect-agent")], capture_output=True,
                         text=True).stdout
    needed = [w for w in ldd.split() if w.startswith("/")]
    assert needed and all(p.lstrip("/") in members for p in needed), (needed, sorted(members))
    assert "nonroot:x:65532:65532:" in passwd


def test_full_ref_reads_references_as_docker_does():
    assert full_ref("clusterconnect-agent:0.1.0") == "docker.io/library/clusterconnect-agent:0.1.0"
    assert full_ref("me/agent") == "docker.io/me/agent:latest"
    assert full_ref("registry.example.com:5000/ck/agent:1") == "registry.example.com:5000/ck/agent:1"
    assert full_ref("localhost/agent:2") == "localhost/agent:2"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    reason = unavailable()
    if reason:
        pytest.skip("no test node on this machine: " + reason)
    d = tmp_path_factory.mktemp("node")
    c = KubeCluster(str(d / "kube")).start()
    n = None
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            before = f.read()
        n = KubeNode(c).start()
        n.sysctls_seen_before = before
        yield n
    finally:
        if n:
            n.stop()
        c.stop()


def test_the_node_is_ready_and_schedules_pods(node):
    c = node.cluster
    nodes = json.loads(c.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert [x["metadata"]["name"] for x in nodes] == [node.name]
    assert nodes[0]["status"]["nodeInfo"]["kubeletVersion"] == open(os.path.join(ROOT, "scripts",
                                                                                   "KUBE_VERSION")).read().strip()
    assert nodes[0]["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://1.")
    # No nodeName in the spec: the scheduler placed it.
    pod = node.run_pod("sa-reader", ["sh", "-c", "cat /var/run/secrets/kubernetes.io/serviceaccount/ca.crt; "
                                                 "ip -4 addr show eth0; sleep 3600"])
    assert pod["spec"]["nodeName"] == node.name
    assert pod["status"]["podIP"].startswith("10.88.")
    out = c.kubectl("logs", "sa-reader").stdout
    assert open(os.path.join(c.dir, "ca.pem")).read().strip() in out  # kube-root-ca.crt, through the projected volume
    assert pod["status"]["podIP"] + "/16" in out


def test_agent_image_imports_and_runs_on_the_node(node, tmp_path):
    out = tmp_path / "agent.tar"
    digest = build_image(out, "connectedk8s.test/agent-smoke:1")
    node.import_image(str(out))
    rows = [l.split() for l in node.ctr("images", "ls").stdout.splitlines()[1:]]
    assert ["connectedk8s.test/agent-smoke:1", digest] in [r[:1] + [r[2]] for r in rows], rows
    # With no flags the agent says what it needs and exits 2: it loaded and
    # ran with only the image's files (libraries, loader, CA bundle).
    spec = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "agent-smoke"},
            "spec": {"restartPolicy": "Never", "containers": [{
                "name": "agent", "image": "connectedk8s.test/agent-smoke:1", "imagePullPolicy": "Never",
                "securityContext": {"readOnlyRootFilesystem": True, "runAsNonRoot": True,
                                    "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}}
    path = tmp_path / "pod.json"
    path.write_text(json.dumps(spec))
    node.cluster.kubectl("apply", "-f", str(path))
    deadline = time.time() + 60
    while True:
        st = json.loads(node.cluster.kubectl("get", "pod", "agent-smoke", "-o", "json").stdout)["status"]
        term = ((st.get("containerStatuses") or [{}])[0].get("state") or {}).get("terminated")
        if term:
            break
        assert time.time() < deadline, st
        time.sleep(0.5)
    logs = node.cluster.kubectl("logs", "agent-smoke").stdout
    assert "clusterconnect-agent" in logs and "--apiserver" in logs, logs
    assert term["exitCode"] != 0 and term["reason"] == "Error", term


def test_the_default_deployment_on_the_pod_network_is_probed(node, tmp_path):
    """connect's Deployment without --agent-host-network, on the bridge
    network: both replicas run with the read-only root and user 65532, the
    kubelet's liveness probe passes (no restarts), and its readiness probe
    hears 503 from /readyz, because from the pod network this test's hub
    (on loopback) is unreachable and no relay channel comes up."""
    from extension import import_extension
    import_extension()
    from azext_connectedk8s import _manifests
    out = tmp_path / "agent.tar"
    build_image(out, "connectedk8s.test/agent-podnet:1")
    node.import_image(str(out))
    key = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                         capture_output=True, text=True, check=True).stdout
    objs = _manifests.agent_objects("https://127.0.0.1:9", "/subscriptions/s/resourceGroups/rg/providers/"
                                    "Microsoft.Kubernetes/connectedClusters/podnet", key,
                                    image="connectedk8s.test/agent-podnet:1")
    path = tmp_path / "objs.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
    c = node.cluster
    c.kubectl("apply", "--server-side", "-f", str(path))
    try:
        deadline = time.time() + 90
        while True:
            pods = json.loads(c.kubectl("get", "pods", "-n", "azure-arc", "-o", "json").stdout)["items"]
            events = json.loads(c.kubectl("get", "events", "-n", "azure-arc", "-o", "json").stdout)["items"]
            unready = [ev for ev in events if ev["reason"] == "Unhealthy" and "Readiness probe failed" in ev["message"]]
            if len(pods) == 2 and all(p["status"].get("phase") == "Running" for p in pods) and unready:
                break
            assert time.time() < deadline, (json.dumps([p["status"] for p in pods])[-2000:],
                                            [(ev["reason"], ev["message"]) for ev in events])
            time.sleep(1)
        assert all("statuscode: 503" in ev["message"] for ev in unready), [ev["message"] for ev in unready]
        assert not any("Liveness probe failed" in ev["message"] for ev in events)
        for p in pods:
            st = p["status"]["containerStatuses"][0]
            assert st["restartCount"] == 0 and st["ready"] is False, st
            assert p["status"]["podIP"].startswith("10.88.") and not p["spec"].get("hostNetwork")
    finally:
        c.kubectl("delete", "namespace", "azure-arc", "--wait=true", "--timeout=90s", check=False)


def test_stop_leaves_the_host_as_it_was(node):
    """Runs last in this module: stops the node and checks every host
    change it made is undone."""
    with open("/proc/sys/vm/overcommit_memory") as f:
        during = f.read()
    node.stop()
    assert node.host_leftovers() == []
    for s in SYSCTLS:
        with open("/proc/sys/" + s) as f:
            assert f.read().strip() == node.sysctls[s], s
    with open("/proc/sys/vm/overcommit_memory") as f:
        assert f.read() == node.sysctls_seen_before
    # The kubelet had changed it while running (its default policy), so the restore mattered.
    assert during.strip() == "1"
