"""Each daemon's modules point only downwards, towards the core.

A module is a directory's `name.c` with its `name.h`. Two graphs are
checked for cycles, per part (core, hub, agent, proxy, pymod):

- the include graph, from the `#include "..."` lines, resolved the way the
  build resolves them (the file's own directory, then csrc/core; the
  Python module also sees csrc/proxy, as setup.py says);
- the call graph, from the symbols each object file of `make daemons`
  defines and uses (`nm`): a shared header such as the agent's agent.h
  hides cycles from the include graph (fwd.c calls authz.c, which calls
  reg.c, which calls channel.c, which calls back into fwd.c), the linker's
  view does not. The Python module and the proxy are not in build/obj
  (setup.py compiles them), so only core, hub and agent are checked here.

And csrc/core never includes a header of a daemon, the proxy or the
Python module: the core lives inside az and inside every daemon."""
import collections
import glob
import os
import re
import subprocess

import pytest

from conftest import BUILD, ROOT

CSRC = os.path.join(ROOT, "csrc")
PARTS = ["core", "hub", "agent", "proxy", "pymod"]
# Where a quoted include is looked for, per part (Makefile: -I$(dir $<)
# -Icsrc/core; setup.py: csrc/core and csrc/proxy).
SEARCH = {"core": ["core"], "hub": ["hub", "core"], "agent": ["agent", "core"], "proxy": ["proxy", "core"],
          "pymod": ["pymod", "core", "proxy"]}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)



def module(path):
    rel = os.path.relpath(path, CSRC)
    return os.path.splitext(rel)[0]


def resolve(part, name):
    """The module a quoted include names, or None when the build would not find it."""
    for d in SEARCH[part]:
        if os.path.exists(os.path.join(CSRC, d, name)):
            return module(os.path.join(CSRC, d, name))
    return None


def include_graph():
    g = collections.defaultdict(set)
    unresolved = []
    for part in PARTS:
        for path in sorted(glob.glob(os.path.join(CSRC, part, "*.[ch]"))):
            src = module(path)
            g[src]
            for name in INCLUDE.findall(open(path).read()):
                dst = resolve(part, name)
                if dst is None:
                    unresolved.append("%s includes \"%s\"" % (os.path.relpath(path, ROOT), name))
                elif dst != src:
                    g[src].add(dst)
    return g, unresolved


def call_graph():
    """module -> modules whose symbols it uses, from build/obj/*/*.o."""
    defined, used = collections.defaultdict(set), {}
    for obj in sorted(glob.glob(os.path.join(BUILD, "obj", "*", "*.o"))):
        m = os.path.splitext(os.path.relpath(obj, os.path.join(BUILD, "obj")))[0]
        out = subprocess.run(["nm", "-P", obj], capture_output=True, text=True, check=True).stdout
        used[m] = set()
        for line in out.splitlines():
            f = line.split()
            if len(f) < 2:
                continue
            if f[1] == "U":
                used[m].add(f[0])
            elif f[1] in "TDBR":  # global code and data this object defines
                defined[f[0]].add(m)
    g = collections.defaultdict(set)
    for m, syms in used.items():
        g[m]
        for s in syms:
            for d in defined.get(s, ()):
                # Two daemons may both define main and the like; only the
                # caller's own part and the core can be linked with it.
                if d != m and d.split("/")[0] in (m.split("/")[0], "core"):
                    g[m].add(d)
    return g


def cycles(g, part):
    """Strongly connected components of more than one module within part
    (and the core below it), each as a sorted list."""
    nodes = [n for n in g if n.split("/")[0] in (part, "core")]
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w.split("/")[0] not in (part, "core"):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for n in sorted(nodes):
        if n not in index:
            visit(n)
    return out


def test_includes_resolve():
    _, unresolved = include_graph()
    assert not unresolved, "quoted includes the build cannot find in the part's own directory or the core: %s" % (
        unresolved)


def test_core_includes_only_core():
    g, _ = include_graph()
    assert any(n.startswith("core/") for n in g)
    bad = ["%s -> %s" % (m, d) for m, ds in sorted(g.items()) if m.startswith("core/") for d in sorted(ds)
           if not d.startswith("core/")]
    assert not bad, bad
    # A core file naming a header that exists only in a daemon would not
    # resolve at all (and so not appear above): look for the names too.
    daemon_headers = {os.path.basename(p) for part in PARTS[1:] for p in glob.glob(os.path.join(CSRC, part, "*.h"))}
    core_headers = {os.path.basename(p) for p in glob.glob(os.path.join(CSRC, "core", "*.h"))}
    for path in glob.glob(os.path.join(CSRC, "core", "*.[ch]")):
        for name in INCLUDE.findall(open(path).read()):
            assert name in core_headers or name not in daemon_headers, "%s includes the daemon header %s" % (
                os.path.relpath(path, ROOT), name)


@pytest.mark.parametrize("part", PARTS)
def test_no_include_cycles(part):
    g, _ = include_graph()
    assert any(n.startswith(part + "/") for n in g), "no sources found for %s" % part
    found = cycles(g, part)
    assert not found, "include cycles in %s: %s" % (part, found)


@pytest.mark.parametrize("part", [
    "core",
    "hub",
    "agent",
])
def test_no_call_cycles(part):
    g = call_graph()
    mods = [n for n in g if n.startswith(part + "/")]
    assert mods, "no objects for %s in %s/obj (make daemons)" % (part, BUILD)
    # The graph is real: main reaches modules of its own part and the core.
    if part != "core":
        assert any(d.startswith(part + "/") for d in g[part + "/main"]), g[part + "/main"]
        assert any(d.startswith("core/") for d in g[part + "/main"]), g[part + "/main"]
    found = cycles(g, part)
    assert not found, "modules of %s calling each other in a circle: %s" % (part, found)
