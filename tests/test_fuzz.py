"""Runs every libFuzzer target for a bounded time (FUZZ_SECONDS, default 20)
from the checked-in corpus. A crash, sanitizer report or leak fails."""
import glob
import os
import subprocess

import pytest

from conftest import BUILD, ROOT

TARGETS = sorted(glob.glob(os.path.join(BUILD, "fuzz", "fuzz_*")))
SECONDS = int(os.environ.get("FUZZ_SECONDS", "20"))


def test_fuzz_targets_were_built():
    sources = glob.glob(os.path.join(ROOT, "csrc", "fuzz", "fuzz_*.c"))
    assert len(TARGETS) == len(sources) >= 4


@pytest.mark.parametrize("target", TARGETS, ids=[os.path.basename(t) for t in TARGETS])
def test_fuzz(target, tmp_path):
    name = os.path.basename(target)[5:]
    corpus = os.path.join(ROOT, "csrc", "fuzz", "corpus", name)
    args = [target, "-max_total_time=%d" % SECONDS, "-max_len=65536", "-print_final_stats=1",
            "-artifact_prefix=%s/" % tmp_path, str(tmp_path / "work"), corpus]
    os.makedirs(tmp_path / "work")
    d = os.path.join(ROOT, "csrc", "fuzz", name + ".dict")
    if os.path.exists(d):
        args.insert(1, "-dict=" + d)
    out = subprocess.run(args, capture_output=True, text=True, timeout=SECONDS + 120)
    assert out.returncode == 0, out.stderr[-4000:]
    runs = [l for l in out.stderr.splitlines() if l.startswith("stat::number_of_executed_units")]
    assert runs and int(runs[0].split()[-1]) > 1000, "fuzzer barely ran"
