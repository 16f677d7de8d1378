"""SIGKILL a ``migrate to --set-default`` at each step of its catch-up (issue 12): no session is
lost, writers are not held up by what it left, and rerunning the command converges; afterwards
a writer with the old config is refused naming the new store, and moving back clears the mark.

The migration runs as a real process through ``tests/stepper.py``, which stops it at a named
step; the test changes the source there (a session started, one ended, one deleted, as writers
would) and kills it at the step under test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import run_minsky
from live import MOVED, Place, place, seed_record, set_config, write_json_store

pytestmark = pytest.mark.slow
STEPS = ["before-lock", "delta-copy", "after-mark", "before-config"]
STEPPER = Path(__file__).with_name("stepper.py")
SEEDED = 300


def seeded(source: Place, work: Path) -> None:
    records = [seed_record(i) for i in range(SEEDED)]
    if source.backend == "json":
        assert source.path is not None
        write_json_store(source.path, records)
        return
    staging = work / "seed.json"
    write_json_store(staging, records)
    done = run_minsky(
        *["sessiondb", "migrate", "to", source.backend, "--from", "json", "--json-path", str(staging)],
        *source.flags(),
    )
    assert done.returncode == 0, done.stderr


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            ended = process.returncode
            raise AssertionError(f"the migration ended (exit {ended}) before {path.name}: {process.communicate()[1]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the migration did not reach {path.name} within {timeout}s")
        time.sleep(0.02)


def names_and_ends(env: dict[str, str] | None = None) -> dict[str, bool]:
    listed = run_minsky("session", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    return {s["session"]: "endedAt" in s for s in json.loads(listed.stdout)["sessions"]}


def old_config(where: Place) -> dict[str, str]:
    assert where.path is not None
    return {"MINSKY_SESSIONDB_BACKEND": where.backend, "MINSKY_SESSIONDB_DB_PATH": str(where.path)}


def migrate_command(target: Place, *extra: str) -> list[str]:
    return ["sessiondb", "migrate", "to", target.backend, *target.flags(), "--set-default", "--json", *extra]


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize(("source_backend", "target_backend"), [("json", "sqlite"), ("sqlite", "json")])
def test_a_migration_killed_at_each_step_loses_nothing_and_a_rerun_converges(
    source_backend: str, target_backend: str, step: str, isolated_home: Path, tmp_path: Path
) -> None:
    source, target = place(source_backend, tmp_path, None, "old"), place(target_backend, tmp_path, None, "new")
    seeded(source, tmp_path)
    set_config(isolated_home, source)
    steps = tmp_path / "steps"
    steps.mkdir()
    for earlier in STEPS[1 : STEPS.index(step)]:
        (steps / f"{earlier}.go").touch()
    moving = subprocess.Popen(
        [sys.executable, str(STEPPER), str(steps), "--", *migrate_command(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(steps / "before-lock", moving)
        # Writers change the source after the migration's snapshot: new, updated, deleted.
        late = (["start", "late-1", "--repo", "https://h/late/repo"], ["end", "s-00001"], ["delete", "s-00002"])
        for command in late:
            assert run_minsky("session", *command).returncode == 0
        if step != "before-lock":
            (steps / "before-lock.go").touch()
            wait_for(steps / step, moving)
    finally:
        moving.send_signal(signal.SIGKILL)
        moving.communicate()
    expected = {f"s-{i:05d}": i == 1 for i in range(SEEDED) if i != 2} | {"late-1": False}
    marked = source_backend == "json" and step in ("after-mark", "before-config")  # a marker file: not transactional

    # Nothing lost: the configured store (still the old one: the config was not written) holds every session.
    assert names_and_ends() == expected
    # A writer is not held up by the claim or lock the killed process left behind.
    after = run_minsky("session", "start", "after-kill", "--repo", "https://h/late/repo", timeout=60)
    if marked:  # the marked store refuses, naming where its sessions went
        assert after.returncode == MOVED and str(target.path) in after.stderr, after.stderr
    else:
        assert after.returncode == 0, after.stderr
        expected["after-kill"] = False

    # Rerunning the command (overwrite: the first run's copy is in the target) converges.
    rerun = run_minsky(*migrate_command(target, "--on-conflict", "overwrite"), timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["catchUp"]["markedMoved"] is True
    now = names_and_ends()
    assert {name: now.get(name) for name in expected} == expected, "a session is missing or not in its last state"
    # Known limit: a session deleted from the source after the killed run copied it, and before
    # that run's last step committed, is still in the target (a rerun adds and replaces, it does
    # not prune: the target may hold sessions of its own). docs/cli.md says so.
    resurrected = set(now) - set(expected)
    assert resurrected <= ({"s-00002"} if step in ("before-lock", "delta-copy") else set()), resurrected

    # A writer still configured for the old store is refused, naming the new one; nothing written.
    before = source.read()
    refused = run_minsky("session", "start", "stale-config", "--repo", "https://h/a/b", env=old_config(source))
    assert refused.returncode == MOVED, refused.stderr
    assert str(target.path) in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert source.read() == before

    # Moving back clears the mark: the old store takes writes again.
    back = run_minsky(
        *["sessiondb", "migrate", "to", source.backend, *source.flags(), "--on-conflict", "overwrite", "--set-default"]
    )
    assert back.returncode == 0, back.stderr
    status: dict[str, Any] = json.loads(run_minsky("sessiondb", "migrate", "status", "--json").stdout)
    assert not status.get("movedTo"), status
    assert run_minsky("session", "start", "back-1", "--repo", "https://h/a/b").returncode == 0
    assert "back-1" in source.read()


def test_a_claim_left_by_a_killed_migration_holds_no_writer(isolated_home: Path, tmp_path: Path) -> None:
    """``<store>.lock.wanted`` naming a live process that holds no claim (a pid reused after the
    migration was killed, here this test's own): writers go ahead at once instead of giving way
    for as long as a migration may wait."""
    source = place("json", tmp_path, None, "old")
    seeded(source, tmp_path)
    set_config(isolated_home, source)
    Path(f"{source.path}.lock.wanted").write_text(str(os.getpid()), "ascii")
    started = run_minsky("session", "start", "w-1", "--repo", "https://h/a/b", timeout=60)
    assert started.returncode == 0, started.stderr
    assert "w-1" in source.read()
