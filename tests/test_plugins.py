"""Plugin discovery: listing, broken plugins, API versions, lazy start-up."""

from __future__ import annotations

import json
import subprocess
import sys

from minsky import hookimpl
from minsky.backend import BackendSpec
from minsky.plugins import discover
from minsky_backend_json import SPEC as JSON_SPEC


def test_plugins_list_shows_installed_backends(minsky_json) -> None:  # type: ignore[no-untyped-def]
    plugins = {p["name"]: p for p in minsky_json("plugins", "list")["plugins"]}
    assert plugins["json"]["backends"] == ["json"] and plugins["json"]["status"] == "loaded"
    assert plugins["json"]["distribution"] == "minsky-backend-json"
    assert plugins["sqlite"]["backends"] == ["sqlite"]
    assert plugins["json"]["hooks"] == ["register_backends"]
    options = minsky_json("plugins", "list")["backends"]["sqlite"]["options"]
    assert {
        "name": "path",
        "help": "path of the SQLite database",
        "configKey": "sessiondb.dbPath",
        "cliFlag": "--sqlite-path",
        "secret": False,
    } in options


class RaisingPlugin:
    @hookimpl
    def register_backends(self, register):  # type: ignore[no-untyped-def]
        raise RuntimeError("cannot find my driver")


class FuturePlugin:
    @hookimpl
    def register_backends(self, register):  # type: ignore[no-untyped-def]
        register(BackendSpec(name="future", description="", open=JSON_SPEC.open, api_version=99))


class TypoPlugin:
    @hookimpl
    def register_backend(self, register):  # type: ignore[no-untyped-def]
        pass


def test_broken_plugins_are_reported_and_break_nothing() -> None:
    registry = discover(extra=[("raising", RaisingPlugin()), ("future", FuturePlugin()), ("typo", TypoPlugin())])
    by_name = {p.name: p for p in registry.plugins}
    assert by_name["raising"].status == "failed" and "cannot find my driver" in (by_name["raising"].error or "")
    assert by_name["future"].status == "refused" and "hook API 99" in (by_name["future"].error or "")
    assert by_name["typo"].status == "failed" and "register_backend" in (by_name["typo"].error or "")
    assert "future" not in registry.backends
    assert {"json", "sqlite"} <= set(registry.backends)


def test_plugin_that_fails_to_import_is_listed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dist = tmp_path / "minsky_backend_broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: minsky-backend-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[minsky]\nbroken = minsky_backend_broken_missing_module\n")
    env = {"PYTHONPATH": str(tmp_path)}
    from conftest import run_minsky

    listed = run_minsky("plugins", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    broken = next(p for p in json.loads(listed.stdout)["plugins"] if p["name"] == "broken")
    assert broken["status"] == "failed" and "ModuleNotFoundError" in broken["error"]
    assert broken["distribution"] == "minsky-backend-broken"
    assert run_minsky("session", "list", env=env).returncode == 0


def test_load_plugins_variable_isolates_plugins(minsky_json, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MINSKY_LOAD_PLUGINS", "sqlite")
    from minsky.plugins import registry

    registry.cache_clear()
    try:
        assert [p["name"] for p in minsky_json("plugins", "list")["plugins"]] == ["sqlite"]
    finally:
        registry.cache_clear()


def test_help_and_version_import_no_plugin() -> None:
    code = (
        "import sys\nfrom minsky.cli import cli\n"
        "for args in (['--help'], ['--version'], ['session', '--help']):\n"
        "    try: cli.main(args, standalone_mode=False)\n"
        "    except SystemExit: pass\n"
        "bad = [m for m in sys.modules if m.startswith(('psycopg', 'minsky_backend', 'sqlite3', 'pluggy'))]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_debug_logging_goes_to_stderr_with_secrets_masked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from conftest import run_minsky

    done = run_minsky(
        "session",
        "list",
        "--json",
        env={"MINSKY_LOG_LEVEL": "debug", "MINSKY_POSTGRES_URL": "postgresql://u:LogCanary9@h/db"},
    )
    assert done.returncode == 0
    assert "minsky: DEBUG" in done.stderr and "plugin json" in done.stderr and "opened the json store" in done.stderr
    assert "LogCanary9" not in done.stderr and json.loads(done.stdout) == {"sessions": []}


def test_the_version_minsky_reports_is_the_one_it_is_built_as() -> None:
    """`minsky plugins` and the compat session read ``minsky.__version__``: it drifted from
    pyproject once (0.3.8 against 0.3.9), caught only by the compat session."""
    import tomllib
    from pathlib import Path

    import minsky

    pyproject = Path(__file__).resolve().parents[1] / "core" / "pyproject.toml"
    assert minsky.__version__ == tomllib.loads(pyproject.read_text("utf-8"))["project"]["version"]
