"""The Python binding of the native core: stable-ABI wheel, error mapping,
and the SAS reference vector through Python."""
import glob
import os
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT

sys.path.insert(0, ROOT)
from azext_connectedk8s import _native  # noqa: E402


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
