"""Configuration: files, precedence, ${VAR}, editing, masking, sources."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from minsky.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def global_cfg(isolated_home: Path) -> Path:
    return isolated_home / ".config" / "minsky" / "config.toml"


def test_repo_overrides_global_key_by_key(minsky, minsky_json, global_cfg: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write(global_cfg, '[sessiondb]\nbackend = "sqlite"\nbaseDir = "/g/base"\n')
    repo = tmp_path / "project"
    write(repo / ".minsky" / "config.toml", '[sessiondb]\nbackend = "json"\n')
    monkeypatch.chdir(write(repo / "sub" / "deeper" / "f", "").parent)
    assert minsky_json("config", "show")["settings"]["sessiondb.backend"]["value"] == "sqlite"  # not trusted yet
    assert minsky("config", "trust").exit_code == 0
    shown = minsky_json("config", "show")["settings"]
    assert shown["sessiondb.backend"] == {
        "value": "json",
        "source": f"repo {repo / '.minsky' / 'config.toml'}",
    }
    assert shown["sessiondb.baseDir"] == {"value": "/g/base", "source": f"global {global_cfg}"}


def test_environment_beats_files(minsky_json, global_cfg: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write(global_cfg, '[sessiondb]\nbackend = "sqlite"\n[sessiondb.sqliteOptions]\njournalMode = "DELETE"\n')
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "json")
    monkeypatch.setenv("MINSKY_SESSIONDB_SQLITE_OPTIONS_JOURNAL_MODE", "WAL")
    got = minsky_json("config", "get", "sessiondb.backend")
    assert got == {"key": "sessiondb.backend", "value": "json", "source": "env MINSKY_SESSIONDB_BACKEND"}
    assert minsky_json("config", "get", "sessiondb.sqliteOptions.journalMode")["value"] == "WAL"


def test_variables_expand_in_secrets_only_and_unset_ones_are_named(minsky, global_cfg: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write(global_cfg, '[sessiondb]\nbackend = "postgres"\nconnectionString = "host=127.0.0.1 password=${PG_PW}"\n')
    result = minsky("session", "list")
    assert result.exit_code == ConfigError.exit_code
    assert "PG_PW" in result.stderr and "sessiondb.connectionString" in result.stderr
    monkeypatch.setenv("PG_PW", "from-the-variable")
    shown = minsky("config", "get", "sessiondb.connectionString").stdout
    assert "PG_PW" in shown and "from-the-variable" not in shown
    # Anywhere else a variable would land in file names and plain output: refused, naming key and file.
    write(global_cfg, '[sessiondb]\nbackend = "json"\ndbPath = "${STORE_DIR}/s.json"\n')
    monkeypatch.setenv("STORE_DIR", "/tmp/somewhere")
    result = minsky("session", "list")
    assert result.exit_code == ConfigError.exit_code
    assert "sessiondb.dbPath" in result.stderr and str(global_cfg) in result.stderr
    assert "/tmp/somewhere" not in result.output


def test_invalid_toml_names_the_file_and_line(minsky, global_cfg: Path) -> None:  # type: ignore[no-untyped-def]
    write(global_cfg, "[sessiondb\nbackend = 1\n")
    result = minsky("session", "list")
    assert result.exit_code == ConfigError.exit_code
    assert str(global_cfg) in result.stderr and "line 1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_backend_is_a_clear_error(minsky, global_cfg: Path) -> None:  # type: ignore[no-untyped-def]
    write(global_cfg, '[sessiondb]\nbackend = "mongo"\n')
    result = minsky("session", "list")
    assert result.exit_code == 10
    assert "unknown backend 'mongo'" in result.stderr and "json" in result.stderr


def test_set_keeps_comments_and_layout(minsky, global_cfg: Path) -> None:  # type: ignore[no-untyped-def]
    write(global_cfg, '# my settings\n[sessiondb]\n# which store\nbackend = "json"  # default\n')
    assert minsky("config", "set", "sessiondb.sqliteOptions.cacheSize", "10000").exit_code == 0
    assert minsky("config", "set", "sessiondb.backend", "sqlite").exit_code == 0
    text = global_cfg.read_text()
    assert "# my settings" in text and "# which store" in text and "# default" in text
    assert 'backend = "sqlite"' in text and "cacheSize = 10000" in text
    assert stat.S_IMODE(global_cfg.stat().st_mode) == 0o600


def test_set_repo_and_unset(minsky, minsky_json, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert minsky("config", "set", "--repo", "sessiondb.backend", "sqlite").exit_code == 0
    repo_file = Path.cwd() / ".minsky" / "config.toml"
    assert repo_file.exists()
    assert minsky_json("config", "get", "sessiondb.backend")["source"].startswith("repo ")
    assert minsky("config", "unset", "--repo", "sessiondb.backend").exit_code == 0
    assert minsky_json("config", "get", "sessiondb.backend")["source"] == "default"


def test_set_rejects_unknown_keys(minsky) -> None:  # type: ignore[no-untyped-def]
    result = minsky("config", "set", "sessiondb.backnd", "sqlite")
    assert result.exit_code == ConfigError.exit_code and "unknown config key" in result.stderr


def test_secrets_are_masked_and_loose_files_warned(minsky, global_cfg: Path) -> None:  # type: ignore[no-untyped-def]
    write(global_cfg, '[sessiondb]\nconnectionString = "postgresql://u:CanaryPw77@h/db"\n')
    os.chmod(global_cfg, 0o644)
    for args in (
        ["config", "show"],
        ["config", "show", "--json"],
        ["config", "get", "sessiondb.connectionString"],
    ):
        result = minsky(*args)
        assert "CanaryPw77" not in result.output
        assert "postgresql://u:****@h/db" in result.stdout
    assert "readable by others" in minsky("config", "show").stderr
    os.chmod(global_cfg, 0o600)
    assert "readable by others" not in minsky("config", "show").stderr


def test_postgres_url_env_alias(minsky_json, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MINSKY_POSTGRES_URL", "postgresql://u:Canary2@h/db")
    got = minsky_json("config", "get", "sessiondb.connectionString")
    assert got["source"] == "env MINSKY_POSTGRES_URL" and "Canary2" not in json.dumps(got)


def test_config_selects_the_store(minsky, global_cfg: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "custom" / "s.db"
    write(global_cfg, f'[sessiondb]\nbackend = "sqlite"\ndbPath = "{db}"\n')
    assert minsky("session", "start", "x", "--repo", "https://h/a/b").exit_code == 0
    assert db.exists() and db.read_bytes().startswith(b"SQLite format 3")
