"""The Python binding of the native core: stable-ABI wheel, error mapping,
and the SAS reference vector through Python."""
import glob
import os
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT



def _load_native():
    # Load the compiled module by path: importing the package would run its
    # __init__, which needs azure-cli (the tests' venv does not carry it;
    # the extension tests run inside the real az).
    import importlib.machinery
    import importlib.util
    path = glob.glob(os.path.join(ROOT, "azext_connectedk8s", "_native*.so"))[0]
    loader = importlib.machinery.ExtensionFileLoader("azext_connectedk8s._native", path)
    spec = importlib.util.spec_from_file_location("azext_connectedk8s._native", path, loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


_native = _load_native()


def test_sas_worked_example():
    tok = _native.sas_token("http://contoso.servicebus.windows.net/hyco/", "RootManageSharedAccessKey",
                            "SGVsbG9Xb3JsZEtleUZvclRlc3RpbmcxMjM0NTY3OA==", 1700000000)
    assert "&sig=T%2Fn0u8AJB%2BwvBGD%2FSw4or8iF%2BXZ4GhSyk9n8wLOGb9Q%3D&" in tok


def test_bad_input_raises_coded_error():
    with pytest.raises(_native.NativeError) as ei:
        _native.sas_token("", "k", "key", 1)
    code, message = ei.value.args
    assert code == "AZK8S0890" and "non-empty" in message
    with pytest.raises(_native.NativeError):
        _native.sas_token("http://x/" + "a" * 3000, "k", "key", 1)
    with pytest.raises(TypeError):
        _native.sas_token("http://x/", "k", "key", "not a number")


def test_wheel_is_abi3_and_loads_in_debian_python(tmp_path):
    wheels = glob.glob(os.path.join(ROOT, "dist", "connectedk8s-*.whl"))
    assert wheels, "scripts/test builds the wheel into dist/"
    whl = max(wheels, key=os.path.getmtime)
    assert whl.endswith("-cp310-abi3-linux_x86_64.whl"), whl
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        assert "azext_connectedk8s/_native.abi3.so" in names
        z.extractall(tmp_path)
    out = subprocess.run(["/usr/bin/python3", "-c",
                          "import azext_connectedk8s._native as n; print(n.version())"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == _native.version()


# ---- kubeconfig merge (C, libyaml) through the binding ----------------------

import random  # noqa: E402
import string  # noqa: E402
import threading  # noqa: E402

import yaml  # noqa: E402

ENTRY = {"cluster": "arc-c1", "server": "https://127.0.0.1:47011", "ca_data": "Q0E=", "user": "clusterUser_rg_c1",
         "client_cert_data": "Q0VSVA==", "client_key_data": "S0VZ", "context": "arc-c1"}


def _odd_value(rng, depth=0):
    kinds = ["word", "int", "bool", "float", "tricky", "multiline", "unicode", "null"]
    if depth < 3:
        kinds += ["list", "map"]
    k = rng.choice(kinds)
    if k == "word":
        return "".join(rng.choice(string.ascii_letters + "-_.") for _ in range(rng.randint(1, 12)))
    if k == "int":
        return rng.randint(-10**6, 10**6)
    if k == "bool":
        return rng.choice([True, False])
    if k == "float":
        return rng.choice([1.5, -0.25, 1e10])
    if k == "tricky":  # strings a YAML 1.1 reader would mistake for other types
        return rng.choice(["true", "no", "on", "0123", "1e3", "~", "null", "", " lead", "a: b", "#x", "- y"])
    if k == "multiline":
        return "line one\nline two\n  indented\n"
    if k == "unicode":
        return rng.choice(["clüster", "名前", "emoji-\U0001F680"])
    if k == "null":
        return None
    if k == "list":
        return [_odd_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {"k%d" % i: _odd_value(rng, depth + 1) for i in range(rng.randint(0, 3))}


def _random_kubeconfig(rng):
    n = rng.randint(0, 25)
    names = ["n%d-%s" % (i, rng.choice(["a", "true", "0x1", "ü"])) for i in range(n)]
    doc = {"apiVersion": "v1", "kind": "Config", "preferences": {"colors": rng.choice([True, False])},
           "clusters": [{"name": x, "cluster": {"server": "https://%s:6443" % i, "extensions": [
               {"name": "e", "extension": _odd_value(rng)}]}} for i, x in enumerate(names)],
           "users": [{"name": x, "user": {"token": "t-%d" % i, "x-odd": _odd_value(rng)}} for i, x in enumerate(names)],
           "contexts": [{"name": x, "context": {"cluster": x, "user": x, "namespace": "ns"}} for x in names],
           "current-context": names[0] if names else "",
           "x-unknown-top": _odd_value(rng)}
    if rng.random() < 0.3:  # sometimes our own names are already there (stale entries)
        doc["clusters"].append({"name": "arc-c1", "cluster": {"server": "https://stale"}, "extensions": [1, 2]})
    return doc


def _without_ours(doc):
    d = dict(doc)
    for key in ("clusters", "users", "contexts"):
        d[key] = [e for e in (d.get(key) or []) if e["name"] not in ("arc-c1", "clusterUser_rg_c1")]
    d.pop("current-context", None)
    return d


@pytest.mark.parametrize("seed", range(40))
def test_merge_keeps_everything_else(tmp_path, seed):
    rng = random.Random(seed)
    doc = _random_kubeconfig(rng)
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, default_flow_style=rng.choice([False, None])))
    _native.merge_kubeconfig(str(path), ENTRY)
    got = yaml.safe_load(path.read_text())
    assert _without_ours(got) == _without_ours(doc)
    assert got["current-context"] == "arc-c1"
    ours = [c for c in got["clusters"] if c["name"] == "arc-c1"]
    assert ours == [dict({"name": "arc-c1", "cluster": {"server": "https://127.0.0.1:47011",
                                                         "certificate-authority-data": "Q0E="}},
                         **({"extensions": [1, 2]} if any(c["name"] == "arc-c1" for c in doc["clusters"]) else {}))]
    assert os.stat(path).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("text", ["clusters: 5\n", "- a\n", "a: [\n", "a: 1\n---\nb: 2\n", "[" * 100,
                                  "users:\n- just-a-string\n"])
def test_malformed_kubeconfig_is_refused_untouched(tmp_path, text):
    path = tmp_path / "config"
    path.write_text(text)
    with pytest.raises(_native.NativeError) as ei:
        _native.merge_kubeconfig(str(path), ENTRY)
    assert ei.value.args[0] == "AZK8S0820" and "left unchanged" in ei.value.args[1]
    assert path.read_text() == text


def test_concurrent_merges_lose_nothing(tmp_path):
    """Twenty mergers at once (the GIL is released during the merge, and
    each takes the file lock): every entry arrives."""
    path = str(tmp_path / "config")
    errors = []

    def merge(i):
        e = dict(ENTRY, cluster="c%02d" % i, user="u%02d" % i, context="c%02d" % i)
        try:
            _native.merge_kubeconfig(path, e)
        except Exception as ex:  # collected and reported below
            errors.append(ex)

    ts = [threading.Thread(target=merge, args=(i,)) for i in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    got = yaml.safe_load(open(path))
    assert sorted(c["name"] for c in got["contexts"]) == ["c%02d" % i for i in range(20)]
    # Two processes too (separate lock holders).
    code = ("import sys; sys.path.insert(0, %r); from test_native import _native, ENTRY; "
            "_native.merge_kubeconfig(%r, dict(ENTRY, cluster=sys.argv[1], user=sys.argv[1], context=sys.argv[1]))"
            % (os.path.dirname(os.path.abspath(__file__)), path))
    procs = [subprocess.Popen([sys.executable, "-c", code, "p%d" % i]) for i in range(6)]
    assert all(p.wait(60) == 0 for p in procs)
    got = yaml.safe_load(open(path))
    assert len(got["contexts"]) == 26


def test_render_kubeconfig_for_stdout():
    text = _native.render_kubeconfig(dict(ENTRY, context="true"))
    doc = yaml.safe_load(text)
    assert doc["current-context"] == "true"  # stays a string for YAML 1.1 readers
    assert doc["users"][0]["user"]["client-key-data"] == "S0VZ"


def test_session_certs_are_fresh_and_distinct():
    a, b = _native.session_certs(), _native.session_certs()
    assert a["ca"] != b["ca"] and a["client_key"] != b["client_key"]
    assert a["server_cert"].startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" in a["client_key"]
