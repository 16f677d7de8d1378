"""The audit plugin, installed as a user installs it (by its entry point, never
``pm.register``), driven through the real ``minsky`` command in fresh processes.

Every expectation is computed from the source — the records as the test wrote
them, or as the store file holds them — never from what the plugin logged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from minsky.codec import record_digest, record_from_dict, record_to_dict
from minsky.testing.records import generated_records

# Installed (nox -s tests installs it), not imported by these tests: only minsky loads it, by entry point.
pytest.importorskip("minsky_audit", reason="install ./examples/minsky-audit (nox -s tests does)")

REPO_URL = "https://github.com/acme/widgets.git"
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def minsky(home: Path, tmp_path: Path) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINSKY_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / ".state"))
    work = tmp_path / "work"
    work.mkdir()

    def run(*args: str, ok: bool = True, **extra: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "minsky", *args],
            capture_output=True,
            text=True,
            env={**env, **extra},
            cwd=work,
            check=False,
            timeout=120,
        )
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    return run


def audit(home: Path) -> list[dict[str, str]]:
    path = home / ".state" / "minsky" / "audit.log"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()] if path.exists() else []


def store_digests(path: Path) -> dict[str, str]:
    """The digest of each record as the JSON store file holds it."""
    return {s["session"]: record_digest(record_from_dict(s)) for s in json.loads(path.read_text("utf-8"))["sessions"]}


def test_installed_by_entry_point_with_only_the_write_hook(minsky: Run) -> None:
    listed = json.loads(minsky("plugins", "list", "--json").stdout)["plugins"]
    plugin = next(p for p in listed if p["name"] == "audit")
    assert plugin["distribution"] == "minsky-audit" and plugin["status"] == "loaded"
    assert plugin["backends"] == [] and plugin["hooks"] == ["write"]


def test_session_commands_are_audited(minsky: Run, home: Path) -> None:
    store = home / ".state" / "minsky" / "session-db.json"
    minsky("session", "start", "alpha", "--repo", REPO_URL)
    started = store_digests(store)["alpha"]
    minsky("session", "end", "alpha")
    ended = store_digests(store)["alpha"]
    minsky("session", "list")  # a read: not audited
    minsky("session", "delete", "alpha")
    lines = audit(home)
    assert [(e["kind"], e["session"], e["digest"]) for e in lines] == [
        ("insert", "alpha", started),
        ("update", "alpha", ended),
        ("delete", "alpha", ended),  # the digest of the record removed
    ]
    assert started != ended
    assert {e["store"] for e in lines} == {str(store)}
    assert all(e["who"].count("@") == 1 and e["at"].endswith("Z") for e in lines)
    assert oct((home / ".state" / "minsky" / "audit.log").stat().st_mode & 0o777) == "0o600"


def test_a_failed_write_is_not_audited(minsky: Run, home: Path) -> None:
    minsky("session", "start", "alpha", "--repo", REPO_URL)
    again = minsky("session", "start", "alpha", "--repo", REPO_URL, ok=False)
    assert again.returncode == 7  # the name is taken: nothing written, nothing logged
    assert [e["kind"] for e in audit(home)] == ["insert"]


def test_migrations_and_restores_are_audited(minsky: Run, home: Path, tmp_path: Path) -> None:
    records = generated_records(1500)
    source = home / ".state" / "minsky" / "session-db.json"
    source.parent.mkdir(parents=True)
    source.write_text(json.dumps({"sessions": [record_to_dict(r) for r in records]}))
    expected = {r.session: record_digest(r) for r in records}
    db = tmp_path / "t.db"
    minsky("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(db), "--backup", str(tmp_path / "b"))
    migrated = audit(home)
    assert {e["session"]: e["digest"] for e in migrated} == expected and len(migrated) == 1500
    assert {(e["kind"], e["store"]) for e in migrated} == {("upsert", str(db))}

    backup = next((tmp_path / "b").iterdir())
    restored = tmp_path / "restored.db"
    minsky("sessiondb", "restore", "--backup", str(backup), "--to", "sqlite", "--sqlite-path", str(restored))
    lines = audit(home)[1500:]
    assert {e["session"]: e["digest"] for e in lines} == expected and len(lines) == 1500
    assert {(e["kind"], e["store"]) for e in lines} == {("upsert", str(restored))}


def test_the_log_can_be_placed_elsewhere(minsky: Run, home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "team" / "audit.jsonl"
    minsky("session", "start", "alpha", "--repo", REPO_URL, MINSKY_AUDIT_LOG=str(elsewhere))
    assert audit(home) == []
    assert [json.loads(line)["session"] for line in elsewhere.read_text("utf-8").splitlines()] == ["alpha"]


def test_a_log_that_cannot_be_written_is_one_clear_error(minsky: Run, home: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    done = minsky("session", "start", "alpha", "--repo", REPO_URL, ok=False, MINSKY_AUDIT_LOG=str(blocked / "a.log"))
    assert done.returncode == 4 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"minsky: error: cannot append to the audit log {blocked / 'a.log'}: ")
    assert "the change itself was made" in done.stderr
