"""`az connectedk8s -h` and `az connectedk8s <command> -h` in Debian's az
(2.45) and PyPI's (2.91), with the extension installed from the wheel in
dist/ by `az extension add`, as a user installs it. Help needs no hub or
sign-in. The commands come from the extension's own command table, loaded
by the Python that runs that az, so a command added to commands.py is
checked here without editing this file. Bad argument values are refused
by the extension's validators in both azs before any sign-in."""
import glob
import json
import os
import shutil
import subprocess
import tempfile

import pytest
import yaml

from azcli import AZ, PYPI_AZ, offline_env
from conftest import ROOT

# Run inside the az's own interpreter: the command table the installed
# extension registers, and the raw help text it registers with knack.
TABLE_SCRIPT = r"""
import json, sys
from azure.cli.core import get_default_cli
from azure.cli.core.extension import get_extension_path
sys.path.insert(0, get_extension_path("connectedk8s"))
import azext_connectedk8s
from knack.help_files import helps
loader = azext_connectedk8s.COMMAND_LOADER_CLS(cli_ctx=get_default_cli())
commands = sorted(loader.load_command_table(None))
groups = sorted(loader.command_group_table)
print(json.dumps({"extension": azext_connectedk8s.__file__, "groups": groups, "commands": commands,
                  "helps": {k: helps.get(k) for k in groups + commands}}))
"""


def _squash(s):
    """Text without whitespace: knack wraps help to the terminal width (and
    breaks lines after hyphens), so compare the words, not the layout."""
    return "".join(s.split())


class InstalledAz:
    def __init__(self, az):
        self.az = az
        self.dir = tempfile.mkdtemp(prefix="ck-help-")
        self.env = offline_env(self.dir)
        with open(az) as f:
            self.python = f.readline()[2:].strip()  # both azs are Python scripts with a #! line
        wheel = max(glob.glob(os.path.join(ROOT, "dist", "connectedk8s-*.whl")), key=os.path.getmtime)
        self.run("extension", "add", "--source", wheel, "--yes")
        self.version = json.loads(self.run("version", "-o", "json").stdout)
        r = subprocess.run([self.python, "-c", TABLE_SCRIPT], env=self.env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, "loading the command table in %s failed:\n%s" % (self.python, r.stderr)
        self.table = json.loads(r.stdout)

    def run(self, *args, check=True):
        r = subprocess.run([self.az, *args], env=self.env, capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError("az %s failed (%d):\n%s\n%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def summary(self, name):
        text = self.table["helps"].get(name)
        assert text, "%s has no help entry in the installed extension" % name
        return yaml.safe_load(text)["short-summary"]

    def help_problems(self, name):
        """Runs `az <name> -h`; returns what is wrong with it (empty if fine)."""
        r = self.run(*name.split(), "-h", check=False)
        problems = []
        if r.returncode != 0:
            problems.append("exit %d" % r.returncode)
        if "traceback" in r.stderr.lower() or "error" in r.stderr.lower():
            problems.append("stderr: " + r.stderr.strip()[-2000:])
        try:
            summary = self.summary(name)
        except yaml.YAMLError as e:
            problems.append("its help entry is not valid YAML: %s" % e)
        else:
            if _squash(summary) not in _squash(r.stdout):
                problems.append("its short-summary %r is not in the output:\n%s" % (summary, r.stdout))
        return problems, r

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module", params=["debian", "pypi"])
def az(request):
    if request.param == "debian":
        path = AZ
    else:
        assert PYPI_AZ, "scripts/install-deps installs azure-cli from PyPI"
        path = PYPI_AZ[-1]
    a = InstalledAz(path)
    yield a
    a.close()


def test_extension_from_the_wheel(az):
    assert az.version["extensions"] == {"connectedk8s": "0.1.0"}
    assert az.table["extension"].startswith(az.dir), "the table came from another copy: " + az.table["extension"]
    if az.az in PYPI_AZ:
        assert az.version["azure-cli"] == os.path.basename(os.path.dirname(os.path.dirname(az.az)))
    assert "connectedk8s proxy" in az.table["commands"]


def test_group_help_lists_every_command(az):
    for group in az.table["groups"]:
        problems, r = az.help_problems(group)
        assert not problems, "az %s -h (azure-cli %s):\n%s" % (group, az.version["azure-cli"], "\n".join(problems))
        listed = r.stdout.split()
        for cmd in az.table["commands"]:
            if cmd.rsplit(" ", 1)[0] == group:
                assert cmd.rsplit(" ", 1)[1] in listed, "az %s -h does not list %s:\n%s" % (group, cmd, r.stdout)


def test_every_command_help_renders(az):
    failed = {}
    for cmd in az.table["commands"]:
        problems, _ = az.help_problems(cmd)
        if problems:
            failed[cmd] = problems
    assert not failed, "azure-cli %s:\n" % az.version["azure-cli"] + "\n".join(
        "az %s -h: %s" % (cmd, "\n  ".join(p)) for cmd, p in failed.items())



FEATURE_ADVICE = "Separate names with spaces or commas, e.g. --features cluster-connect azure-rbac."


@pytest.mark.parametrize("args,message,advice", [
    (["proxy", "--port", "0"], "--port must be between 1 and 65535; got 0.",
     "Give a free local TCP port, e.g. --port 47011 (the default)."),
    (["proxy", "--port", "65536"], "--port must be between 1 and 65535; got 65536.",
     "Give a free local TCP port, e.g. --port 47011 (the default)."),
    (["proxy", "--pool-size", "17"], "--pool-size must be between 0 and 16; got 17.",
     "Use 0 to open a relay connection per kubectl connection, or up to 16 to keep that many ready (default 2)."),
    (["enable-features", "--features", "cluster-connect,Bogus"],
     "Unknown feature 'bogus'. Use one or more of: cluster-connect, azure-rbac, custom-locations.", FEATURE_ADVICE),
    (["disable-features", "--yes", "--features", "nope"],
     "Unknown feature 'nope'. Use one or more of: cluster-connect, azure-rbac, custom-locations.", FEATURE_ADVICE),
])
def test_bad_arguments_are_refused_before_anything_runs(az, args, message, advice):
    """The validators that _params.py wires run in the installed az: the
    error and its advice come before any sign-in or request (this profile
    has no account at all, so reaching the command would fail otherwise)."""
    r = az.run("connectedk8s", args[0], "-n", "c1", "-g", "rg", *args[1:], check=False)
    assert r.returncode == 1, (r.returncode, r.stderr)  # az's exit code for an AzCLIError
    assert r.stderr.splitlines() == ["ERROR: " + message, advice], r.stderr


@pytest.mark.parametrize("args", [
    ["proxy", "--port", "1", "--pool-size", "0"],
    ["proxy", "--port", "65535", "--pool-size", "16"],
    ["enable-features", "--features", "Cluster-Connect,azure-rbac", "CUSTOM-LOCATIONS"],
])
def test_good_arguments_reach_the_command(az, args):
    """The control for the test above: accepted values pass the validators
    and the command runs (and stops at the missing sign-in)."""
    r = az.run("connectedk8s", args[0], "-n", "c1", "-g", "rg", *args[1:], check=False)
    assert r.returncode == 1 and r.stderr.splitlines() == ["ERROR: Please run 'az login' to setup account."], r.stderr
