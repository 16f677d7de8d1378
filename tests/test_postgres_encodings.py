"""A PostgreSQL database that is not UTF-8: minsky's text crosses as UTF-8 whatever the server's
encoding. Under SQL_ASCII every character comes back exactly; under LATIN1 what LATIN1 holds
comes back exactly, and a character it lacks is one line naming the session, exit 4, nothing
written — never an internal error."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

NAMES = {
    "SQL_ASCII": ["café", "a€", "😀 emoji", "plain"],
    "LATIN1": ["café", "naïve ß", "plain"],
    # The server's own EUC_JP conversion turns U+00A6 into U+FFE4: minsky never asks it to convert.
    "EUC_JP": ["bar¦", "日本語", "plain"],
}


@contextlib.contextmanager
def _database(server_url: str, encoding: str) -> Iterator[str]:
    name = f"{conninfo_to_dict(server_url)['dbname']}_{encoding.lower()}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(
            f"CREATE DATABASE \"{name}\" ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
        )
    try:
        yield make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["SQL_ASCII", "LATIN1", "EUC_JP"])
def encoded_url(request: pytest.FixtureRequest, postgres_server_url: str) -> Iterator[tuple[str, str]]:
    with _database(postgres_server_url, str(request.param)) as url:
        yield str(request.param), url


@pytest.fixture
def latin1_url(postgres_server_url: str) -> Iterator[str]:
    with _database(postgres_server_url, "LATIN1") as url:
        yield url


def _store(path: Path, names: list[str]) -> Path:
    sessions = [
        {"session": n, "repoName": f"repo {n}", "repoUrl": "u", "createdAt": "2025-01-01T00:00:00.000Z", "note": n}
        for n in names
    ]
    path.write_text(json.dumps({"sessions": sessions}, ensure_ascii=False), "utf-8")
    return path


def _rows(url: str) -> int | None:
    with psycopg.connect(url) as conn:
        if not conn.execute("SELECT to_regclass('sessions') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
            return None
        return int(conn.execute("SELECT count(*) FROM sessions").fetchone()[0])  # type: ignore[index]


def test_what_the_database_encoding_holds_round_trips_exactly(
    encoded_url: tuple[str, str], minsky: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoding, url = encoded_url
    source = _store(tmp_path / "in.json", NAMES[encoding])
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "json")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(source))
    result = minsky("sessiondb", "migrate", "to", "postgres", "--connection-string", url, "--verify")
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "postgres")
    monkeypatch.setenv("MINSKY_POSTGRES_URL", url)
    back = tmp_path / "back.json"
    result = minsky("sessiondb", "migrate", "to", "json", "--json-path", str(back), "--verify")
    assert result.exit_code == 0, result.output
    expected = json.loads(source.read_text("utf-8"))["sessions"]
    assert sorted(json.loads(back.read_text("utf-8"))["sessions"], key=lambda s: s["session"]) == sorted(
        expected, key=lambda s: s["session"]
    )


@pytest.mark.parametrize("many", [False, True], ids=["a few records", "a forked read"])
def test_a_character_latin1_lacks_is_one_line_and_nothing_written(
    latin1_url: str, many: bool, minsky: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = latin1_url
    monkeypatch.setenv("MINSKY_FORKED_READ_MIN", "0" if many else "off")
    names = [f"s{i}" for i in range(40)] + ["a€"]
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "json")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(_store(tmp_path / "in.json", names)))
    result = minsky("sessiondb", "migrate", "to", "postgres", "--connection-string", url)
    assert result.exit_code == 4, result.output
    assert "'€' in 'a€' has no equivalent in the database's encoding LATIN1" in result.output
    assert "ENCODING 'UTF8'" in result.output and "Traceback" not in result.output
    assert _rows(url) in (None, 0)
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "postgres")
    monkeypatch.setenv("MINSKY_POSTGRES_URL", url)
    result = minsky("session", "start", "b€", "--repo", "https://github.com/a/b")
    assert result.exit_code == 4, result.output
    assert "'€' in 'b€'" in result.output and "Traceback" not in result.output


def test_a_sessions_table_dropped_by_hand_is_created_again(
    postgres_url: str, minsky: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version table says the schema is current, the sessions table is gone: found by an
    adversary (helper-26) as an internal AssertionError on the next write."""
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "json")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(_store(tmp_path / "in.json", ["one", "two"])))
    for _attempt in range(2):
        result = minsky("sessiondb", "migrate", "to", "postgres", "--connection-string", postgres_url, "--verify")
        assert result.exit_code == 0, result.output
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 2  # type: ignore[index]
            conn.execute("DROP TABLE sessions")


def test_a_byte_another_program_wrote_into_sql_ascii_spoils_its_record_only(
    postgres_server_url: str, minsky: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQL_ASCII stores the bytes it is sent; a Latin-1 name written by another program made
    the server refuse every read of the table to a UTF-8 client (exit 4, "a value cannot be
    stored"). Read as SQL_ASCII and decoded here, the stray byte is a lone surrogate: that
    record is refused by name, the others read, and `check --repair` moves it aside."""
    with _database(postgres_server_url, "SQL_ASCII") as url:
        monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "json")
        monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(_store(tmp_path / "in.json", ["café", "two", "three"])))
        assert minsky("sessiondb", "migrate", "to", "postgres", "--connection-string", url).exit_code == 0
        with psycopg.connect(url, autocommit=True) as conn:  # as another program would: SQL_ASCII, raw bytes
            conn.execute("SET client_encoding TO 'SQL_ASCII'")
            conn.execute("UPDATE sessions SET repo_name = E'caf\\xe9' WHERE session = 'two'")
        monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "postgres")
        monkeypatch.setenv("MINSKY_POSTGRES_URL", url)
        listed = minsky("session", "list", "--json")
        assert listed.exit_code == 0, listed.output
        assert sorted(r["session"] for r in json.loads(listed.stdout)["sessions"]) == ["café", "three"]
        assert "skipped session 'two'" in listed.stderr and "U+DCE9" in listed.stderr
        moved = minsky("sessiondb", "migrate", "to", "json", "--json-path", str(tmp_path / "out.json"))
        assert moved.exit_code == 11 and "rejected 'two'" in moved.output, moved.output
        assert minsky("sessiondb", "check").exit_code == 4
        repaired = minsky("sessiondb", "check", "--repair", "--json")
        assert repaired.exit_code == 0, repaired.output
        quarantined = json.loads(Path(json.loads(repaired.stdout)["quarantined"]["file"]).read_text())
        assert quarantined["entries"][0]["repo_name"] == "caf\udce9"
        assert minsky("sessiondb", "check").exit_code == 0
        assert sorted(r["session"] for r in json.loads(minsky("session", "list", "--json").stdout)["sessions"]) == [
            "café",
            "three",
        ]


def test_a_stray_byte_in_a_sql_ascii_name_is_refused_by_name_and_repaired(
    postgres_server_url: str, minsky: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adversary helper-32: a name read with a stray byte could not be sent back (`check --repair`,
    `session end --all`, `delete` exited 4 claiming nothing was written), and a stray byte in a
    jsonb column was an internal error on every read."""
    with _database(postgres_server_url, "SQL_ASCII") as url:
        monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "json")
        monkeypatch.setenv(
            "MINSKY_SESSIONDB_DB_PATH", str(_store(tmp_path / "in.json", ["café", "two", "three", "four"]))
        )
        assert minsky("sessiondb", "migrate", "to", "postgres", "--connection-string", url).exit_code == 0
        with psycopg.connect(url, autocommit=True) as conn:  # as another program would: SQL_ASCII, raw bytes
            conn.execute("SET client_encoding TO 'SQL_ASCII'")
            conn.execute(
                "UPDATE sessions SET session = E'bad\\xe9', record = replace(record, '\"two\"', E'\"bad\\xe9\"') "
                "WHERE session = 'two'"
            )
        monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "postgres")
        monkeypatch.setenv("MINSKY_POSTGRES_URL", url)
        ended = minsky("session", "end", "--all")
        assert ended.exit_code == 0 and "bad\\udce9" in ended.output, ended.output
        listed = minsky("session", "list", "--json")
        assert listed.exit_code == 0, listed.output
        assert sorted(r["session"] for r in json.loads(listed.stdout)["sessions"]) == ["café", "four", "three"]
        assert "skipped session 'bad\\udce9'" in listed.stderr
        repaired = minsky("sessiondb", "check", "--repair", "--json")
        assert repaired.exit_code == 0, repaired.output
        quarantined = json.loads(Path(json.loads(repaired.stdout)["quarantined"]["file"]).read_text())
        assert [e["session"] for e in quarantined["entries"]] == ["bad\udce9"]
        assert minsky("sessiondb", "check").exit_code == 0
        # A stray byte in a jsonb cell: no internal error (a strict decode in psycopg's loader was one).
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET client_encoding TO 'SQL_ASCII'")
            conn.execute("ALTER TABLE sessions ALTER COLUMN pr_state TYPE jsonb USING pr_state::jsonb")
            conn.execute("UPDATE sessions SET pr_state = E'{\"branchName\": \"x\\xe9\"}' WHERE session = 'four'")
        # A cell whose digest cannot be taken is the store's error, one line (as a cell of any
        # other unrepresentable value is: ``original.row_reader``), not an internal one.
        listed = minsky("session", "list")
        assert listed.exit_code == 4 and "internal error" not in listed.output, listed.output
        assert "U+DCE9 is a lone surrogate" in listed.stderr and len(listed.stderr.splitlines()) == 1
