"""Migrating while sessions keep being written (issue 12), with real processes on every backend.

Writers are forked processes running the CLI's commands; migrations run as ``minsky``
subprocesses. Each scenario repeats ``ROUNDS`` times (times ``MINSKY_SOAK``) to hit the window
between the migration's snapshot and its commit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_minsky
from live import (
    CONFLICT,
    MOVED,
    Outcome,
    Place,
    place,
    seed_record,
    set_config,
    wait_for_lines,
    write_json_store,
    writers_running,
)
from reliability import scaled

pytestmark = pytest.mark.slow
SEEDED = 1000  # enough that the copy takes a while; small enough for the suite's time
WRITERS = 3
ROUNDS = 1  # each round overlaps the window many times over (see the catch-up counts)
PAIRS = [(s, t) for s in ("json", "sqlite", "postgres") for t in ("json", "sqlite", "postgres") if s != t]


def pg_url(request: pytest.FixtureRequest, *backends: str) -> str | None:
    """The test database when a backend needs it; writers find it through the environment."""
    if "postgres" not in backends:
        return None
    url = str(request.getfixturevalue("postgres_url"))
    request.getfixturevalue("monkeypatch").setenv("MINSKY_POSTGRES_URL", url)
    return url


def seed(where: Place, tmp: Path, records: list[dict]) -> None:  # type: ignore[type-arg]
    """Fill ``where`` with ``records`` (through a JSON file and the CLI for the SQL backends)."""
    if where.backend == "json":
        assert where.path is not None
        write_json_store(where.path, records)
        return
    staging = tmp / f"seed-{len(records)}.json"
    write_json_store(staging, records)
    done = run_minsky(
        "sessiondb",
        "migrate",
        "to",
        where.backend,
        "--from",
        "json",
        "--json-path",
        str(staging),
        *where.flags(),
        "--on-conflict",
        "overwrite",
    )
    assert done.returncode == 0, done.stderr


def migrate(target: Place, *extra: str, source: Place | None = None) -> subprocess.Popen[str]:
    """``migrate to`` as a real process; from ``source`` (else the configured store)."""
    command = [sys.executable, "-m", "minsky", *["sessiondb", "migrate", "to"], target.backend, *target.flags()]
    return subprocess.Popen(
        [*command, "--json", *extra],
        env={**os.environ, **(_env_for(source) if source is not None else {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def check_final_state(outcome: Outcome, new: dict[str, dict], seeded: set[str]) -> None:  # type: ignore[type-arg]
    for name, op in outcome.last.items():
        if op == "delete":
            assert name not in new, f"{name} was deleted (exit 0) but is in the new store"
        else:
            assert name in new, f"{name}: `session {op}` succeeded but the session is not in the new store"
            assert ("endedAt" in new[name]) == (op == "end"), f"{name}: its last state ({op}) was lost"
    for name in seeded:
        assert name in new, f"seeded session {name} is missing"


@pytest.mark.parametrize(("source_backend", "target_backend"), PAIRS)
def test_writers_during_a_move_lose_nothing(
    source_backend: str, target_backend: str, request: pytest.FixtureRequest, isolated_home: Path, tmp_path: Path
) -> None:
    url = pg_url(request, source_backend, target_backend)
    for round_no in range(scaled(ROUNDS)):
        work = tmp_path / f"round{round_no}"
        work.mkdir()
        if url is not None:
            _reset_pg(url)
        source, target = place(source_backend, work, url, "old"), place(target_backend, work, url, "new")
        seed(source, work, [seed_record(i) for i in range(SEEDED)])
        set_config(isolated_home, source)
        with writers_running(work, WRITERS, "w") as logs:
            wait_for_lines(logs, 2)
            moving = migrate(target, "--set-default")
            out, err = moving.communicate(timeout=300)
            assert moving.returncode == 0, err
            report = json.loads(out)
            old_after_switch = source.read()
            wait_for_lines(logs, len(logs[0].read_text().splitlines()) + 3)
        outcome = Outcome.read(logs)
        assert set(outcome.codes) <= {0, MOVED}, f"writers got exit codes {outcome.codes} (only 0 and {MOVED} allowed)"
        check_final_state(outcome, target.read(), {f"s-{i:05d}" for i in range(SEEDED)})
        assert source.read() == old_after_switch, "the old store was written after the switch"
        assert report["catchUp"]["markedMoved"] is True
        status = run_minsky("sessiondb", "migrate", "status", "--json", env=_env_for(source))
        assert json.loads(status.stdout)["movedTo"]["backend"] == target_backend


def _env_for(where: Place) -> dict[str, str]:
    env = {"MINSKY_SESSIONDB_BACKEND": where.backend}
    if where.path is not None:
        env["MINSKY_SESSIONDB_DB_PATH"] = str(where.path)
    else:
        env["MINSKY_POSTGRES_URL"] = str(where.url)
    return env


def _reset_pg(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("sessions", "minsky_schema_migrations", "minsky_metadata"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def _seeded(repo: str, count: int) -> list[dict]:  # type: ignore[type-arg]
    return [seed_record(i, repo) for i in range(count)]


TARGET_SEEDED = 2000
DELAYS = (0.3, 0.9)  # when the writers begin after the migration does: before and after its planning


@pytest.mark.parametrize("on_conflict", ["fail", "skip", "overwrite"])
@pytest.mark.parametrize("target_backend", ["json", "sqlite", "postgres"])
def test_writers_into_the_target_meet_the_conflict_rule_at_commit(
    target_backend: str, on_conflict: str, request: pytest.FixtureRequest, isolated_home: Path, tmp_path: Path
) -> None:
    url = pg_url(request, target_backend)
    for round_no in range(scaled(len(DELAYS))):
        work = tmp_path / f"round{round_no}"
        work.mkdir()
        if url is not None:
            _reset_pg(url)
        source, target = place("json", work, url, "source"), place(target_backend, work, url, "target")
        seed(source, work, _seeded("https://h/seed/repo", TARGET_SEEDED))
        set_config(isolated_home, target)  # the writers work in the target
        names = [f"s-{i:05d}" for i in reversed(range(TARGET_SEEDED))]
        moving = migrate(target, "--on-conflict", on_conflict, source=source)
        time.sleep(DELAYS[round_no % len(DELAYS)])
        with writers_running(work, WRITERS, "t", names=names, ops="s") as logs:
            err = moving.communicate(timeout=300)[1]
            wait_for_lines(logs, 2)
        outcome = Outcome.read(logs)
        assert set(outcome.codes) <= {0, CONFLICT}, f"writers got {outcome.codes}"
        final = target.read()
        mine = {name for name in outcome.started_ok}
        for name in mine:
            assert name in final, f"{name} was started in the target (exit 0) and is gone"
        seeded_content = {n: final[n]["repoUrl"] == "https://h/seed/repo" for n in final}
        if on_conflict == "overwrite":
            assert moving.returncode == 0, err
            assert all(seeded_content[f"s-{i:05d}"] for i in range(TARGET_SEEDED))
            continue
        for name in mine:
            assert not seeded_content[name], (
                f"{name}: a writer's session was replaced under --on-conflict {on_conflict}"
            )
        if on_conflict == "fail" and moving.returncode == CONFLICT:
            assert set(final) == mine, "a failed migration wrote sessions"
            continue
        assert moving.returncode == 0, err
        assert set(final) == {f"s-{i:05d}" for i in range(TARGET_SEEDED)} | mine


@pytest.mark.parametrize("target_backend", ["json", "sqlite", "postgres"])
def test_two_migrations_into_one_new_target(
    target_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = pg_url(request, target_backend)
    for round_no in range(scaled(ROUNDS + 1)):
        work = tmp_path / f"round{round_no}"
        work.mkdir()
        if url is not None:
            _reset_pg(url)
        target = place(target_backend, work, url, "target")
        sources = [place("json", work, None, side) for side in ("a", "b")]
        for side, source in zip(("a", "b"), sources, strict=True):
            seed(source, work, _seeded(f"https://h/{side}/repo", TARGET_SEEDED))
        running = [migrate(target, source=s) for s in sources]
        results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in running]
        codes = sorted(code for code, _ in results)
        assert codes == [0, CONFLICT], f"exit codes {codes}: {[err for _, err in results]}"
        winner = "ab"[[code for code, _ in results].index(0)]
        final = target.read()
        assert len(final) == TARGET_SEEDED
        assert {r["repoUrl"] for r in final.values()} == {f"https://h/{winner}/repo"}, "the loser wrote records"
