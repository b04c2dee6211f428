"""Which kubeconfig `az connectedk8s proxy` writes, by kubectl's rules:
--file/-f if given (`-` prints it to stdout and writes nothing), else the
first entry of $KUBECONFIG, else ~/.kube/config.

_kubeconfig_target is checked on its own, then through custom.proxy with
only the boundaries stubbed: ARM (send_raw_request), the signed-in
subscription, and the native proxy loop (run_proxy, which would dial the
relay). The kubeconfig merge is the real native one."""
import json
import os
from types import SimpleNamespace

import pytest
import yaml

from extension import import_extension  # tests/extension.py: azure-cli-core for the tests' venv

import_extension()

import requests  # noqa: E402  (azure-cli's, like the extension's)

from azext_connectedk8s import _native, custom  # noqa: E402

SUB = "00000000-0000-0000-0000-000000000001"


@pytest.fixture
def home(monkeypatch, tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return h


def test_unset_kubeconfig_means_home_kube_config(home):
    assert custom._kubeconfig_target(None) == str(home / ".kube" / "config")


def test_empty_kubeconfig_means_home_kube_config(home, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", "")
    assert custom._kubeconfig_target(None) == str(home / ".kube" / "config")


def test_first_of_several_kubeconfig_entries(home, monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b"), "~/c"]))
    assert custom._kubeconfig_target(None) == str(tmp_path / "a")


def test_empty_entries_are_skipped_and_tilde_expands(home, monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", os.pathsep + os.pathsep + "~/first" + os.pathsep + str(tmp_path / "b"))
    assert custom._kubeconfig_target(None) == str(home / "first")


def test_file_wins_over_kubeconfig(home, monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "a"))
    assert custom._kubeconfig_target(str(tmp_path / "given")) == str(tmp_path / "given")
    assert custom._kubeconfig_target("~/given") == str(home / "given")


def test_dash_means_stdout(home, monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "a"))
    assert custom._kubeconfig_target("-") is None


# ---- through the proxy command ---------------------------------------------

def _ok(body):
    r = requests.Response()
    r.status_code = 200
    r._content = json.dumps(body).encode()
    return r


@pytest.fixture
def proxy(home, monkeypatch):
    """Runs custom.proxy with ARM, the subscription and the relay stubbed;
    returns the config the native proxy loop was given."""
    import azure.cli.core.commands.client_factory as cf
    import azure.cli.core.util as util
    cid = "/subscriptions/%s/resourceGroups/rg/providers/Microsoft.Kubernetes/connectedClusters/c1" % SUB
    answers = {
        ("GET", cid): {"id": cid, "name": "c1", "properties": {"connectivityStatus": "Connected"}},
        ("POST", cid + "/listClusterUserCredential"): {"hybridConnectionConfig": {
            "relay": "127.0.0.1:1", "hybridConnectionName": "hc", "token": "SharedAccessSignature sr=x",
            "expirationTime": 4102444800}},
    }

    def send_raw_request(cli_ctx, method, url, body=None, **kw):
        return _ok(answers[(method, url.split("https://arm.test", 1)[1].split("?", 1)[0])])

    ran = []
    monkeypatch.setattr(util, "send_raw_request", send_raw_request)
    monkeypatch.setattr(cf, "get_subscription_id", lambda cli_ctx: SUB)
    monkeypatch.setattr(_native, "run_proxy", lambda config, creds, **kw: ran.append(config) or {})
    cmd = SimpleNamespace(cli_ctx=SimpleNamespace(cloud=SimpleNamespace(endpoints=SimpleNamespace(
        resource_manager="https://arm.test/"))))

    def run(path=None):
        custom.proxy(cmd, "rg", "c1", token="sa-token", path=path, api_server_port=47999)
        assert len(ran) == 1 and ran[0]["port"] == 47999
        return ran[0]
    return run


def _context_of(path):
    doc = yaml.safe_load(open(path))
    assert doc["current-context"] == "c1"
    assert [c["cluster"]["server"] for c in doc["clusters"] if c["name"] == "c1"] == ["https://127.0.0.1:47999"]
    assert os.stat(path).st_mode & 0o777 == 0o600
    return doc


def test_proxy_merges_into_first_kubeconfig_entry(proxy, monkeypatch, tmp_path, capsys, home):
    a, b = tmp_path / "a", tmp_path / "b"
    b.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(a), str(b)]))
    proxy()
    _context_of(a)
    assert b.read_text() == "apiVersion: v1\nkind: Config\nclusters: []\n"
    assert not (home / ".kube").exists()
    out = capsys.readouterr().out
    assert out.startswith('Merged "c1" as current context in %s\n' % a)
    assert out.endswith("Proxy closed.\n")


def test_proxy_merges_into_home_kube_config(proxy, home, capsys):
    proxy()
    _context_of(home / ".kube" / "config")
    assert 'Merged "c1" as current context in %s\n' % (home / ".kube" / "config") in capsys.readouterr().out


def test_proxy_file_argument(proxy, monkeypatch, tmp_path, home):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "env"))
    proxy(str(tmp_path / "given"))
    _context_of(tmp_path / "given")
    assert not (tmp_path / "env").exists() and not (home / ".kube").exists()


def test_proxy_dash_prints_and_writes_nothing(proxy, monkeypatch, tmp_path, home, capsys):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "env"))
    proxy("-")
    out = capsys.readouterr().out
    doc = yaml.safe_load(out[:out.index("Proxy closed.")])
    assert doc["current-context"] == "c1"
    assert "Merged" not in out
    assert not (tmp_path / "env").exists() and not (home / ".kube").exists()
    assert not (tmp_path / "-").exists() and not os.path.exists("-")
