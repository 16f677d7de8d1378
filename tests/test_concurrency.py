"""Many processes at once, on every backend: nothing lost, no lost update, no spurious 'locked'."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest

from conftest import run_minsky
from reliability import fork, scaled, wait_ok

pytestmark = pytest.mark.slow
PROCESSES = 16


@pytest.fixture(params=["json", "sqlite", "postgres"])
def backend_env(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"MINSKY_SESSIONDB_BACKEND": request.param}
    if request.param == "postgres":
        env["MINSKY_POSTGRES_URL"] = request.getfixturevalue("postgres_url")
    elif request.param == "sqlite":
        env["MINSKY_SESSIONDB_DB_PATH"] = str(tmp_path / "sessions.db")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_concurrent_session_starts_lose_nothing(backend_env: dict[str, str], capfd: pytest.CaptureFixture[str]) -> None:
    from minsky.cli import cli

    per_process = scaled(50)

    def starter(n: int) -> None:
        for i in range(per_process):
            cli.main(["session", "start", f"p{n:02d}-{i:04d}", "--repo", "https://h/a/b"], standalone_mode=False)

    pids = [fork(lambda n=n: starter(n)) for n in range(PROCESSES)]
    for pid in pids:
        wait_ok(pid)
    assert "locked" not in capfd.readouterr().err
    listed = run_minsky("session", "list", "--json", env=backend_env)
    names = [s["session"] for s in json.loads(listed.stdout)["sessions"]]
    assert len(names) == PROCESSES * per_process == len(set(names))


def test_concurrent_read_modify_write_loses_no_update(
    backend_env: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    from minsky.cli.app import App

    assert run_minsky("session", "start", "counter", "--repo", "https://h/a/b", env=backend_env).returncode == 0
    per_process = scaled(50)

    def bump(record):  # type: ignore[no-untyped-def]
        return attrs.evolve(record, extra={**record.extra, "n": record.extra.get("n", 0) + 1})

    def updater() -> None:
        store = App().store().store
        for _ in range(per_process):
            store.update("counter", bump)
        store.close()

    pids = [fork(updater) for _ in range(PROCESSES)]
    for pid in pids:
        wait_ok(pid)
    assert "locked" not in capfd.readouterr().err
    got = json.loads(run_minsky("session", "get", "counter", "--json", env=backend_env).stdout)
    assert got["n"] == PROCESSES * per_process
