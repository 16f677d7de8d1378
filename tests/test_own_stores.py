"""minsky writes only minsky stores, and writes through symlinks to their targets (issue 14)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from conftest import Invoke
from minsky.atomic import json_looks_like_store

REPO = ("--repo", "https://example.invalid/r.git")


def use(monkeypatch: pytest.MonkeyPatch, backend: str, path: Path) -> None:
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", backend)
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(path))


@pytest.mark.parametrize(
    "content",
    [
        '{"auths": {"registry.example": {"auth": "c2VjcmV0"}}}',
        '{"credsStore": "desktop", "nested": {"sessions": []}}',
        "{}",
        '"sessions"',
        "42",
    ],
)
def test_a_json_file_that_is_no_store_is_never_written(  # type: ignore[no-untyped-def]
    minsky: Invoke, tmp_path: Path, monkeypatch, content: str
) -> None:
    foreign = tmp_path / "config.json"
    foreign.write_text(content)
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "sqlite")
    assert minsky("session", "start", "src", *REPO).exit_code == 0  # a source to migrate from
    use(monkeypatch, "json", foreign)
    for argv in (["session", "start", "s", *REPO], ["sessiondb", "migrate", "to", "json", "--from", "sqlite"]):
        result = minsky(*argv)
        assert result.exit_code == 4, result.output
        assert str(foreign) in result.stderr and result.stderr.startswith("minsky: error:")
    assert foreign.read_text() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "home", "work"]


@pytest.mark.parametrize("content", ["[]", '{"sessions": []}', '{"baseDir": "/b", "sessions": []}'])
def test_json_stores_in_either_form_are_written(  # type: ignore[no-untyped-def]
    minsky: Invoke, tmp_path: Path, monkeypatch, content: str
) -> None:
    store = tmp_path / "store.json"
    store.write_text(content)
    use(monkeypatch, "json", store)
    result = minsky("session", "start", "s", *REPO)
    assert result.exit_code == 0, result.output
    written = json.loads(store.read_text())
    sessions = written if content == "[]" else written["sessions"]  # each form kept as it was
    assert isinstance(sessions, list) and [item["session"] for item in sessions] == ["s"]


def test_the_shape_check_reads_only_up_to_sessions() -> None:
    assert json_looks_like_store('{"sessions": [' + "{" * 50)  # the rest is the reader's business
    assert json_looks_like_store('{"baseDir": "x\\"y", "sessions": []}')
    assert not json_looks_like_store('{"a": {"sessions": []}, "b": 1}')
    assert json_looks_like_store("not json at all")  # the store's own reader names that


def test_an_sqlite_file_of_another_program_is_never_written(  # type: ignore[no-untyped-def]
    minsky: Invoke, tmp_path: Path, monkeypatch
) -> None:
    foreign = tmp_path / "places.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    conn.execute("INSERT INTO moz_places (url) VALUES ('https://example.invalid')")
    conn.commit()
    conn.close()
    before = foreign.read_bytes()
    assert minsky("session", "start", "src", *REPO).exit_code == 0  # a source to migrate from
    use(monkeypatch, "sqlite", foreign)
    for argv in (["session", "start", "s", *REPO], ["sessiondb", "migrate", "to", "sqlite", "--from", "json"]):
        result = minsky(*argv)
        assert result.exit_code == 4, result.output
        assert str(foreign) in result.stderr and "moz_places" in result.stderr
    assert foreign.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "places.sqlite", "work"]


def test_an_empty_sqlite_file_is_a_new_store(minsky: Invoke, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "new.db"
    sqlite3.connect(empty).close()
    use(monkeypatch, "sqlite", empty)
    assert minsky("session", "start", "s", *REPO).exit_code == 0


@pytest.mark.parametrize(("backend", "name"), [("json", "store.json"), ("sqlite", "store.db")])
def test_a_symlinked_store_is_written_at_its_target(  # type: ignore[no-untyped-def]
    minsky: Invoke, tmp_path: Path, monkeypatch, backend: str, name: str
) -> None:
    real_dir = tmp_path / "synced"
    real_dir.mkdir()
    target = real_dir / name
    link = tmp_path / "dotfiles" / name
    link.parent.mkdir()
    link.symlink_to(target)  # dangling until the first write
    use(monkeypatch, backend, link)
    for i in range(2):
        assert minsky("session", "start", f"s{i}", *REPO).exit_code == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.is_file() and not target.is_symlink()
    assert [r["session"] for r in json.loads(minsky("session", "list", "--json").stdout)["sessions"]] == ["s0", "s1"]
    assert not [p for p in link.parent.iterdir() if p != link]  # no temp or lock left beside the link
    status = json.loads(minsky("sessiondb", "migrate", "status", "--json").stdout)
    assert status["symlinks"] == [{"link": str(link), "target": str(target)}]
    text = minsky("sessiondb", "migrate", "status").stdout
    assert f"{link} -> {target}" in text


def test_config_set_keeps_a_symlinked_config_file(minsky: Invoke, isolated_home: Path, tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles" / "minsky.toml"
    dotfiles.parent.mkdir()
    dotfiles.write_text("# from my dotfiles\n")
    config = isolated_home / ".config" / "minsky" / "config.toml"
    config.parent.mkdir(parents=True)
    config.symlink_to(dotfiles)
    assert minsky("config", "set", "sessiondb.backend", "sqlite").exit_code == 0
    assert minsky("config", "unset", "sessiondb.backend").exit_code == 0
    assert minsky("config", "set", "sessiondb.sqliteOptions.cacheSize", "100").exit_code == 0
    assert config.is_symlink() and os.readlink(config) == str(dotfiles)
    assert "# from my dotfiles" in dotfiles.read_text() and "cacheSize = 100" in dotfiles.read_text()
    assert sorted(p.name for p in config.parent.iterdir()) == ["config.toml"]
