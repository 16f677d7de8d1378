"""Hostile values, driven through the CLI into every backend: a record either comes back
exactly or is rejected by name (exit 11) while the rest move on; afterwards every command
reads the store, and nothing that was in the source is lost.

Each case is the raw JSON text of one field, written into a source store by hand (so
tokens like ``1e400`` and ``-0`` reach minsky as a foreign writer left them), and checked
against that source text, never against minsky's own output alone.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from minsky.errors import RejectedRecordsError, StoreError

sys.set_int_max_str_digits(0)  # the source's 4,300-digit integers are compared exactly below

BIG = "9" * 4300  # the longest integer minsky keeps (CPython's own limit for text to int)
TOO_BIG = "9" * 4301
DEEP_OK = "[" * 200 + "]" * 200  # within the stated 254 levels
DEEP_BAD = "[" * 300 + "]" * 300

# name -> raw JSON text of a field value that minsky must keep exactly
KEPT: dict[str, bytes] = {
    "2^64": b"18446744073709551616",
    "-2^63-1": b"-9223372036854775809",
    "4300-digit-integer": BIG.encode(),
    "negative-4300-digit-integer": b"-" + BIG.encode(),
    "negative-zero-float": b"-0.0",
    "smallest-subnormal": b"5e-324",
    "largest-double": b"1.7976931348623157e308",
    "emoji-pair-escaped": b'"\\ud83d\\ude00"',
    "emoji-raw": '"😀 ünïcode"'.encode(),
    "escape-sequence-text": b'"\\u001b[31mred\\u001b[0m"',
    "c1-control-text": b'"\\u009b31m"',
    "bidi-override": b'"\\u202egnp.exe"',
    "nested-200-levels": DEEP_OK.encode(),
    "empty-containers": b'{"a": [], "b": {}, "c": ""}',
    "big-int-inside-pr": b'{"number": 18446744073709551617, "github": {"id": -18446744073709551617}}',
}
# name -> (raw JSON text of a field value that no store can hold exactly, words the reason must contain)
REFUSED: dict[str, tuple[bytes, str]] = {
    "lone-high-surrogate": (b'"\\ud83d"', "lone surrogate"),
    "lone-low-surrogate": (b'"x\\ude00y"', "lone surrogate"),
    "latin1-byte": (b'"caf\xe9"', "lone surrogate"),
    "invalid-utf8-sequence": (b'"\xc3\x28"', "lone surrogate"),
    "nan": (b"NaN", "NaN"),
    "infinity": (b"Infinity", "Infinity"),
    "minus-infinity": (b"-Infinity", "-Infinity"),
    "1e400": (b"1e400", "1e400"),
    "-1e400": (b"-1e400", "-1e400"),
    "1E+999": (b"1E+999", "1E+999"),
    "negative-zero-integer": (b"-0", "-0"),
    "4301-digit-integer": (TOO_BIG.encode(), "4,301 digits"),
    "million-digit-integer": (b"-" + b"7" * 1_000_000, "1,000,000 digits"),
    "negative-zero-in-list": (b"[1, -0, 2]", "-0"),
    "nested-300-levels": (DEEP_BAD.encode(), "nested deeper than 254"),
    "surrogate-in-key": (b'{"\\udc80": 1}', "lone surrogate"),
}

GOOD = [
    {"session": "alpha", "repoName": "a/b", "createdAt": "2025-01-20T10:30:00.000Z"},
    {"session": "Alpha", "repoName": "a/b", "taskId": "md#1"},  # differs from "alpha" in case only
    {"session": "gamma", "pullRequest": {"number": 7, "state": "open"}, "prApproved": False},
]


def store_bytes(field: bytes, *, name: bytes = b'"odd"', where: str = "top") -> bytes:
    """A Minsky JSON store (bare text): the good records around one written by hand."""
    good = [json.dumps(g).encode() for g in GOOD]
    odd = b'{"session": ' + name + b', "repoName": "x/y", "value": ' + field + b"}"
    if where == "pr":
        odd = b'{"session": ' + name + b', "pullRequest": {"number": 1, "extra": ' + field + b"}}"
    return b'{"sessions": [' + b", ".join([good[0], odd, good[1], good[2]]) + b'], "baseDir": "/tmp/b"}'


def source_records(data: bytes) -> dict[str, Any]:
    """The source's records as the standard library reads the text (exact for what is kept)."""
    return {r["session"]: r for r in json.loads(data)["sessions"]}


def same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def target_flags(backend: str, tmp_path: Path, pg: Callable[[], str]) -> tuple[list[str], dict[str, str]]:
    if backend == "json":
        path = str(tmp_path / "target.json")
        return ["--json-path", path], {"MINSKY_SESSIONDB_DB_PATH": path}
    if backend == "sqlite":
        path = str(tmp_path / "target.db")
        return ["--sqlite-path", path], {"MINSKY_SESSIONDB_DB_PATH": path}
    url = pg()
    return ["--connection-string", url], {"MINSKY_SESSIONDB_CONNECTION_STRING": url}


@pytest.fixture(params=["json", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["read here", "read in a forked child"])
def read_in(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each case read in this process and in a forked child (``minsky.forked``): the same outcome."""
    from minsky import forked

    forks: list[int] = []
    if request.param == "read here":
        monkeypatch.setenv("MINSKY_FORKED_READ_MIN", "off")
    else:
        monkeypatch.setenv("MINSKY_FORKED_READ_MIN", "0")
        real = forked.read_in_child
        monkeypatch.setattr(forked, "read_in_child", lambda *a, **k: forks.append(1) or real(*a, **k))
    yield
    assert bool(forks) == (request.param != "read here")


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> Callable[[], str]:
    return lambda: str(request.getfixturevalue("postgres_url"))


def readable_by_every_command(minsky, monkeypatch, backend: str, env: dict[str, str], expect: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", backend)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    listed = minsky("session", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert "warning" not in listed.stderr
    shown = {r["session"]: r for r in json.loads(listed.stdout)["sessions"]}
    assert set(shown) == set(expect)
    for name, record in expect.items():
        assert same(shown[name], record), name
        got = minsky("session", "get", name, "--json")
        assert got.exit_code == 0 and same(json.loads(got.stdout), record), got.output
    assert minsky("session", "list").exit_code == 0
    check = minsky("sessiondb", "check")
    assert check.exit_code == 0, check.output
    started = minsky("session", "start", "after", "--repo", "https://h/a/b")
    assert started.exit_code == 0, started.output
    ended = minsky("session", "end", "--all")
    assert ended.exit_code == 0, ended.output


@pytest.mark.parametrize("case", sorted(KEPT))
def test_a_value_that_can_be_kept_round_trips_exactly(
    minsky, monkeypatch, tmp_path: Path, backend: str, pg, case: str, read_in: None
) -> None:  # type: ignore[no-untyped-def]
    data = store_bytes(KEPT[case])
    source = tmp_path / "source.json"
    source.write_bytes(data)
    flags, env = target_flags(backend, tmp_path, pg)
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "json")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(source))
    result = minsky("sessiondb", "migrate", "to", backend, *flags, "--verify", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["counts"] == {"read": 4, "written": 4, "skipped": 0, "rejected": 0}
    assert report["verificationResult"]["ok"]
    assert source.read_bytes() == data
    monkeypatch.delenv("MINSKY_SESSIONDB_DB_PATH")
    readable_by_every_command(minsky, monkeypatch, backend, env, source_records(data))


@pytest.mark.parametrize("case", sorted(REFUSED))
@pytest.mark.parametrize("how", ["migrate", "restore"])
def test_a_value_no_store_can_hold_is_rejected_by_name_and_the_rest_move(
    minsky, monkeypatch, tmp_path: Path, backend: str, pg, case: str, how: str, read_in: None
) -> None:  # type: ignore[no-untyped-def]
    field, reason = REFUSED[case]
    data = store_bytes(field, where="pr" if case.startswith("negative-zero") else "top")
    source = tmp_path / "source.json"
    source.write_bytes(data)
    flags, env = target_flags(backend, tmp_path, pg)
    if how == "restore":
        result = minsky("sessiondb", "restore", "--backup", str(source), "--to", backend, *flags, "--verify", "--json")
    else:
        monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "json")
        monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(source))
        result = minsky("sessiondb", "migrate", "to", backend, *flags, "--verify", "--json")
    assert result.exit_code == RejectedRecordsError.exit_code, result.output
    report = json.loads(result.stdout)
    assert report["counts"] == {"read": 4, "written": 3, "skipped": 0, "rejected": 1}
    assert [r["session"] for r in report["rejected"]] == ["odd"]
    assert reason in report["rejected"][0]["reason"]
    assert report["verificationResult"]["ok"]
    assert "'odd'" in result.stderr and "Traceback" not in result.output
    assert source.read_bytes() == data
    monkeypatch.delenv("MINSKY_SESSIONDB_DB_PATH", raising=False)
    expect = {name: record for name, record in source_records(_text_safe(data)).items() if name != "odd"}
    readable_by_every_command(minsky, monkeypatch, backend, env, expect)


def _text_safe(data: bytes) -> bytes:
    """The source read the way a lenient reader would: only to get the good records to compare."""
    return data.decode("utf-8", "replace").encode()


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_json_store_holding_one_bad_record_stays_usable_and_repair_moves_it_aside(
    minsky, monkeypatch, tmp_path: Path, state_dir: Path, case: str
) -> None:  # type: ignore[no-untyped-def]
    field, reason = REFUSED[case]
    data = store_bytes(field)
    store = tmp_path / "store.json"
    store.write_bytes(data)
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "json")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(store))
    listed = minsky("session", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert {r["session"] for r in json.loads(listed.stdout)["sessions"]} == {"alpha", "Alpha", "gamma"}
    assert "skipped session 'odd'" in listed.stderr and reason in listed.stderr
    got = minsky("session", "get", "odd")
    assert got.exit_code == RejectedRecordsError.exit_code and "'odd'" in got.stderr
    check = minsky("sessiondb", "check", "--json")
    assert check.exit_code == StoreError.exit_code
    assert any("odd" in p and reason in p for p in json.loads(check.stdout)["problems"])
    # Writing other sessions keeps the bad entry as found (until repair moves it).
    assert minsky("session", "start", "delta", "--repo", "https://h/a/b").exit_code == 0
    assert minsky("session", "end", "--all").exit_code == 0
    assert minsky("session", "get", "odd").exit_code == RejectedRecordsError.exit_code
    repaired = minsky("sessiondb", "check", "--repair", "--json")
    assert repaired.exit_code == 0, repaired.output
    moved = json.loads(repaired.stdout)["quarantined"]
    assert len(moved["entries"]) == 1 and "odd" in moved["entries"][0]
    quarantined = json.loads(Path(moved["file"]).read_bytes())["entries"]
    original = data[data.index(b'{"session": "odd"') :].split(b"}, {")[0] + b"}"
    assert json.dumps(quarantined[0]["value"]) == json.dumps(json.loads(_as_escapes(original))["value"])
    listed = minsky("session", "list", "--json")
    assert listed.exit_code == 0 and "warning" not in listed.stderr
    assert {r["session"] for r in json.loads(listed.stdout)["sessions"]} == {"alpha", "Alpha", "gamma", "delta"}
    assert minsky("sessiondb", "check").exit_code == 0


def _as_escapes(raw: bytes) -> bytes:
    """Bytes that are not UTF-8 as the \\uDCxx escapes minsky keeps them as."""
    return raw.decode("utf-8", "surrogateescape").encode("ascii", "backslashreplace").replace(b"\\x", b"\\u00")


def test_a_nul_and_a_bad_value_are_both_named_in_one_migration(minsky, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "source.json"
    source.write_bytes(
        b'{"sessions": [{"session": "n", "x": "a\\u0000b"}, {"session": "f", "x": 1e999}, {"session": "ok"}]}'
    )
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(source))
    result = minsky("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(tmp_path / "t.db"), "--json")
    assert result.exit_code == RejectedRecordsError.exit_code
    report = json.loads(result.stdout)
    assert sorted(r["session"] for r in report["rejected"]) == ["f", "n"]
    assert report["counts"]["written"] == 1


def test_a_backup_nested_a_million_deep_is_a_clean_store_error(minsky, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backup = tmp_path / "deep.json"
    backup.write_bytes(b'{"sessions": [{"session": "d", "x": ' + b"[" * 10**6 + b"]" * 10**6 + b"}]}")
    result = minsky(
        "sessiondb", "restore", "--backup", str(backup), "--to", "sqlite", "--sqlite-path", str(tmp_path / "t.db")
    )
    assert result.exit_code == StoreError.exit_code, result.output
    assert "nested too deeply" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "t.db").exists()


def test_a_backup_holds_a_bad_record_as_found_and_restores_the_rest(minsky, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    data = store_bytes(b"1e400")
    source = tmp_path / "source.json"
    source.write_bytes(data)
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(source))
    target = ["--sqlite-path", str(tmp_path / "t.db")]
    result = minsky("sessiondb", "migrate", "to", "sqlite", *target, "--backup", str(tmp_path / "b"), "--json")
    assert result.exit_code == RejectedRecordsError.exit_code
    backup = Path(json.loads(result.stdout)["backup"])
    text = backup.read_bytes()
    text.decode("utf-8")  # valid UTF-8 whatever the source held
    assert b'"value":1e400' in text
    again = minsky(
        "sessiondb", "restore", "--backup", str(backup), "--to", "json", "--json-path", str(tmp_path / "r.json")
    )
    assert again.exit_code == RejectedRecordsError.exit_code, again.output
    assert "'odd'" in again.stderr
