"""What reaches the terminal is escaped everywhere; what happens after a commit never turns
it into a failure; odd arguments are usage errors; a symlinked working directory is never
followed out of its own session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_minsky
from minsky.errors import NotFoundError, RejectedRecordsError, UsageError

# Terminal control in a name: CSI (7-bit and C1), OSC, bell, DEL, a bidi override.
HOSTILE = ["\x1b[2J\x1b]0;owned\x07", "x\x9b31m", "del\x7f", "\u202egnp.exe", "nl\nbreak"]
RAW = ("\x1b", "\x9b", "\x07", "\x7f", "\u202e")


def seed(path: Path, names: list[str], **fields: object) -> None:
    records = [{"session": name, "createdAt": "2000-01-01T00:00:00.000Z", **fields} for name in names]
    path.write_text(json.dumps({"sessions": records}), "utf-8")


def assert_escaped(text: str) -> None:
    for raw in RAW:
        assert raw not in text, repr(text)


@pytest.fixture
def hostile_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    store = tmp_path / "store.json"
    seed(store, HOSTILE)
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "json")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(store))
    return store


@pytest.mark.parametrize(
    "args",
    [
        ["session", "list"],
        ["session", "list", "--detailed"],
        ["session", "list", "--json"],
        ["session", "end", "--all"],
        ["session", "end", "--all", "--json"],
        ["session", "clean", "--older-than", "1d", "--include-active", "--dry-run"],
        ["session", "clean", "--older-than", "1d", "--include-active"],
        ["session", "clean", "--older-than", "1d", "--include-active", "--json"],
        ["session", "get", HOSTILE[0]],
        ["session", "get", "\x1b[31mmissing"],
        ["session", "delete", HOSTILE[1]],
        ["session", "end", "\x9b31mmissing"],
        ["sessiondb", "check"],
    ],
)
def test_session_output_is_escaped(minsky, hostile_store: Path, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = minsky(*args)
    assert result.exit_code in (0, NotFoundError.exit_code), result.output
    assert_escaped(result.stdout)
    assert_escaped(result.stderr)
    if "--json" in args:
        json.loads(result.stdout)  # still one JSON object, its strings escaped


def test_the_migration_report_escapes_every_name_list(minsky, hostile_store: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = ["--sqlite-path", str(tmp_path / "t.db")]
    assert minsky("sessiondb", "migrate", "to", "sqlite", *target).exit_code == 0
    again = minsky("sessiondb", "migrate", "to", "sqlite", *target)  # conflicts: an error naming them
    assert again.exit_code == 7
    assert_escaped(again.stderr)
    skipped = minsky("sessiondb", "migrate", "to", "sqlite", *target, "--on-conflict", "skip", "--dry-run")
    assert skipped.exit_code == 0 and "already in the target" in skipped.stdout
    assert_escaped(skipped.stdout)
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"sessions": [{"session": "\\u001b[5mblink", "x": NaN}]}')
    rejected = minsky(
        "sessiondb", "restore", "--backup", str(bad), "--to", "json", "--json-path", str(tmp_path / "r.json")
    )
    assert rejected.exit_code == RejectedRecordsError.exit_code
    assert "rejected" in rejected.stdout and "blink" in rejected.stderr
    assert_escaped(rejected.stdout + rejected.stderr)


def test_a_read_only_state_dir_does_not_fail_a_committed_migration(
    minsky, state_dir: Path, tmp_path: Path, shared_sample: Path
) -> None:  # type: ignore[no-untyped-def]
    state_dir.mkdir(parents=True)
    source = state_dir / "session-db.json"
    source.write_bytes(shared_sample.read_bytes())
    ledger = state_dir / "last-backup.json"
    ledger.mkdir()  # the ledger cannot be written (as on a read-only state dir, even as root)
    target = tmp_path / "t.db"
    result = minsky(
        "sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(target), "--backup", str(tmp_path / "b"),
        "--set-default",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "warning" in result.stderr and "could not be noted" in result.stderr
    assert "Migrated" in result.stdout and "verification: ok" in result.stdout
    assert len(list((tmp_path / "b").iterdir())) == 1
    status = minsky("sessiondb", "migrate", "status", "--json")
    assert json.loads(status.stdout)["backend"] == "sqlite"  # --set-default was applied
    rerun = minsky("sessiondb", "export", "--output", str(tmp_path / "e"))
    assert rerun.exit_code == 0 and "warning" in rerun.stderr


@pytest.mark.parametrize("duration", ["3000000d", "36526d", "99999999999999999999999w", "5218w", "0d", "1y", "-1d"])
def test_absurd_durations_are_usage_errors(minsky, duration: str) -> None:  # type: ignore[no-untyped-def]
    result = minsky("session", "clean", "--older-than", duration)
    assert result.exit_code == UsageError.exit_code, result.output
    assert "bad duration" in result.stderr and "Traceback" not in result.output


def test_a_century_is_still_a_duration(minsky) -> None:  # type: ignore[no-untyped-def]
    assert minsky("session", "clean", "--older-than", "36525d", "--dry-run").exit_code == 0


@pytest.mark.parametrize("command", [["session", "delete", "alpha"], ["session", "clean", "--older-than", "1d"]])
def test_a_symlinked_working_directory_is_not_followed_into_another_session(
    minsky, minsky_json, state_dir: Path, command: list[str]
) -> None:  # type: ignore[no-untyped-def]
    for name in ("alpha", "beta"):
        minsky_json("session", "start", name, "--repo", "https://h/a/b")
    assert minsky("session", "end", "alpha").exit_code == 0
    sessions = state_dir / "sessions"
    (sessions / "beta" / "work.txt").write_text("beta's work")
    (sessions / "alpha").rmdir()
    (sessions / "alpha").symlink_to(sessions / "beta")
    if command[1] == "clean":  # make alpha old enough to clean
        store = state_dir / "session-db.json"
        doc = json.loads(store.read_text())
        doc["sessions"][0]["createdAt"] = "2000-01-01T00:00:00.000Z"
        store.write_text(json.dumps(doc))
    result = minsky(*command)
    assert result.exit_code == 0, result.output
    assert (sessions / "beta" / "work.txt").read_text() == "beta's work"
    assert not (sessions / "alpha").is_symlink()
    assert [r["session"] for r in minsky_json("session", "list")["sessions"]] == ["beta"]


@pytest.mark.parametrize(
    "argv",
    [[b"caf\xe9"], [b"ok", b"--task", b"\xff1"], [b"ok", b"--branch", b"b\xe9"], [b"ok", b"--repo", b"/r\xe9po"]],
)
def test_an_argument_that_is_not_utf8_is_refused_before_anything_is_created(tmp_path: Path, argv: list[bytes]) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "XDG_STATE_HOME": str(home / "state"), "XDG_CONFIG_HOME": str(home / "cfg")}
    env = {k: v for k, v in env.items() if not k.startswith("MINSKY_") or k == "MINSKY_SHARED_DIR"}
    proc = subprocess.run(
        [sys.executable.encode(), b"-m", b"minsky", b"session", b"start", *argv],
        capture_output=True, env=env, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == UsageError.exit_code, proc.stderr
    assert b"is not UTF-8 text" in proc.stderr and b"Traceback" not in proc.stderr
    assert not (home / "state").exists()
    listed = run_minsky("session", "list", env={"HOME": str(home), "XDG_STATE_HOME": str(home / "state")})
    assert listed.returncode == 0


def test_a_reader_that_goes_away_is_no_internal_error(state_dir: Path) -> None:
    """`minsky session list | head -1`: the rest is not printed, no traceback, no internal error."""
    import json as _json
    import subprocess
    import sys

    from minsky.codec import record_to_dict
    from minsky.testing.records import generated_records

    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "session-db.json").write_text(
        _json.dumps({"sessions": [record_to_dict(r) for r in generated_records(20_000)]})
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "minsky", "session", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as `head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert first.strip() and err == ""


def test_config_and_status_output_escape_what_a_terminal_would_obey(minsky, isolated_home: Path) -> None:
    """A path holding an escape sequence reaches the terminal as text, in config and status alike."""
    hostile = str(isolated_home / "s\x1b]0;owned\x07\x1b[2J.db")
    assert minsky("config", "set", "sessiondb.backend", "sqlite").exit_code == 0
    assert minsky("config", "set", "sessiondb.dbPath", hostile).exit_code == 0
    for args in (("config", "get", "sessiondb.dbPath"), ("config", "show"), ("sessiondb", "migrate", "status")):
        result = minsky(*args)
        out = result.output
        assert "\x1b" not in out and "\x07" not in out, (args, out)
        assert "\\x1b]0;owned\\x07\\x1b[2J" in out, (args, out)
