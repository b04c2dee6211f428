"""Error mapping: every code in native.c's error table maps to the intended
azclierror class with a recommendation, shown on NativeErrors the native
module really raises; ARM answers and connection failures map by status
and by exception class (isinstance), never by a class's name."""
import os
import re
import socket
from types import SimpleNamespace

import pytest

from extension import ROOT, import_extension  # tests/extension.py: azure-cli-core for the tests' venv

import_extension()

import requests  # noqa: E402  (azure-cli's, like the extension's)
from azure.cli.core import azclierror as ae  # noqa: E402
from azure.core.exceptions import ServiceRequestError  # noqa: E402

from azext_connectedk8s import _arm, _errors, _native  # noqa: E402

INTENDED = {
    "AZK8S0890": ae.CLIInternalError,     # the extension handed the core a bad argument: our bug
    "AZK8S0801": ae.ClientRequestError,   # --port in use
    "AZK8S0802": ae.ClientRequestError,   # cannot listen on the address
    "AZK8S0803": ae.UnclassifiedUserFault,  # TLS set-up
    "AZK8S0820": ae.FileOperationError,   # kubeconfig could not be merged
}


def _native_table():
    src = open(os.path.join(ROOT, "csrc", "pymod", "native.c")).read()
    body = re.search(r"\} ERRORS\[\] = \{(.*?)\n\};", src, re.S).group(1)
    return re.findall(r'\{\s*"(AZK8S\d{4})",\s*"([^"]+)"\s*\}', body)


def test_every_native_code_is_mapped_as_intended():
    codes = [c for c, _ in _native_table()]
    assert len(codes) == 5 and len(set(codes)) == len(codes), codes
    assert set(codes) == set(INTENDED) == set(_errors.CLASSES) == set(_errors.RECOMMEND)
    for code in codes:
        err = _errors.from_native(_native.NativeError(code, "what happened"))
        assert type(err) is INTENDED[code], code
        assert str(err) == "%s: what happened" % code
        assert err.recommendations == [_errors.RECOMMEND[code]] and _errors.RECOMMEND[code]


def test_internal_error_code_is_cli_internal_error():
    err = _errors.from_native(_native.NativeError("AZK8S0890", "x"))
    assert type(err) is ae.CLIInternalError
    assert err.recommendations == ["This is a bug in the extension; report it with the output of `az version`."]


def test_unknown_code_is_an_internal_error():
    err = _errors.from_native(_native.NativeError("AZK8S0899", "new in the core"))
    assert type(err) is ae.CLIInternalError
    assert str(err) == "AZK8S0899: new in the core"
    assert err.recommendations == [_errors.UNKNOWN]


def test_extra_text_follows_the_message():
    err = _errors.from_native(_native.NativeError("AZK8S0801", "port 5 is already in use"), " (held by pid 1 (x))")
    assert str(err) == "AZK8S0801: port 5 is already in use (held by pid 1 (x))"


# ---- NativeErrors the module really raises, through from_native ------------

CREDS = {"relay": "127.0.0.1:1", "hc": "x", "sas": "SharedAccessSignature sr=x", "sas_expiry": 4102444800,
         "token": "t", "token_expiry": 0}


def _never_ready(port):
    raise AssertionError("the proxy must not start")


def _run_proxy(**cfg):
    certs = _native.session_certs()
    config = {"port": 0, "server_cert": certs["server_cert"], "server_key": certs["server_key"],
              "client_ca": certs["ca"], "relay_ca": None, "pool": 0}
    config.update(cfg)
    with pytest.raises(_native.NativeError) as ei:
        _native.run_proxy(config, CREDS, on_ready=_never_ready, refresh=None, on_event=None)
    return _errors.from_native(ei.value)


def test_real_port_in_use():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        err = _run_proxy(port=port)
    assert type(err) is ae.ClientRequestError
    assert str(err) == "AZK8S0801: port %d is already in use on 127.0.0.1" % port


def test_real_listen_failure():
    err = _run_proxy(host="192.0.2.1")  # TEST-NET-1: no local interface has it
    assert type(err) is ae.ClientRequestError
    assert str(err).startswith("AZK8S0802: cannot listen on 192.0.2.1:0")


def test_real_tls_failure():
    err = _run_proxy(server_cert="not a certificate")
    assert type(err) is ae.UnclassifiedUserFault
    assert str(err).startswith("AZK8S0803: TLS set-up failed: cannot use the server certificate and key")


def test_real_bad_argument_is_internal():
    err = _run_proxy(port=70000)
    assert type(err) is ae.CLIInternalError
    assert str(err) == "AZK8S0890: config: port 0-65535 and PEM strings expected"


def test_real_kubeconfig_failure(tmp_path):
    path = tmp_path / "config"
    path.write_text("clusters: 5\n")
    with pytest.raises(_native.NativeError) as ei:
        _native.merge_kubeconfig(str(path), {"cluster": "c", "server": "https://127.0.0.1:1", "ca_data": "QQ==",
                                             "user": "u", "client_cert_data": "QQ==", "client_key_data": "QQ==",
                                             "context": "c"})
    err = _errors.from_native(ei.value)
    assert type(err) is ae.FileOperationError
    assert str(err).startswith("AZK8S0820: ") and "left unchanged" in str(err)


# ---- ARM: _arm.call over a stubbed send_raw_request (the network boundary) --

ARM = "https://arm.test"
CMD = SimpleNamespace(cli_ctx=SimpleNamespace(cloud=SimpleNamespace(endpoints=SimpleNamespace(
    resource_manager=ARM + "/"))))


def _response(status, body):
    r = requests.Response()
    r.status_code = status
    r._content = body.encode()
    r.headers["Content-Type"] = "application/json"
    return r


@pytest.fixture
def send(monkeypatch):
    """Makes send_raw_request raise or return what the test sets."""
    box = {}

    def fake(cli_ctx, method, url, body=None, **kw):
        box["url"] = url
        if isinstance(box["result"], BaseException):
            raise box["result"]
        return box["result"]

    import azure.cli.core.util
    monkeypatch.setattr(azure.cli.core.util, "send_raw_request", fake)
    return box


@pytest.mark.parametrize("status,cls,text", [
    (404, ae.ResourceNotFoundError, "AZK8S0811: gone"),
    (403, ae.UnauthorizedError, "AZK8S0812: C: gone"),
    (401, ae.UnauthorizedError, "AZK8S0813: C: gone"),
    (500, ae.AzureResponseError, "Reading failed: C: gone"),
])
def test_arm_status_maps_to_class(send, status, cls, text):
    send["result"] = ae.HTTPError("Not OK", _response(status, '{"error":{"code":"C","message":"gone"}}'))
    with pytest.raises(ae.AzCLIError) as ei:
        _arm.call(CMD, "GET", "/x", what="Reading")
    assert type(ei.value) is cls and str(ei.value) == text
    assert send["url"] == ARM + "/x?api-version=2024-01-01"


@pytest.mark.parametrize("exc", [
    requests.exceptions.ConnectionError("refused"),
    requests.exceptions.ConnectTimeout("timed out"),
    ServiceRequestError("refused"),
    ae.ClientRequestError("refused"),
    ConnectionRefusedError("refused"),
])
def test_unreachable_arm_is_client_request_error(send, exc):
    send["result"] = exc
    with pytest.raises(ae.ClientRequestError) as ei:
        _arm.call(CMD, "GET", "/x")
    assert type(ei.value) is ae.ClientRequestError
    assert str(ei.value) == "Cannot reach ARM at %s: %s" % (ARM, exc)


def test_certificate_errors_are_left_to_az(send):
    """az's handler turns requests' SSLError into advice about
    REQUESTS_CA_BUNDLE; ours must not hide it."""
    send["result"] = exc = requests.exceptions.SSLError("certificate verify failed")
    with pytest.raises(requests.exceptions.SSLError) as ei:
        _arm.call(CMD, "GET", "/x")
    assert ei.value is exc


def test_no_classification_by_class_name(send):
    """A class that merely shares a name with a connection error is not one."""
    ClientRequestError = type("ClientRequestError", (Exception,), {})
    ConnectionError_ = type("ConnectionError", (Exception,), {})
    for exc in (ClientRequestError("x"), ConnectionError_("y"), ValueError("z")):
        send["result"] = exc
        with pytest.raises(type(exc)) as ei:
            _arm.call(CMD, "GET", "/x")
        assert ei.value is exc


def test_no_name_comparisons_left_in_the_extension():
    pattern = re.compile(r"__name__\s*(==|!=|in\b)|type\([^)]*\)\.__name__|__class__\.__name__")
    ext = os.path.join(ROOT, "azext_connectedk8s")
    hits = [(f, n, line) for f in sorted(os.listdir(ext)) if f.endswith(".py")
            for n, line in enumerate(open(os.path.join(ext, f)), 1) if pattern.search(line)]
    assert hits == []
