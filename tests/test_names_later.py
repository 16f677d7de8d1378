"""A migration skips the pass over the source's names where no name can change a decision
before the copy (``--on-duplicate fail`` into an empty target, no backup, no dry run, no
plugin write hook): the copy reads the names as it goes. A name met twice, found before the
writer commits, rolls the copy back and starts again with the pass, which names the repeats:
the user sees what the pass always said, and nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from minsky import hookimpl
from minsky.codec import record_to_dict
from minsky.migrate import Endpoint, migrate
from minsky.plugins import registry
from minsky.testing.records import generated_records
from minsky.values import as_found_bytes
from minsky_backend_json.store import JsonStore
from minsky_backend_sqlite.store import SqliteStore
from test_duplicates import SOURCE, target_args
from test_forked_read import core_writes_only

__all__ = [
    "core_writes_only"
]  # a fixture: no plugin on the write hook (the audit example is installed beside the tests)


class Counted(JsonStore):
    """A JSON store that counts its names passes."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.passes = 0

    def keys(self):  # type: ignore[no-untyped-def]
        self.passes += 1
        return super().keys()


def write_source(path: Path, names: list[str]) -> list[dict[str, Any]]:
    items = [record_to_dict(r) for r in generated_records(len(names))]
    for item, name in zip(items, names, strict=True):
        item["session"] = name
    path.write_bytes(b'{"sessions": [\n' + b",\n".join(as_found_bytes(i) for i in items) + b"\n]}\n")
    return items


@pytest.mark.parametrize("forked", ["off", "0"])
@pytest.mark.parametrize("kind", ["sqlite", "json", "postgres"])
def test_a_repeat_the_copy_meets_writes_nothing_and_is_named_as_the_names_pass_names_it(  # type: ignore[no-untyped-def]
    minsky,
    state_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    forked: str,
    request: pytest.FixtureRequest,
    core_writes_only: None,
) -> None:
    monkeypatch.setenv("MINSKY_FORKED_READ_MIN", forked)
    pg = request.getfixturevalue("postgres_url") if kind == "postgres" else None
    state_dir.mkdir(parents=True)
    source = state_dir / "session-db.json"  # the configured store: the original's, 'task#064' twice
    source.write_bytes(SOURCE.read_bytes())
    args = target_args(kind, tmp_path, pg)
    result = minsky("sessiondb", "migrate", "to", *args)
    assert result.exit_code == 7, result.output
    assert "'task#064' (2 copies)" in result.stderr and "before writing anything" in result.stderr
    assert "Traceback" not in result.output
    if kind == "postgres":
        with psycopg.connect(pg) as conn:
            assert conn.execute("SELECT to_regclass('sessions')").fetchone() == (None,)
    else:
        assert not (tmp_path / ("t.db" if kind == "sqlite" else "t.json")).exists()
    assert source.read_bytes() == SOURCE.read_bytes()


def test_no_names_pass_where_no_name_can_change_a_decision(tmp_path: Path, core_writes_only: None) -> None:
    names = [f"s-{i}" for i in range(300)]
    write_source(tmp_path / "s.json", names)

    def passes(target: Path, **options: Any) -> int:
        source = Counted(tmp_path / "s.json")
        report = migrate(Endpoint("json", source), Endpoint("sqlite", SqliteStore(target)), **options)
        assert report.ok and report.read == len(names), report.to_json()
        return source.passes

    assert passes(tmp_path / "a.db") == 0
    assert passes(tmp_path / "b.db", on_duplicate="first") == 1
    assert passes(tmp_path / "c.db", backup_dir=tmp_path / "backups") == 1
    assert passes(tmp_path / "d.db", dry_run=True) == 1
    assert passes(tmp_path / "a.db", on_conflict="overwrite") == 1  # the target holds records now
    assert [r.session for r in SqliteStore(tmp_path / "a.db").read()] == names


@pytest.mark.parametrize("forked", ["off", "0"])
def test_names_sharing_a_hash_undo_the_copy_and_the_names_pass_tells_them_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forked: str, core_writes_only: None
) -> None:
    """Two names sharing a hash look like a repeat to the copy: it starts again with the pass,
    which confirms by name that none repeats, and every record is written once."""
    import minsky.names

    monkeypatch.setenv("MINSKY_FORKED_READ_MIN", forked)
    monkeypatch.setattr(minsky.names, "name_hash", len)  # names of one length share a hash
    names = [f"s-{i:03d}" for i in range(300)]
    items = write_source(tmp_path / "s.json", names)
    source = Counted(tmp_path / "s.json")
    target = tmp_path / "t.json"
    report = migrate(Endpoint("json", source), Endpoint("json", JsonStore(target)), verify=True)
    assert report.ok and report.written == report.read == len(names), report.to_json()
    assert source.passes >= 1
    written = json.loads(target.read_bytes())["sessions"]
    assert [w["session"] for w in written] == names
    assert [record_to_dict(r) for r in JsonStore(target).read()] == [
        record_to_dict(r) for r in JsonStore(tmp_path / "s.json").read()
    ]
    assert len(items) == len(written)


class Wrapper:
    """A plugin's write hook: it would see the batches of a copy that a repeat undoes."""

    @hookimpl(wrapper=True)
    def write(self, store: Any, batch: Any) -> Generator[None, Any, Any]:
        return (yield)


def test_a_plugin_on_the_write_hook_gets_the_names_pass_first(tmp_path: Path, core_writes_only: None) -> None:
    write_source(tmp_path / "s.json", [f"s-{i}" for i in range(50)])
    manager = registry().manager
    manager.register(Wrapper(), name="a-wrapper")
    try:
        source = Counted(tmp_path / "s.json")
        report = migrate(Endpoint("json", source), Endpoint("sqlite", SqliteStore(tmp_path / "t.db")))
    finally:
        manager.unregister(name="a-wrapper")
    assert report.ok and report.written == 50
    assert source.passes == 1


@pytest.mark.parametrize(("kind", "records"), [("json", 3000), ("sqlite", 3000), ("postgres", 12_000)])
def test_a_repeat_the_target_refuses_before_the_copy_ends_is_named_as_a_repeat(  # type: ignore[no-untyped-def]
    minsky,
    state_dir: Path,
    tmp_path: Path,
    kind: str,
    records: int,
    request: pytest.FixtureRequest,
    core_writes_only: None,
) -> None:
    """Adversary helper-39: the target's writer met the repeat before the copy ended (the JSON
    writer's "appears twice in one write", exit 4; PostgreSQL's unique key once a 10,000-row
    COPY ended, reported as a conflict with the target) and its refusal was the error, without
    the duplicate report. The names read so far are now checked then too."""
    pg = request.getfixturevalue("postgres_url") if kind == "postgres" else None
    state_dir.mkdir(parents=True)
    names = [f"s-{i:05d}" for i in range(records)]
    names[records * 3 // 4] = names[0]  # PostgreSQL: inside the first 10,000-row COPY, which ends before the copy
    write_source(state_dir / "session-db.json", names)
    result = minsky("sessiondb", "migrate", "to", *target_args(kind, tmp_path, pg), "--json")
    assert result.exit_code == 7, result.output
    assert "'s-00000' (2 copies)" in result.stderr and "--on-duplicate" in result.stderr
    report = json.loads(result.stdout)
    assert report["duplicates"]["names"] == ["s-00000"] and report["ok"] is False
    if kind == "postgres":
        with psycopg.connect(pg) as conn:
            assert conn.execute("SELECT to_regclass('sessions')").fetchone() == (None,)
    else:
        assert not (tmp_path / ("t.db" if kind == "sqlite" else "t.json")).exists()
