"""The JSON stores the original Minsky left on disk, read and written through the CLI.

Checked against `shared/fixtures/original/` (the files as the original wrote them and the
records a lossless reader must yield), and against stores generated here in the original's
layout (a bare array, `JSON.stringify(value, null, 2)`: 2-space indent, no final newline).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SHARED, run_minsky

ORIGINAL = SHARED / "fixtures" / "original"
FORMS = {"session-db.json": "json.jsonl", "sessions.json": "json-unique.jsonl"}


def canonical_lines(records: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for r in records)


def expected(name: str) -> list[str]:
    return (ORIGINAL / "expected" / name).read_text("utf-8").splitlines()


def as_original(value: Any) -> bytes:
    """What the original's `JSON.stringify(value, null, 2)` wrote."""
    return json.dumps(value, ensure_ascii=False, indent=2).encode("utf-8")


@pytest.fixture
def original_store(state_dir: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """The named fixture file, copied to where a user of the original has it, and configured."""
    source = ORIGINAL / "json" / request.param
    if not source.exists():
        pytest.fail(f"shared fixtures not found at {ORIGINAL}: set MINSKY_SHARED_DIR")
    state_dir.mkdir(parents=True, exist_ok=True)
    store = state_dir / request.param
    store.write_bytes(source.read_bytes())
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(store))
    return store


@pytest.mark.parametrize("original_store", sorted(FORMS), indirect=True)
def test_every_command_reads_the_original_forms_exactly(
    minsky, minsky_json, original_store: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    before = original_store.read_bytes()
    want = expected(FORMS[original_store.name])
    listed = minsky_json("session", "list")["sessions"]
    assert canonical_lines(listed) == want
    assert canonical_lines(minsky_json("session", "list", "--detailed")["sessions"]) == want
    # `get` answers as the original's lookup did: the first record of that name.
    for name in {r["session"] for r in listed}:
        first = next(r for r in listed if r["session"] == name)
        assert minsky_json("session", "get", name) == first
    exported = minsky_json("sessiondb", "export", "--output", str(tmp_path / "export"))
    backup = json.loads(Path(exported["backup"]).read_text("utf-8"))
    assert canonical_lines(backup["sessions"]) == want, "an export keeps every record, duplicates included"
    check = minsky("sessiondb", "check", "--json")
    report = json.loads(check.stdout)
    assert report["checked"] == len(want)
    if original_store.name == "session-db.json":  # the original left 'task#064' in it twice
        assert check.exit_code == 4
        assert report["problems"] == [
            "sessions[8]: duplicate session name 'task#064' (first at sessions[1]; --repair moves the later "
            "copy aside, a migration chooses with --on-duplicate)"
        ]
    else:
        assert check.exit_code == 0 and report["ok"] is True
    target = tmp_path / "migrated.json"
    moved = minsky_json(
        "sessiondb", "migrate", "to", "json", "--json-path", str(target), "--on-duplicate", "rename", "--verify"
    )
    assert moved["counts"] == {"read": len(want), "written": len(want), "skipped": 0, "rejected": 0}
    renamed = [{**r, "session": "task#064"} if r["session"] == "task#064~2" else r for r in _sessions(target)]
    assert canonical_lines(renamed) == want
    assert original_store.read_bytes() == before, "reading must never change the user's store"


def _sessions(path: Path) -> list[dict[str, Any]]:
    doc = json.loads(path.read_text("utf-8"))
    return list(doc if isinstance(doc, list) else doc["sessions"])


@pytest.mark.parametrize("original_store", ["session-db.json"], indirect=True)
def test_writing_keeps_a_bare_array_and_every_untouched_byte(minsky, original_store: Path) -> None:  # type: ignore[no-untyped-def]
    records = json.loads(original_store.read_bytes())
    assert minsky("session", "start", "new-one", "--repo", "https://github.com/acme/widgets.git").exit_code == 0
    after = original_store.read_bytes()
    doc = json.loads(after)
    assert isinstance(doc, list), "the original reads a bare array only: it must stay one"
    assert doc[:-1] == records and doc[-1]["session"] == "new-one"
    # The original's layout (2-space indent, no final newline): every old record keeps its bytes.
    assert after == as_original(doc)
    assert after.startswith(as_original(records)[:-2])
    # Ending a repeated name ends the copy `get` shows (the original's first match); the other stays.
    assert minsky("session", "end", "task#064").exit_code == 0
    doc = json.loads(original_store.read_bytes())
    copies = [r for r in doc if r["session"] == "task#064"]
    assert "endedAt" in copies[0] and copies[1] == records[8]
    assert original_store.read_bytes() == as_original(doc)


def test_object_form_keeps_base_dir_unknown_keys_and_their_order(minsky, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    state_dir.mkdir(parents=True)
    store = state_dir / "session-db.json"
    doc = {
        "x-team": {"owner": "ops", "tags": ["a", "ü"]},
        "sessions": [{"session": "one", "repoName": "r", "createdAt": "2025-01-01T00:00:00.000Z"}],
        "baseDir": "/srv/minsky",
        "version": 3,
    }
    store.write_bytes(as_original(doc))
    assert minsky("session", "start", "two", "--repo", "https://example.org/r.git").exit_code == 0
    after = json.loads(store.read_bytes())
    assert list(after) == ["x-team", "sessions", "baseDir", "version"]
    assert {k: v for k, v in after.items() if k != "sessions"} == {k: v for k, v in doc.items() if k != "sessions"}
    assert after["sessions"][0] == doc["sessions"][0] and after["sessions"][1]["session"] == "two"
    assert not store.read_bytes().endswith(b"\n"), "the file's own final-newline style is kept"


@pytest.mark.parametrize("existing", [[], [{"session": "kept", "repoName": "x"}]])
def test_migration_into_a_bare_array_keeps_it_bare(minsky_json, tmp_path: Path, existing: list[Any]) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "source.json"
    source.write_bytes((ORIGINAL / "json" / "sessions.json").read_bytes())
    target = tmp_path / "target.json"
    target.write_bytes(as_original(existing))
    db = tmp_path / "between.db"
    minsky_json(
        "sessiondb", "migrate", "to", "sqlite", "--from", "json", "--json-path", str(source), "--sqlite-path", str(db)
    )
    from_db = ("--from", "sqlite", "--sqlite-path", str(db))
    report = minsky_json("sessiondb", "migrate", "to", "json", *from_db, "--json-path", str(target), "--verify")
    assert report["verificationResult"]["ok"] is True
    doc = json.loads(target.read_bytes())
    assert isinstance(doc, list)
    assert canonical_lines(doc) == sorted(canonical_lines(existing) + expected("json-unique.jsonl"))
    assert target.read_bytes() == as_original(doc)


def test_a_backup_wrapper_is_not_mistaken_for_an_empty_store(minsky, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    wrapper = ORIGINAL / "json" / "session-backup-2025-06-23T16-46-12-144Z.json"
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(wrapper))
    result = minsky("session", "list")
    assert result.exit_code == 4
    assert "without a 'sessions' list is not a session store" in result.stderr
    assert f"minsky sessiondb restore --backup {wrapper}" in result.stderr


# -- generated stores: awkward values in the original's layout ---------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), _text, st.just(""), st.floats(-1e9, 1e9))
_value = st.recursive(
    _scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3), max_leaves=8
)
_keys = st.sampled_from(
    ["repoName", "repoUrl", "createdAt", "taskId", "branch", "prApproved", "prState", "pullRequest", "remote",
     "backendType", "name", "created", "x-future", "ünïcödé", "", "lastActivityAt", "commitCount"]
)  # fmt: skip
_record = st.dictionaries(_keys, _value, max_size=8)
_names = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="/\\"), min_size=1, max_size=10
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    bodies=st.lists(_record, min_size=1, max_size=6),
    names=st.lists(_names, min_size=6, max_size=6, unique=True),
    seed=st.integers(0, 9),
)
def test_generated_original_stores_read_and_move_exactly(minsky_json, tmp_path_factory, bodies, names, seed) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    records = []
    for body, name in zip(bodies, names, strict=False):
        items = [*body.items(), ("session", name)]
        rng.shuffle(items)  # the original's key order varied from record to record
        records.append(dict(items))
    work = tmp_path_factory.mktemp("gen")
    store, db, back = work / "session-db.json", str(work / "s.db"), str(work / "back.json")
    store.write_bytes(as_original(records))
    before = store.read_bytes()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MINSKY_SESSIONDB_DB_PATH", str(store))
        assert minsky_json("session", "list")["sessions"] == records  # same records, same key order
    to_sqlite = ("--from", "json", "--json-path", str(store), "--sqlite-path", db)
    minsky_json("sessiondb", "migrate", "to", "sqlite", *to_sqlite, "--verify")
    minsky_json(
        "sessiondb", "migrate", "to", "json", "--from", "sqlite", "--sqlite-path", db, "--json-path", back, "--verify"
    )
    assert canonical_lines(_sessions(Path(back))) == canonical_lines(records)
    assert store.read_bytes() == before


def test_generated_store_lists_exactly_in_a_real_process(tmp_path: Path) -> None:
    records = [
        {"taskId": "#1", "session": "ünï-1", "prApproved": False, "repoName": "", "remote": None},
        {"session": "two", "x-future": {"nested": [1, 2.5, None, ""]}, "createdAt": "2025-06-01T00:00:00+02:00"},
        {"session": "two", "branch": "again"},
        {"session": "big", "commitCount": 2**64 + 1, "lastCommitMessage": 'it\'s "quoted"\n-- and 🚀'},
    ]
    store = tmp_path / "session-db.json"
    store.write_bytes(as_original(records))
    result = run_minsky("session", "list", "--json", env={"MINSKY_SESSIONDB_DB_PATH": str(store)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sessions"] == records
    assert store.read_bytes() == as_original(records)
