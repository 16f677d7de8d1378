"""`--set-default` never strands the user: the next command, with no flags, opens the store
that was migrated to — or the migration is refused up front, saying what to set."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

SAMPLE = [
    {"session": "a", "repoName": "r", "repoUrl": "u", "createdAt": "2025-01-01T00:00:00Z", "taskId": "md#1"},
    {"session": "b", "repoName": "r", "repoUrl": "u", "createdAt": "2025-01-02T00:00:00Z", "taskId": "md#2"},
]


@pytest.fixture
def json_store(state_dir: Path) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    store = state_dir / "session-db.json"
    store.write_text(json.dumps({"sessions": SAMPLE}))
    return store


def names(minsky_json) -> list[str]:  # type: ignore[no-untyped-def]
    return [s["session"] for s in minsky_json("session", "list")["sessions"]]


def global_config(home: Path) -> dict:  # type: ignore[type-arg]
    return tomllib.loads((home / ".config" / "minsky" / "config.toml").read_text("utf-8"))


def test_a_relative_sqlite_path_is_written_absolute_and_found_from_elsewhere(  # type: ignore[no-untyped-def]
    minsky, minsky_json, json_store: Path, isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = minsky("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", "rel/s.db", "--set-default")
    assert result.exit_code == 0, result.output
    db = Path.cwd() / "rel" / "s.db"
    assert global_config(isolated_home)["sessiondb"] == {"backend": "sqlite", "dbPath": str(db)}
    revert = "To revert: minsky config set sessiondb.backend json && minsky config unset sessiondb.dbPath"
    assert revert in result.stdout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert names(minsky_json) == ["a", "b"]
    json_store.unlink()  # the next command reads SQLite, not the old JSON file
    assert names(minsky_json) == ["a", "b"]


def test_a_json_db_path_from_the_repo_file_is_not_opened_as_sqlite(  # type: ignore[no-untyped-def]
    minsky, minsky_json, json_store: Path, state_dir: Path
) -> None:
    repo_file = Path.cwd() / ".minsky" / "config.toml"
    repo_file.parent.mkdir()
    repo_file.write_text(f'[sessiondb]\nbackend = "json"\ndbPath = "{json_store}"\n')
    before = json_store.read_bytes()
    result = minsky("sessiondb", "migrate", "to", "sqlite", "--set-default")
    assert result.exit_code == 0, result.output
    assert json_store.read_bytes() == before
    assert names(minsky_json) == ["a", "b"]
    assert (state_dir / "sessions.db").exists()  # SQLite's own default, not the JSON file's path
    json_store.unlink()
    assert names(minsky_json) == ["a", "b"]


def test_an_environment_value_that_would_win_is_refused_before_migrating(  # type: ignore[no-untyped-def]
    minsky, json_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(json_store))
    target = tmp_path / "t.db"
    result = minsky("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(target), "--set-default")
    assert result.exit_code == 2
    assert "--set-default would not stick: sessiondb.dbPath comes from env MINSKY_SESSIONDB_DB_PATH" in result.stderr
    assert not target.exists()
    assert not (isolated_home / ".config" / "minsky" / "config.toml").exists()


@pytest.mark.postgres
def test_a_flag_only_connection_string_without_password_is_kept(  # type: ignore[no-untyped-def]
    minsky, minsky_json, json_store: Path, postgres_url: str, isolated_home: Path
) -> None:
    result = minsky("sessiondb", "migrate", "to", "postgres", "--connection-string", postgres_url, "--set-default")
    assert result.exit_code == 0, result.output
    assert global_config(isolated_home)["sessiondb"]["connectionString"] == postgres_url
    json_store.unlink()
    assert names(minsky_json) == ["a", "b"]


def with_password(conninfo: str, password: str) -> str:
    return f"{conninfo} password={password}"  # conftest's URL is libpq key=value


@pytest.mark.postgres
def test_a_flag_only_password_becomes_a_variable_the_user_is_told_to_set(  # type: ignore[no-untyped-def]
    minsky, minsky_json, json_store: Path, postgres_url: str, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test server trusts loopback, so any password connects: what matters is where it is kept.
    url = with_password(postgres_url, "s3cr3t-pw")
    result = minsky("sessiondb", "migrate", "to", "postgres", "--connection-string", url, "--set-default")
    assert result.exit_code == 0, result.output
    assert "set MINSKY_POSTGRES_PASSWORD" in result.stderr
    config_text = (isolated_home / ".config" / "minsky" / "config.toml").read_text("utf-8")
    assert "s3cr" not in config_text and "s3cr" not in result.output
    assert global_config(isolated_home)["sessiondb"]["connectionString"] == with_password(
        postgres_url, "${MINSKY_POSTGRES_PASSWORD}"
    )
    unset = minsky("session", "list")
    assert unset.exit_code == 3 and "MINSKY_POSTGRES_PASSWORD is not set" in unset.stderr
    monkeypatch.setenv("MINSKY_POSTGRES_PASSWORD", "s3cr3t-pw")
    assert names(minsky_json) == ["a", "b"]


@pytest.mark.postgres
def test_a_password_variable_set_to_another_value_is_refused_up_front(  # type: ignore[no-untyped-def]
    minsky, json_store: Path, postgres_url: str, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINSKY_POSTGRES_PASSWORD", "an-old-one")
    url = with_password(postgres_url, "the-new-one")
    result = minsky("sessiondb", "migrate", "to", "postgres", "--connection-string", url, "--set-default")
    assert result.exit_code == 2 and "MINSKY_POSTGRES_PASSWORD is set, but not to the password" in result.stderr
    assert "the-new-one" not in result.output and "an-old-one" not in result.output
    assert not (isolated_home / ".config" / "minsky" / "config.toml").exists()
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT to_regclass('sessions')").fetchone() == (None,)


def test_init_set_default_writes_the_location_too(minsky, minsky_json, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "fresh.db"
    result = minsky("sessiondb", "init", "--backend", "sqlite", "--sqlite-path", str(db), "--set-default")
    assert result.exit_code == 0, result.output
    minsky("session", "start", "c", "--task", "3", "--repo", "https://example.org/r.git")
    assert names(minsky_json) == ["c"] and db.exists()
    assert os.environ.get("MINSKY_SESSIONDB_DB_PATH") is None


def test_a_copy_with_a_rejected_record_says_the_default_stays(  # type: ignore[no-untyped-def]
    minsky, state_dir: Path, tmp_path: Path, isolated_home: Path
) -> None:
    """adversary helper-35: the switch waits for a complete, verified copy; a rejected record
    stopped it (exit 11) without a word about the default."""
    state_dir.mkdir(parents=True, exist_ok=True)
    store = state_dir / "session-db.json"
    store.write_text(json.dumps({"sessions": [*SAMPLE, {**SAMPLE[0], "session": "c", "repoName": "caf\udce9"}]}))
    result = minsky("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(tmp_path / "t.db"), "--set-default")
    assert result.exit_code == 11, result.output
    assert "sessiondb.backend stays json: --set-default switches only after a complete, verified copy" in result.stderr
    assert not (isolated_home / ".config" / "minsky" / "config.toml").exists()
