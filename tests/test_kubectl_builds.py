"""Each kubectl release in scripts/KUBECTL_VERSIONS is built (by
scripts/kubectl-build, run from scripts/kube-build) and is that release.
The tests that drive these kubectls through the proxy are still to come
(issue 11)."""
import json
import os
import subprocess

import pytest

from conftest import ROOT
from kube import kube_bin

with open(os.path.join(ROOT, "scripts", "KUBECTL_VERSIONS")) as f:
    VERSIONS = [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]


def test_the_list_names_an_older_and_a_newer_minor_than_the_pin():
    pin = open(os.path.join(ROOT, "scripts", "KUBE_VERSION")).read().strip()
    minor = lambda v: int(v.split(".")[1])  # noqa: E731
    assert len(VERSIONS) == 2 and minor(VERSIONS[0]) < minor(pin) < minor(VERSIONS[1]), VERSIONS


@pytest.mark.parametrize("version", VERSIONS)
def test_kubectl_release_is_built(version):
    cache = os.path.dirname(os.path.dirname(kube_bin()))  # .../kube/<pin>/bin -> .../kube
    kubectl = os.path.join(cache, version, "bin", "kubectl")
    r = subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["clientVersion"]["gitVersion"] == version
