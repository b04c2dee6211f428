"""connect's outbound proxy settings: the validator (URLs checked, bare
host:port normalised, messages without the password) and what the agent's
manifests carry (a Secret of their own, the standard environment variables,
the CA file mounted), with nothing of it in the ConfigMap."""
import base64
from types import SimpleNamespace

import pytest

from extension import import_extension

import_extension()

from azure.cli.core.azclierror import InvalidArgumentValueError  # noqa: E402

from azext_connectedk8s import _manifests as m  # noqa: E402
from azext_connectedk8s import _validators as v  # noqa: E402


def ns(**kw):
    d = dict(proxy_https=None, proxy_http=None, proxy_skip_range=None, proxy_cert=None)
    d.update(kw)
    return SimpleNamespace(**d)


def test_bare_host_port_becomes_http_url():
    n = ns(proxy_https="proxy.corp:3128", proxy_http="http://p:80")
    v.validate_proxy_settings(n)
    assert n.proxy_https == "http://proxy.corp:3128"
    assert n.proxy_http == "http://p:80"


@pytest.mark.parametrize("bad", ["socks5://alice:hunter2@p:1080", "http://alice:hunter2@", "ftp://alice:hunter2@h"])
def test_refused_url_is_named_without_password(bad):
    with pytest.raises(InvalidArgumentValueError) as ei:
        v.validate_proxy_settings(ns(proxy_https=bad))
    assert "hunter2" not in str(ei.value) and "alice" not in str(ei.value)
    assert "--proxy-https" in str(ei.value)


def test_skip_range_and_cert_need_a_proxy(tmp_path):
    with pytest.raises(InvalidArgumentValueError):
        v.validate_proxy_settings(ns(proxy_skip_range="10.0.0.0/8"))
    with pytest.raises(InvalidArgumentValueError):
        v.validate_proxy_settings(ns(proxy_https="http://p:1", proxy_cert=str(tmp_path / "missing.pem")))


def _objs(**kw):
    return m.agent_objects("https://hub", "/subscriptions/s/resourceGroups/g/providers/Microsoft.Kubernetes/"
                           "connectedClusters/c", "KEY", **kw)


def test_no_proxy_no_secret():
    objs = _objs()
    assert not [o for o in objs if o["metadata"]["name"] == m.PROXY_SECRET]
    dep = [o for o in objs if o["kind"] == "Deployment"][0]
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    assert not [e for e in env if "PROXY" in e["name"]]


def test_proxy_settings_land_in_their_secret_and_the_environment():
    url = "http://alice:hunter2@proxy.corp:3128"
    objs = _objs(proxy_https=url, proxy_skip_range="10.0.0.0/8,.corp", proxy_cert_pem="PEM")
    sec = [o for o in objs if o["metadata"]["name"] == m.PROXY_SECRET][0]
    data = {k: base64.b64decode(x).decode() for k, x in sec["data"].items()}
    assert data["https"] == url
    assert "http" not in data
    assert data["noProxy"].endswith(",10.0.0.0/8,.corp") and "kubernetes.default.svc" in data["noProxy"]
    assert data["proxy-ca.pem"] == "PEM"
    cm = [o for o in objs if o["kind"] == "ConfigMap"][0]
    assert "hunter2" not in str(cm)
    dep = [o for o in objs if o["kind"] == "Deployment"][0]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "PROXY" in e["name"]}
    assert env == {"HTTPS_PROXY": {"name": m.PROXY_SECRET, "key": "https"},
                   "NO_PROXY": {"name": m.PROXY_SECRET, "key": "noProxy"}}
    assert "--proxy-cert=%s/proxy-ca.pem" % m.PROXY_CA_DIR in c["args"]
    assert "hunter2" not in str(c["args"])
    assert {"name": "proxy", "mountPath": m.PROXY_CA_DIR, "readOnly": True} in c["volumeMounts"]
    assert [vol for vol in pod["volumes"] if vol["name"] == "proxy"][0]["secret"]["secretName"] == m.PROXY_SECRET
    # The Secret is applied before the Deployment that refers to it.
    names = [o["metadata"]["name"] for o in objs]
    assert names.index(m.PROXY_SECRET) < names.index("clusterconnect-agent") or \
        objs.index(sec) < objs.index(dep)
