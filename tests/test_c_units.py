"""Runs each C unit-test binary (one per core module, built with
AddressSanitizer and UndefinedBehaviorSanitizer) as a pytest case."""
import glob
import os
import subprocess

import pytest

from conftest import BUILD

BINARIES = sorted(glob.glob(os.path.join(BUILD, "tests", "test_*")))


def test_unit_binaries_were_built():
    modules = {os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(os.path.dirname(BUILD), "csrc", "core", "*.c"))}
    built = {os.path.basename(b)[5:] for b in BINARIES}
    # cert is exercised by test_tls and test_conn.
    assert modules - {"cert"} <= built, "missing unit tests for %s" % (modules - {"cert"} - built)


@pytest.mark.parametrize("binary", BINARIES, ids=[os.path.basename(b) for b in BINARIES])
def test_c_unit(binary):
    out = subprocess.run([binary], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert " 0 failed" in out.stdout
