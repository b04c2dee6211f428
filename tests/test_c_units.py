"""Runs each C unit-test binary (one per core module, built with
AddressSanitizer and UndefinedBehaviorSanitizer) as a pytest case.

The cases come from the sources (csrc/tests/test_*.c), not from whatever
binaries happen to be in build/, so a source whose binary was not built
fails. check.h's TEST_MAIN_END prints "FILE: N passed, 0 failed (M checks)"
whenever main returns; so the binary must exit 0, report exactly as many
tests as its source has TEST(...) calls (a test dropped from main, or a
main that returns early, is caught), and have made at least one check per
test."""
import glob
import os
import re
import subprocess

import pytest

from conftest import BUILD, ROOT

SOURCES = sorted(glob.glob(os.path.join(ROOT, "csrc", "tests", "test_*.c")))
SUMMARY = re.compile(r"^(?P<file>\S+\.c): (?P<passed>\d+) passed, 0 failed \((?P<checks>\d+) checks\)$")


def _test_calls(source):
    """The TEST(fn) calls in a test source's main: one per line."""
    return re.findall(r"^\s*TEST\((\w+)\);", open(source).read(), re.M)


def test_unit_binaries_were_built():
    modules = {os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(ROOT, "csrc", "core", "*.c"))}
    tested = {os.path.basename(s)[5:-2] for s in SOURCES}
    # cert is exercised by test_tls and test_conn.
    assert modules - {"cert"} <= tested, "missing unit tests for %s" % (modules - {"cert"} - tested)
    missing = [s for s in SOURCES if not os.access(os.path.join(BUILD, "tests", os.path.basename(s)[:-2]), os.X_OK)]
    assert not missing, "not built (make tests): %s" % missing


@pytest.mark.parametrize("source", SOURCES, ids=[os.path.basename(s)[:-2] for s in SOURCES])
def test_c_unit(source):
    binary = os.path.join(BUILD, "tests", os.path.basename(source)[:-2])
    assert os.access(binary, os.X_OK), "%s was not built (make tests)" % binary
    calls = _test_calls(source)
    assert calls, "%s has no TEST(...) calls" % source
    assert len(set(calls)) == len(calls), "%s runs a test twice: %s" % (source, calls)
    out = subprocess.run([binary], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines, "no output from %s:\n%s" % (binary, out.stderr)
    m = SUMMARY.match(lines[-1])
    assert m, "last line is not check.h's summary: %r" % lines[-1]
    assert os.path.basename(m.group("file")) == os.path.basename(source)
    assert int(m.group("passed")) == len(calls), "%s reported %s tests, its main calls TEST %d times: %s" % (
        binary, m.group("passed"), len(calls), calls)
    assert int(m.group("checks")) >= len(calls), "fewer checks than tests: %s" % lines[-1]
