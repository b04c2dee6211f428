"""Lints the help text in azext_connectedk8s/_help.py without az.

az parses each `helps` entry as YAML only when someone asks for help, so a
bad entry (an unquoted ": " in a summary) ships unnoticed and then breaks
`az connectedk8s -h` for the whole group. Here every entry is loaded with
yaml.safe_load and checked for the keys az reads, and every command group
and command that commands.py registers must have an entry. The rendering
in the real az is tests/integration/test_help.py."""
import os
import sys
import types

import pytest
import yaml

from conftest import ROOT

EXT = os.path.join(ROOT, "azext_connectedk8s")
KEYS = {"type", "short-summary", "long-summary", "parameters", "examples"}


def _run_isolated(path, stubs):
    """Executes one file of the extension with `stubs` standing in for the
    modules it imports (the tests' venv has no azure-cli or knack) and
    returns its globals. sys.modules is restored afterwards."""
    saved = dict(sys.modules)
    try:
        sys.modules.update(stubs)
        with open(path) as f:
            code = compile(f.read(), path, "exec")
        scope = {"__name__": "azext_connectedk8s." + os.path.basename(path)[:-3], "__file__": path}
        exec(code, scope)
        return scope
    finally:
        for name in set(sys.modules) - set(saved):
            del sys.modules[name]
        sys.modules.update(saved)


def _helps():
    fake = types.ModuleType("knack.help_files")
    fake.helps = {}
    _run_isolated(os.path.join(EXT, "_help.py"), {"knack": types.ModuleType("knack"), "knack.help_files": fake})
    return fake.helps


class _Recorder:
    """Stands in for AzCommandsLoader: records the names that
    load_command_table registers, whatever *command method it uses."""

    def __init__(self):
        self.groups, self.commands = [], []

    def command_group(self, name, *args, **kwargs):
        self.groups.append(name)
        rec = self

        class Group:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def __getattr__(self, attr):
                if not attr.endswith("command"):
                    raise AttributeError(attr)
                return lambda cmd, *a, **kw: rec.commands.append(name + " " + cmd)

        return Group()


def _command_table():
    # A bare package object lets commands.py import its siblings
    # (azext_connectedk8s._format) without running __init__, which needs az.
    pkg = types.ModuleType("azext_connectedk8s")
    pkg.__path__ = [EXT]
    scope = _run_isolated(os.path.join(EXT, "commands.py"), {"azext_connectedk8s": pkg})
    rec = _Recorder()
    scope["load_command_table"](rec, None)
    return rec


HELPS = _helps()


def test_helps_found():
    assert "connectedk8s" in HELPS and len(HELPS) > 1


@pytest.mark.parametrize("name", sorted(HELPS))
def test_entry_is_valid_help_yaml(name):
    try:
        data, error = yaml.safe_load(HELPS[name]), None
    except yaml.YAMLError as e:
        data, error = None, e
    if error:  # outside the except block: the YAML error alone, not a chained traceback
        pytest.fail("helps[%r] is not valid YAML (quote the value or use a '>' block):\n%s" % (name, error))
    assert isinstance(data, dict), "helps[%r] must be a YAML mapping, got %r" % (name, type(data).__name__)
    assert not set(data) - KEYS, "helps[%r] has keys az does not read: %s" % (name, sorted(set(data) - KEYS))
    assert data.get("type") in ("group", "command"), "helps[%r]: type must be group or command" % name
    summary = data.get("short-summary")
    assert isinstance(summary, str) and summary.strip(), "helps[%r] needs a short-summary" % name
    # knack capitalises a summary and adds a full stop when rendering; writing
    # them so keeps the source and what users read the same.
    assert summary[0].isupper() and summary.rstrip().endswith("."), \
        "helps[%r]: short-summary should start upper-case and end with '.': %r" % (name, summary)
    if "long-summary" in data:
        assert isinstance(data["long-summary"], str) and data["long-summary"].strip()
    examples = data.get("examples", [])
    assert isinstance(examples, list), "helps[%r]: examples must be a list" % name
    for i, ex in enumerate(examples):
        assert isinstance(ex, dict), "helps[%r] example %d must be a mapping" % (name, i)
        for key in ("name", "text"):
            assert isinstance(ex.get(key), str) and ex[key].strip(), "helps[%r] example %d needs %s" % (name, i, key)
        assert ex["text"].startswith("az %s " % name) or ex["text"] == "az " + name, \
            "helps[%r] example %d does not run that command: %r" % (name, i, ex["text"])


def test_every_group_and_command_has_help():
    rec = _command_table()
    assert "connectedk8s proxy" in rec.commands  # the recorder saw the real table
    for name, kind in [(g, "group") for g in rec.groups] + [(c, "command") for c in rec.commands]:
        assert name in HELPS, "%s %r in commands.py has no entry in _help.py" % (kind, name)
        try:
            data = yaml.safe_load(HELPS[name])
        except yaml.YAMLError:
            continue  # reported by test_entry_is_valid_help_yaml
        assert (data or {}).get("type") == kind, "helps[%r] should have type: %s" % (name, kind)
    stale = set(HELPS) - set(rec.groups) - set(rec.commands)
    assert not stale, "_help.py documents commands that commands.py does not register: %s" % sorted(stale)
