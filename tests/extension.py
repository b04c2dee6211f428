"""Imports the extension (azext_connectedk8s, with its in-place native
module) into the tests' own Python, for tests of its Python logic.

The package needs azure-cli-core and knack, which the tests' venv does not
carry. Every machine that runs scripts/test has the pinned azure-cli from
PyPI that scripts/install-deps puts in ~/.cache/connectedk8s/az-pypi/: a
venv built from the same /usr/bin/python3 as .cache/venv, so its
site-packages is appended to sys.path (after the venv's own, so pytest and
pyyaml stay the venv's). CK_AZ_SITE names another site-packages with
azure-cli in it (e.g. Debian's /usr/lib/python3/dist-packages for az 2.45).
A missing azure-cli fails the tests with the command that installs it: it
is never a skip."""
import glob
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "python%d.%d" % sys.version_info[:2]


def az_site_packages():
    """The site-packages to take azure-cli from, or None."""
    if os.environ.get("CK_AZ_SITE"):
        return os.environ["CK_AZ_SITE"]
    found = sorted(glob.glob(os.path.expanduser("~/.cache/connectedk8s/az-pypi/*/lib/%s/site-packages" % PY)),
                   key=lambda p: [int(x) for x in p.split("/az-pypi/")[1].split("/")[0].split(".")])
    return found[-1] if found else None


def import_extension():
    """Makes `import azext_connectedk8s` work; returns the package."""
    try:
        import azure.cli.core  # noqa: F401  (already importable: nothing to add)
    except ImportError:
        site = az_site_packages()
        if not site or not os.path.isdir(os.path.join(site, "azure", "cli", "core")):
            raise RuntimeError("azure-cli for %s is not installed (looked in %s); run scripts/install-deps"
                               % (PY, site or "~/.cache/connectedk8s/az-pypi/*/lib/%s/site-packages" % PY))
        sys.path.append(site)
        for name in [m for m in sys.modules if m == "azure" or m.startswith("azure.")]:
            del sys.modules[name]  # a namespace package cached before the path was added
        import azure.cli.core  # noqa: F401
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    if not glob.glob(os.path.join(ROOT, "azext_connectedk8s", "_native*.so")):
        raise RuntimeError("azext_connectedk8s/_native*.so is not built; run scripts/build")
    import azext_connectedk8s
    assert os.path.dirname(azext_connectedk8s.__file__) == os.path.join(ROOT, "azext_connectedk8s"), \
        azext_connectedk8s.__file__
    return azext_connectedk8s
