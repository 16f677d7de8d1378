"""A corpus of corrupt stores: each is one line naming the file, exit 4, no traceback, file untouched."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import SAMPLE_STORE
from minsky.errors import StoreError


def _corpus() -> dict[str, tuple[str, bytes]]:
    sample = SAMPLE_STORE.read_bytes() if SAMPLE_STORE.exists() else b'{"sessions": [{"session": "a"}]}' * 1
    corpus: dict[str, tuple[str, bytes]] = {}
    for offset in range(0, len(sample), max(1, len(sample) // 180)):
        cut = sample[:offset]
        try:
            json.loads(cut)
        except ValueError:
            corpus[f"truncated-at-{offset}"] = ("json", cut)
    corpus.update(
        {
            "empty": ("json", b""),
            "whitespace": ("json", b"  \n\t "),
            "bom-only": ("json", b"\xef\xbb\xbf"),
            # A byte that is not UTF-8 inside a record spoils that record only: test_hostile_values.py.
            "invalid-utf8-outside-strings": ("json", b'{"sessions": [{"session": "a"}]\xc3\x28}'),
            "latin1-key-syntax": ("json", b'{"sessions": [{caf\xe9: 1}]}'),
            "two-documents": ("json", sample + sample),
            "list-of-non-records": ("json", b"[1, 2]"),  # a bare array holds records
            "top-level-string": ("json", b'"sessions"'),
            "top-level-number": ("json", b"42"),
            "top-level-null": ("json", b"null"),
            "sessions-object": ("json", b'{"sessions": {}}'),
            "sessions-string": ("json", b'{"sessions": "[]"}'),
            "record-is-list": ("json", b'{"sessions": [[1, 2]]}'),
            "record-without-name": ("json", b'{"sessions": [{"repoName": "r"}]}'),
            "record-name-number": ("json", b'{"sessions": [{"session": 7}]}'),
            "record-name-empty": ("json", b'{"sessions": [{"session": ""}]}'),
            "nan": ("json", b'{"sessions": [{"session": "a", "x": NaN}]}'[:-3] + b"}]"),
            "trailing-comma": ("json", b'{"sessions": [{"session": "a"},]}'),
            "deep-nesting": ("json", b'{"sessions": [' + b"[" * 100000 + b"]" * 100000 + b"]}"),
            "nul-bytes": ("json", b"\x00" * 64),
            "sqlite-file-as-json": ("json", b"SQLite format 3\x00" + b"\x00" * 100),
            "sqlite-garbage": ("sqlite", b"garbage that is not a database"),
            "sqlite-truncated-header": ("sqlite", b"SQLite format 3\x00\x10\x00"),
            "json-as-sqlite": ("sqlite", sample),
        }
    )
    return corpus


CORPUS = _corpus()


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 200


def _damaged_sqlite(path: Path) -> bytes:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE sessions (session TEXT PRIMARY KEY, repo_name TEXT, record TEXT)")
    conn.executemany("INSERT INTO sessions VALUES (?, ?, ?)", [(f"s{i}", "r" * 200, None) for i in range(2000)])
    conn.commit()
    conn.close()
    data = bytearray(path.read_bytes())
    for page in (2, 5, 9):  # damage b-tree page headers: SQLite reports "malformed"
        data[4096 * page : 4096 * page + 12] = b"\xa5" * 12
    return bytes(data)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corrupt_store_fails_cleanly_and_stays_byte_identical(minsky, tmp_path: Path, monkeypatch, name: str) -> None:  # type: ignore[no-untyped-def]
    backend, content = CORPUS[name]
    path = tmp_path / ("store.json" if backend == "json" else "store.db")
    path.write_bytes(content)
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", backend)
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(path))
    for args in (
        ["session", "list"],
        ["session", "start", "x", "--repo", "https://h/a/b"],
        [
            "sessiondb",
            "migrate",
            "to",
            "sqlite" if backend == "json" else "json",
            "--sqlite-path" if backend == "json" else "--json-path",
            str(tmp_path / "target"),
        ],
    ):
        result = minsky(*args)
        assert result.exit_code == StoreError.exit_code, (args, result.output)
        lines = [line for line in result.stderr.splitlines() if not line.startswith("minsky: hint:")]
        assert len(lines) == 1 and str(path) in lines[0], result.stderr
        assert "Traceback" not in result.output
        assert path.read_bytes() == content
    assert not (tmp_path / "target").exists()


def test_sqlite_with_a_damaged_page(minsky, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "damaged.db"
    content = _damaged_sqlite(path)
    path.write_bytes(content)
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "sqlite")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(path))
    check = minsky("sessiondb", "check")
    assert check.exit_code == StoreError.exit_code and "Traceback" not in check.output
    assert "integrity_check" in check.output
    listed = minsky("session", "list")
    assert listed.exit_code == StoreError.exit_code and "Traceback" not in listed.output
    assert str(path) in listed.stderr and "malformed" in listed.stderr
    assert path.read_bytes() == content


@pytest.fixture
def read_only_dir(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A directory nobody may write to: a read-only tmpfs as root (root ignores modes), else mode 0500."""
    import os
    import subprocess

    path = tmp_path / "read-only"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o500)
        yield path
        path.chmod(0o700)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"running as root and cannot mount a read-only tmpfs: {mounted.stderr.decode().strip()}")
    yield path
    subprocess.run(["umount", str(path)], check=False)


def test_read_only_target_directory(minsky, state_dir: Path, read_only_dir: Path, shared_sample: Path) -> None:  # type: ignore[no-untyped-def]
    state_dir.mkdir(parents=True)
    source = state_dir / "session-db.json"
    source.write_bytes(shared_sample.read_bytes())
    for target in (
        ["sqlite", "--sqlite-path", str(read_only_dir / "s.db")],
        ["json", "--json-path", str(read_only_dir / "s.json")],
        ["sqlite", "--sqlite-path", str(read_only_dir / "sub" / "s.db")],
    ):
        result = minsky("sessiondb", "migrate", "to", *target, "--backup", str(read_only_dir / "b"))
        assert result.exit_code == StoreError.exit_code, result.output
        assert str(read_only_dir) in result.stderr and "Traceback" not in result.output
        assert "read-only" in result.stderr or "permission denied" in result.stderr
        assert len([line for line in result.stderr.splitlines() if not line.startswith("minsky: hint")]) == 1
    assert source.read_bytes() == shared_sample.read_bytes()
    assert list(read_only_dir.iterdir()) == []
