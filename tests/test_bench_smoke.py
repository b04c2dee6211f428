"""The benchmark suite's smoke test: bench/suite.py --short (what bench/run
runs after installing and building) brings up the real daemons, chisel and
Toxiproxy and measures every row. Only that every row produced numbers is
asserted, never how fast anything was: timings on a shared machine are
not a test."""
import json
import math
import os
import subprocess
import sys

from conftest import ROOT


def number(v):
    return isinstance(v, (int, float)) and math.isfinite(v)


def test_every_row_of_the_short_suite_produces_numbers(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "suite.py"), "--short", "--no-record",
                        "--out", str(out)], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    doc = json.loads((out / "results.json").read_text())
    assert doc["failed"] == []
    rows = doc["rows"]
    assert {x["row"] for x in rows} == {"0", "1", "2", "3", "4", "5"}
    chisel_built = not any("chisel could not be built" in n for n in doc["notes"])
    for key in ("1", "2", "3", "4", "5"):
        lines = [x for x in rows if x["row"] == key]
        # Every line has its number on the path(s) it is about.
        for x in lines:
            assert any(number(x[p]) for p in ("direct", "connectedk8s", "chisel")), x
            if x["what"].startswith(("CPU per", "RSS per idle")):
                assert number(x["connectedk8s"]) or number(x["chisel"]), x
        # Each row compares connectedk8s with direct, and with chisel when it was built.
        assert any(number(x["connectedk8s"]) and number(x["direct"]) for x in lines), lines
        if chisel_built:
            assert any(number(x["chisel"]) for x in lines), lines
    if not any("Toxiproxy could not be built" in n for n in doc["notes"]):
        rtt = [x for x in rows if "50 ms RTT" in x["what"]]
        assert rtt and all(number(rtt[0][p]) for p in ("direct", "connectedk8s")), rtt
    for proc in ("proxy", "hub", "agent"):
        assert [x for x in rows if x["what"].startswith("CPU per GiB") and proc in x["what"]
                and number(x["connectedk8s"])]
        assert [x for x in rows if x["what"] == "RSS per idle watch, " + proc and number(x["connectedk8s"])]
    assert number(doc["cipher"]["mb_s"]) and doc["cipher"]["evp"]
    assert number(doc["framer"]["p50_us"])
    if "matplotlib" in sys.modules or _has_matplotlib():
        assert doc["plots"] and all(os.path.getsize(p) > 1000 for p in doc["plots"])
    # The table went to stdout; --no-record left bench/RESULTS.md alone.
    assert "| row | measurement |" in r.stdout


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False
