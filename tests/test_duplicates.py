"""A session name held twice (real stores of the original did): never dropped silently.

The original's `session-db.json` holds 'task#064' twice. Into a keyed target a migration or
restore stops before writing anything unless the user chooses `--on-duplicate`; the choice is
reported, accounting holds, and verification compares against every copy the source holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import SHARED
from minsky.duplicates import DuplicatePlan, KeyScan
from minsky.errors import ConflictError
from minsky.model import SessionRecord

ORIGINAL = SHARED / "fixtures" / "original"
SOURCE = ORIGINAL / "json" / "session-db.json"


def lines(records: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for r in records)


def expected(name: str) -> list[str]:
    return (ORIGINAL / "expected" / name).read_text("utf-8").splitlines()


@pytest.fixture
def store(state_dir: Path) -> Path:
    state_dir.mkdir(parents=True)
    path = state_dir / "session-db.json"
    path.write_bytes(SOURCE.read_bytes())
    return path


def target_args(kind: str, tmp_path: Path, postgres: str | None) -> tuple[str, ...]:
    if kind == "sqlite":
        return ("sqlite", "--sqlite-path", str(tmp_path / "t.db"))
    if kind == "json":
        return ("json", "--json-path", str(tmp_path / "t.json"))
    assert postgres is not None
    return ("postgres", "--connection-string", postgres)


def read_target(minsky_json, kind: str, tmp_path: Path, postgres: str | None) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    if kind == "json":
        return list(json.loads((tmp_path / "t.json").read_text("utf-8"))["sessions"])
    back = tmp_path / f"back-{kind}.json"
    args = target_args(kind, tmp_path, postgres)
    minsky_json("sessiondb", "migrate", "to", "json", "--from", *args, "--json-path", str(back))
    return list(json.loads(back.read_text("utf-8"))["sessions"])


@pytest.fixture(params=["sqlite", "json", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")
    return str(request.param)


@pytest.fixture
def pg(kind: str, request: pytest.FixtureRequest) -> str | None:
    return str(request.getfixturevalue("postgres_url")) if kind == "postgres" else None


def test_default_stops_before_writing_and_names_them(minsky, store: Path, tmp_path: Path, kind: str, pg) -> None:  # type: ignore[no-untyped-def]
    before = store.read_bytes()
    args = target_args(kind, tmp_path, pg)
    result = minsky("sessiondb", "migrate", "to", *args, "--backup", str(tmp_path / "backups"), "--verify")
    assert result.exit_code == 7, result.output
    assert "'task#064' (2 copies)" in result.stderr and "before writing anything" in result.stderr
    assert "--on-duplicate first|last|rename" in result.stderr
    assert not (tmp_path / "backups").exists(), "nothing is written, not even the backup"
    if kind == "postgres":
        import psycopg

        with psycopg.connect(pg) as conn:
            assert conn.execute("SELECT to_regclass('sessions')").fetchone() == (None,)
    else:
        assert not (tmp_path / ("t.db" if kind == "sqlite" else "t.json")).exists()
    assert store.read_bytes() == before


def test_json_report_of_a_stop(minsky, store: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for extra in ((), ("--dry-run",)):
        result = minsky(
            "sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(tmp_path / "t.db"), *extra, "--json"
        )
        assert result.exit_code == 7
        report = json.loads(result.stdout)
        assert report["ok"] is False and "task#064" in report["stopped"]
        assert report["duplicates"] == {
            "policy": "fail",
            "names": ["task#064"],
            "copies": 2,
            "skipped": [],
            "renamed": [],
        }
        assert report["counts"]["written"] == 0
    assert not (tmp_path / "t.db").exists()


@pytest.mark.parametrize("policy", ["first", "last", "rename"])
def test_each_policy_is_exact_accounted_and_verified(
    minsky_json, store: Path, tmp_path: Path, kind: str, pg, policy: str
) -> None:  # type: ignore[no-untyped-def]
    args = target_args(kind, tmp_path, pg)
    report = minsky_json("sessiondb", "migrate", "to", *args, "--on-duplicate", policy, "--verify")
    counts = report["counts"]
    assert counts["read"] == counts["written"] + counts["skipped"] + counts["rejected"] == 9
    assert report["verificationResult"]["ok"] is True
    everything = [json.loads(line) for line in expected("json.jsonl")]
    first, second = [r for r in json.loads(SOURCE.read_bytes()) if r["session"] == "task#064"]
    got = read_target(minsky_json, kind, tmp_path, pg)
    dup = report["duplicates"]
    assert dup["policy"] == policy and dup["names"] == ["task#064"]
    if policy == "first":
        assert lines(got) == expected("json-unique.jsonl")
        assert [(s["session"], s["copy"]) for s in dup["skipped"]] == [("task#064", 2)]
    elif policy == "last":
        assert lines(got) == lines([r for r in everything if r != first])
        assert [(s["session"], s["copy"]) for s in dup["skipped"]] == [("task#064", 1)]
    else:
        assert counts["written"] == 9 and dup["renamed"] == [{"session": "task#064", "copy": 2, "as": "task#064~2"}]
        assert lines(got) == lines([r for r in everything if r != second] + [{**second, "session": "task#064~2"}])


def test_rename_avoids_names_already_taken(minsky_json, state_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    state_dir.mkdir(parents=True)
    records = [{"session": "a", "n": 1}, {"session": "a~2", "n": 2}, {"session": "a", "n": 3}, {"session": "a", "n": 4}]
    (state_dir / "session-db.json").write_text(json.dumps(records))
    db = tmp_path / "t.db"
    report = minsky_json("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(db), "--on-duplicate", "rename")
    assert [(r["copy"], r["as"]) for r in report["duplicates"]["renamed"]] == [(2, "a~3"), (3, "a~4")]
    got = read_target(minsky_json, "sqlite", tmp_path, None)
    assert sorted((r["session"], r["n"]) for r in got) == [("a", 1), ("a~2", 2), ("a~3", 3), ("a~4", 4)]


def test_duplicates_and_conflicts_together_keep_the_accounting(minsky_json, store: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "t.db"
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps([{"session": "task#064", "branch": "already-there"}]))
    minsky_json(
        "sessiondb", "migrate", "to", "sqlite", "--from", "json", "--json-path", str(seed), "--sqlite-path", str(db)
    )
    report = minsky_json(
        "sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(db), "--on-duplicate", "first",
        "--on-conflict", "skip", "--verify",
    )  # fmt: skip
    assert report["counts"] == {"read": 9, "written": 7, "skipped": 2, "rejected": 0}
    # One name the target holds, though the source gives it twice (adversary helper-35, F3).
    assert report["conflicts"]["examples"] == ["task#064"] and report["conflicts"]["count"] == 1
    assert report["verificationResult"]["ok"] is True
    kept = [r for r in read_target(minsky_json, "sqlite", tmp_path, None) if r["session"] == "task#064"]
    assert kept == [{"session": "task#064", "branch": "already-there"}]


def test_restore_and_import_of_a_backup_with_duplicates(minsky, minsky_json, store: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backup = minsky_json("sessiondb", "export", "--output", str(tmp_path / "exp"))["backup"]
    db = str(tmp_path / "t.db")
    result = minsky("sessiondb", "restore", "--backup", backup, "--to", "sqlite", "--sqlite-path", db)
    assert result.exit_code == 7 and "'task#064' (2 copies)" in result.stderr
    assert not Path(db).exists()
    report = minsky_json(
        "sessiondb", "restore", "--backup", backup, "--to", "sqlite", "--sqlite-path", db, "--on-duplicate", "first"
    )
    assert report["counts"] == {"read": 9, "written": 8, "skipped": 1, "rejected": 0}
    assert lines(read_target(minsky_json, "sqlite", tmp_path, None)) == expected("json-unique.jsonl")
    # `import` into the configured (JSON) store: the same choice.
    store.write_text("[]")
    assert minsky("sessiondb", "import", backup).exit_code == 7
    assert store.read_text() == "[]"
    minsky_json("sessiondb", "import", backup, "--on-duplicate", "last")
    got = json.loads(store.read_bytes())
    assert isinstance(got, list) and len(got) == 8
    assert next(r for r in got if r["session"] == "task#064")["branch"] == "task#064-retry"


def test_a_lost_copy_fails_verification(minsky, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """An engine that let both copies through into a keyed target is caught: by the writer
    under ``--on-conflict fail`` (the second copy is a conflict, nothing is written), and by
    verification under ``overwrite`` (one copy overwrote the other)."""
    monkeypatch.setattr(DuplicatePlan, "decide", lambda self, record: record)
    args = ("sqlite", "--sqlite-path", str(tmp_path / "t.db"), "--on-duplicate", "rename", "--verify", "--json")
    result = minsky("sessiondb", "migrate", "to", *args)
    assert result.exit_code == 7 and "'task#064'" in result.output
    assert not (tmp_path / "t.db").exists()
    result = minsky("sessiondb", "migrate", "to", *args, "--on-conflict", "overwrite")
    assert result.exit_code == 6
    verification = json.loads(result.stdout)["verificationResult"]
    assert verification["ok"] is False and verification["missing"] == ["task#064 (copy 2 of 2)"]


def test_repair_moves_the_later_copy_aside_then_migration_needs_no_choice(
    minsky, minsky_json, store: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    result = minsky("sessiondb", "verify", "--repair")
    assert result.exit_code == 0, result.output
    assert "sessions[8] ('task#064', a repeated name)" in result.stdout
    assert isinstance(json.loads(store.read_bytes()), list), "repair keeps the original's bare array"
    quarantined = next((store.parent / "quarantine").iterdir())
    assert "task#064-retry" in quarantined.read_text("utf-8")
    report = minsky_json("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(tmp_path / "t.db"), "--verify")
    assert report["duplicates"] is None and report["counts"]["written"] == 8


def test_a_case_insensitive_target_key() -> None:
    names = ["Alpha", "beta", "alpha", "ALPHA", "alpha~2"]
    scan = KeyScan.of(names, {"Beta"}, str.casefold)
    assert scan.copies == {"alpha": 3} and scan.spelled == {"alpha": ["Alpha", "alpha", "ALPHA"]}
    assert scan.conflicts == ["beta"]
    plan = DuplicatePlan("rename", scan, str.casefold)
    out = [plan.decide(SessionRecord(session=n)) for n in names]
    assert [r.session for r in out if r] == ["Alpha", "beta", "alpha~3", "ALPHA~4", "alpha~2"]
    replay = plan.cursor()
    assert [r.session for n in names if (r := replay.decide(SessionRecord(session=n)))] == [
        "Alpha", "beta", "alpha~3", "ALPHA~4", "alpha~2",
    ]  # fmt: skip


@pytest.mark.parametrize("policy", ["first", "last", "rename"])
def test_set_default_catch_up_leaves_the_chosen_copies_alone(
    minsky_json, store: Path, tmp_path: Path, policy: str
) -> None:  # type: ignore[no-untyped-def]
    """The late-changes step compares the source with what the copy read: every copy of a repeated
    name was read, so none of them looks changed, and none is copied over the one the rule kept."""
    db = tmp_path / "t.db"
    args = ("sqlite", "--sqlite-path", str(db), "--on-duplicate", policy, "--set-default")
    report = minsky_json("sessiondb", "migrate", "to", *args)
    assert report["catchUp"]["written"] == 0 and report["catchUp"]["deleted"] == 0
    assert report["verificationResult"]["ok"] is True
    got = read_target(minsky_json, "sqlite", tmp_path, None)
    assert len(got) == (9 if policy == "rename" else 8)
    kept = next(r for r in got if r["session"] == "task#064")
    assert kept["branch"] == ("task#064-retry" if policy == "last" else "task#064")


@pytest.mark.parametrize("shared", [lambda name: 7, len])
def test_names_sharing_a_hash_are_told_apart_by_name(monkeypatch: pytest.MonkeyPatch, shared) -> None:  # type: ignore[no-untyped-def]
    """The names pass keeps hashes, not names: distinct names that share one (forced here for all
    of them, or by length) are neither repeated names nor "a second time" while streaming."""
    import minsky.names

    monkeypatch.setattr(minsky.names, "name_hash", shared)
    names = ["ab", "cd", "ef", "cd", "xyz"]
    reads = []

    def read() -> list[str]:
        reads.append(1)
        return names

    scan = KeyScan.of(read, set())
    assert scan.copies == {"cd": 2} and scan.spelled == {"cd": ["cd"]} and len(reads) == 2
    plan = DuplicatePlan("first", scan)
    kept = [r.session for n in names if (r := plan.decide(SessionRecord(session=n)))]
    assert kept == ["ab", "cd", "ef", "xyz"]
    with pytest.raises(ConflictError, match="'ef' appeared a second time"):
        plan.decide(SessionRecord(session="ef"))
    assert "ab" in scan.taken and "cd" in scan.taken


def test_the_names_pass_reads_the_names_once_when_none_repeats() -> None:
    reads = []

    def read() -> list[str]:
        reads.append(1)
        return [f"s{i}" for i in range(5000)]

    scan = KeyScan.of(read, set())
    assert scan.copies == {} and len(reads) == 1
    assert all(f"s{i}" in scan.taken for i in range(5000))


@pytest.mark.parametrize(("policy", "branch"), [("last", "good"), ("first", None)])
def test_a_rejected_copy_is_still_a_copy(  # type: ignore[no-untyped-def]
    minsky, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str, branch: str | None
) -> None:
    """adversary helper-35 (F2): a table with no key gives 'X' twice, the first copy with a byte
    that is not UTF-8. The rule counts the copies as the source orders them, the rejected one
    included: under 'last' the good second copy was skipped as 'copy 1' (and named as the
    skipped one). Nor is the rejected copy a change in the source when it is read again."""
    import sqlite3

    from minsky import catchup

    db = tmp_path / "keyless.db"
    conn = sqlite3.connect(db)
    with conn:
        conn.executescript(
            "CREATE TABLE sessions(session TEXT, repoName TEXT NOT NULL, repoUrl TEXT, createdAt TEXT NOT NULL, "
            "branch TEXT);"
            "INSERT INTO sessions VALUES('X', 'r', CAST(X'61FF62' AS TEXT), '2025-01-01T00:00:00.000Z', 'bad');"
            "INSERT INTO sessions VALUES('Z', 'r', 'u', '2025-01-01T00:00:00.000Z', NULL);"
            "INSERT INTO sessions VALUES('X', 'r', 'u', '2025-01-01T00:00:00.000Z', 'good');"
        )
    conn.close()
    tokens = iter(range(1_000_000))  # as if another program wrote the source meanwhile: it is read again
    monkeypatch.setattr(catchup, "change_token", lambda store: ("another", next(tokens)))
    target = tmp_path / "t.json"
    args = ("--from", "sqlite", "--sqlite-path", str(db), "--json-path", str(target), "--on-duplicate", policy)
    result = minsky("sessiondb", "migrate", "to", "json", *args, "--verify", "--json")
    assert result.exit_code == 11, result.output
    report = json.loads(result.stdout)
    assert [r["session"] for r in report["rejected"]] == ["X"]
    assert report["changedInSource"] == 0
    assert report["counts"] == {"read": 3, "written": 2 if branch else 1, "skipped": 0 if branch else 1, "rejected": 1}
    written = {s["session"]: s.get("branch") for s in json.loads(target.read_text())["sessions"]}
    assert written == ({"Z": None, "X": "good"} if branch else {"Z": None})
