"""Shared fixtures: an isolated home for every test, the CLI, and the shared fixtures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MINSKY_SHARED_DIR", REPO.parent / "shared"))
SAMPLE_STORE = SHARED / "fixtures" / "minsky-store-sample.json"
ORIGINAL_SCHEMAS = SHARED / "fixtures" / "minsky-original-schemas.sql"


@pytest.fixture
def shared_sample() -> Path:
    if not SAMPLE_STORE.exists():
        pytest.fail(f"shared fixtures not found at {SHARED}: set MINSKY_SHARED_DIR")
    return SAMPLE_STORE


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own config, state and working directory."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    for var in list(os.environ):
        if var.startswith("MINSKY_") and var not in (
            "MINSKY_TEST_POSTGRES_URL",
            "MINSKY_REQUIRE_POSTGRES",
            "MINSKY_SHARED_DIR",
        ):
            monkeypatch.delenv(var)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


@pytest.fixture
def state_dir(isolated_home: Path) -> Path:
    return isolated_home / ".local" / "state" / "minsky"


Invoke = Callable[..., Result]


@pytest.fixture
def minsky() -> Invoke:
    """Run the CLI in-process, as a user types it."""
    from minsky.cli import cli

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def minsky_json(minsky: Invoke) -> Callable[..., dict]:  # type: ignore[type-arg]
    def run(*args: str) -> dict:  # type: ignore[type-arg]
        result = minsky(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    return run


def run_minsky(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run minsky as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "minsky", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def use_backend(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    def choose(backend: str) -> None:
        monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", backend)

    yield choose
