"""Builds the connectedk8s az extension wheel, including the native core
(csrc/core + csrc/proxy + csrc/pymod) as azext_connectedk8s._native against the stable
ABI, so one cp310-abi3 wheel loads in every CPython >= 3.10 that az ships (PyUnicode_AsUTF8AndSize joined the stable ABI in 3.10)."""
import glob
import subprocess

from setuptools import Extension, find_packages, setup
from wheel.bdist_wheel import bdist_wheel


def warnings():
    """The project's one warning set (csrc/warnings, shared with the Makefile)."""
    with open("csrc/warnings") as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")] + ["-Werror"]


def pkg_config(*args):
    out = subprocess.run(["pkg-config", *args, "libuv", "libcjson", "openssl", "yaml-0.1", "libcurl"], capture_output=True, text=True,
                         check=True).stdout.split()
    return out


class AbiThreeWheel(bdist_wheel):
    def finalize_options(self):
        super().finalize_options()
        self.py_limited_api = "cp310"


native = Extension(
    "azext_connectedk8s._native",
    sources=["csrc/pymod/native.c"] + sorted(glob.glob("csrc/core/*.c")) + sorted(glob.glob("csrc/proxy/*.c")),
    include_dirs=["csrc/core", "csrc/proxy"] + [f[2:] for f in pkg_config("--cflags-only-I")],
    libraries=[f[2:] for f in pkg_config("--libs-only-l")],
    define_macros=[("Py_LIMITED_API", "0x030A0000"), ("_GNU_SOURCE", None)],
    extra_compile_args=["-std=c11", "-fvisibility=hidden"] + warnings(),
    py_limited_api=True,
)

setup(
    name="connectedk8s",
    version="0.1.0",
    description="Open, self-hostable Azure Arc cluster connect: az connectedk8s with a native C core",
    license="MIT",
    packages=find_packages(include=["azext_connectedk8s", "azext_connectedk8s.*"]),
    package_data={"azext_connectedk8s": ["azext_metadata.json"]},
    ext_modules=[native],
    cmdclass={"bdist_wheel": AbiThreeWheel},
    # az ships everything the extension imports; a dependency here would make
    # `az extension add` query a package index.
    install_requires=[],
    zip_safe=False,
)
