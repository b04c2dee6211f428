"""Style is enforced, not declared: every C source is formatted as the
checked-in .clang-format says (`make format` applies it). Warnings are
enforced by the build itself (csrc/warnings with -Werror)."""
import glob
import os
import shutil
import subprocess

from conftest import ROOT

SOURCES = sorted(glob.glob(os.path.join(ROOT, "csrc", "*", "*.[ch]")) + glob.glob(os.path.join(ROOT, "tests", "*.c")))


def test_clang_format_is_installed():
    assert shutil.which("clang-format"), "scripts/install-deps installs clang-format"


def test_c_sources_are_formatted():
    assert len(SOURCES) > 40
    r = subprocess.run(["clang-format", "--dry-run", "--Werror", *SOURCES], cwd=ROOT, capture_output=True, text=True)
    # Each finding names the file and line; `make format` fixes them.
    assert r.returncode == 0, r.stderr[-4000:]
