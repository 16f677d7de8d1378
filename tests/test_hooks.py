"""The operation hooks: every command reaches them, plugins wrap, answer first, or veto.

The test plugins are registered on the plugin manager (``pm.register``), as a
user's installed plugin would be, without installing a distribution.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minsky import hookimpl
from minsky.codec import record_to_dict
from minsky.errors import PolicyError
from minsky.plugins import registry
from minsky.testing.records import generated_records

REPO_URL = "https://github.com/acme/widgets.git"


class Spy:
    """Wraps every operation hook and notes each call: (hook, detail)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def hooks(self) -> list[str]:
        return [hook for hook, _ in self.calls]

    @hookimpl(wrapper=True)
    def read(self, store: Any, where: Any, name: str | None) -> Any:
        self.calls.append(("read", "name" if name else "where" if where else "all"))
        return (yield)

    @hookimpl(wrapper=True)
    def write(self, store: Any, batch: Any) -> Any:
        self.calls.append(("write", f"{batch.kind}:{len(batch.records) or len(batch.names)}"))
        return (yield)

    @hookimpl(wrapper=True)
    def backup(self, backend: str, backup_format: str) -> Any:
        self.calls.append(("backup", f"{backend}:{backup_format}"))
        return (yield)

    @hookimpl(wrapper=True)
    def restore(self, path: Path, backend: str) -> Any:
        self.calls.append(("restore", backend))
        return (yield)

    @hookimpl(wrapper=True)
    def verify(self, store: Any) -> Any:
        self.calls.append(("verify", store.location))
        return (yield)


def plugged(plugin: object) -> Iterator[Any]:
    manager = registry().manager
    manager.register(plugin)
    try:
        yield plugin
    finally:
        manager.unregister(plugin)


@pytest.fixture
def spy() -> Iterator[Spy]:
    yield from plugged(Spy())


def write_json_store(path: Path, count: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"sessions": [record_to_dict(r) for r in generated_records(count)]}))


def test_session_commands_reach_read_and_write(minsky_json, spy: Spy, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    minsky_json("session", "start", "one", "--repo", REPO_URL)
    minsky_json("session", "start", "two", "--repo", REPO_URL)
    assert spy.calls == [("write", "insert:1")] * 2
    spy.calls.clear()
    minsky_json("session", "list", "--active")
    minsky_json("session", "get", "one")
    assert spy.calls == [("read", "where"), ("read", "name")]
    spy.calls.clear()
    minsky_json("session", "end", "one")
    assert spy.calls == [("write", "update:1")]
    spy.calls.clear()
    minsky_json("session", "end", "--all")
    assert spy.calls == [("read", "where"), ("write", "update:1")]
    spy.calls.clear()
    minsky_json("session", "delete", "two")
    assert spy.calls == [("write", "delete:1")]
    spy.calls.clear()
    write_json_store(state_dir / "session-db.json", 2)  # created in 2025
    minsky_json("session", "clean", "--older-than", "1d", "--include-active")
    assert spy.calls == [("read", "all"), ("write", "delete:1"), ("write", "delete:1")]


def test_migration_reads_once_and_writes_per_batch(minsky_json, spy: Spy, state_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_json_store(state_dir / "session-db.json", 2500)
    report = minsky_json(
        "sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(tmp_path / "t.db"), "--backup", str(tmp_path)
    )
    assert report["counts"]["written"] == 2500
    # the backup reads the source once, the migration once; 2,500 records are three batches
    assert spy.calls == [
        ("backup", "json:json"),
        ("read", "all"),
        ("read", "all"),
        ("write", "upsert:1000"),
        ("write", "upsert:1000"),
        ("write", "upsert:500"),
    ]


def test_export_restore_import_and_verify_reach_their_hooks(
    minsky_json, spy: Spy, state_dir: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    write_json_store(state_dir / "session-db.json", 3)
    exported = minsky_json("sessiondb", "export", "--output", str(tmp_path / "b"))
    assert spy.hooks() == ["backup", "read"] and exported["count"] == 3
    spy.calls.clear()
    db = tmp_path / "r.db"
    minsky_json("sessiondb", "restore", "--backup", str(tmp_path / "b"), "--to", "sqlite", "--sqlite-path", str(db))
    assert spy.calls == [("restore", "sqlite"), ("read", "all"), ("write", "upsert:3")]
    spy.calls.clear()
    (state_dir / "session-db.json").unlink()
    minsky_json("sessiondb", "import", exported["backup"])
    assert spy.hooks() == ["restore", "read", "write"]
    spy.calls.clear()
    assert minsky_json("sessiondb", "verify")["ok"] is True
    assert spy.calls == [("verify", str(state_dir / "session-db.json"))]


class NeedsTask:
    """A policy: no session without a task. Vetoes by raising a minsky error."""

    @hookimpl(wrapper=True)
    def write(self, store: Any, batch: Any) -> Any:
        for record in batch.records:
            if not record.task_id:
                raise PolicyError(f"session {record.session!r} has no task (policy of the needs-task plugin)")
        return (yield)


def test_a_wrapper_vetoes_a_write_with_one_line_and_nothing_written(
    minsky, minsky_json, state_dir: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    write_json_store(state_dir / "session-db.json", 1500)
    target = tmp_path / "t.db"
    for _ in plugged(NeedsTask()):
        refused = minsky("session", "start", "untasked", "--repo", REPO_URL)
        assert refused.exit_code == 12
        assert refused.stderr == "minsky: error: session 'untasked' has no task (policy of the needs-task plugin)\n"
        assert minsky_json("session", "start", "--task", "7", "--repo", REPO_URL)["session"]["taskId"] == "md#7"
        # generated records have tasks; one without is in the second batch: the whole migration is refused
        store = json.loads((state_dir / "session-db.json").read_text())
        store["sessions"][1200].pop("taskId")
        (state_dir / "session-db.json").write_text(json.dumps(store))
        moved = minsky("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(target))
        assert moved.exit_code == 12 and "gen-001200" in moved.stderr
    assert not target.exists(), "a vetoed migration leaves no target behind"
    assert [s["session"] for s in minsky_json("session", "list", "--task", "7")["sessions"]] == ["task-md#7"]


class Answers:
    """Answers ``read`` first (a native read): core's implementation is not called."""

    @hookimpl(tryfirst=True)
    def read(self, store: Any, where: Any, name: str | None) -> Any:
        return iter(generated_records(2, "native")) if name is None and where is None else None


def test_a_plugin_answers_before_core(minsky_json, state_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_json_store(state_dir / "session-db.json", 5)
    for _ in plugged(Answers()):
        report = minsky_json("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(tmp_path / "t.db"))
    assert report["counts"]["read"] == 2


def test_native_backup_of_a_backend_without_one_is_a_usage_error(minsky, minsky_json, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    minsky_json("session", "start", "one", "--repo", REPO_URL)
    result = minsky("sessiondb", "export", "--output", str(tmp_path / "b"), "--backup-format", "native")
    assert result.exit_code == 2
    assert result.stderr.startswith("minsky: error: the json backend has no native backup format\n")
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())


def test_plugins_list_shows_the_hooks_of_each_plugin(minsky, minsky_json) -> None:  # type: ignore[no-untyped-def]
    listed = minsky_json("plugins", "list")
    builtin = listed["builtins"][0]
    assert builtin["name"] == "minsky.builtin"
    assert builtin["hooks"] == ["backup", "read", "restore", "verify", "write"]
    text = minsky("plugins", "list").stdout
    assert "sqlite\t" in text and "hooks: register_backends" in text
    assert "minsky.builtin\t(built-in, runs last)\thooks: backup, read, restore, verify, write" in text


class NoRestores:
    """Vetoes backups into one directory and every restore into SQLite."""

    def __init__(self, forbidden: Path) -> None:
        self.forbidden = forbidden

    @hookimpl(wrapper=True)
    def backup(self, stem: Path) -> Any:
        if stem.parent == self.forbidden:
            raise PolicyError(f"backups may not be written to {self.forbidden}")
        return (yield)

    @hookimpl(wrapper=True)
    def restore(self, backend: str) -> Any:
        if backend == "sqlite":
            raise PolicyError("restores into sqlite are not allowed here")
        return (yield)


def test_backups_and_restores_can_be_vetoed(minsky, minsky_json, state_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_json_store(state_dir / "session-db.json", 3)
    made = minsky_json("sessiondb", "export", "--output", str(tmp_path / "ok"))
    target = tmp_path / "t.db"
    for _ in plugged(NoRestores(tmp_path / "no")):
        refused = minsky("sessiondb", "export", "--output", str(tmp_path / "no"))
        assert (refused.exit_code, refused.stderr) == (
            12,
            f"minsky: error: backups may not be written to {tmp_path / 'no'}\n",
        )
        assert list((tmp_path / "no").iterdir()) == []
        refused = minsky(
            "sessiondb", "restore", "--backup", made["backup"], "--to", "sqlite", "--sqlite-path", str(target)
        )
        assert (refused.exit_code, refused.stderr) == (12, "minsky: error: restores into sqlite are not allowed here\n")
    assert not target.exists()
