"""`minsky session …` as a user drives it, on every built-in backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minsky.errors import UsageError

BACKENDS = ["json", "sqlite"]
REPO = "https://github.com/acme/widgets.git"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, use_backend) -> str:  # type: ignore[no-untyped-def]
    use_backend(request.param)
    return str(request.param)


def test_start_list_get_end(minsky, minsky_json, backend: str, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    started = minsky("session", "start", "--task", "#123", "--repo", REPO)
    assert started.exit_code == 0, started.output
    assert (state_dir / "sessions" / "task-md#123").is_dir()
    listed = minsky_json("session", "list")["sessions"]
    assert [s["session"] for s in listed] == ["task-md#123"]
    assert listed[0]["repoName"] == "acme/widgets" and listed[0]["taskId"] == "md#123"
    assert listed[0]["backendType"] == "github"
    assert minsky_json("session", "get", "task-md#123")["repoUrl"] == REPO
    assert minsky_json("session", "list", "--task", "123")["sessions"][0]["session"] == "task-md#123"
    assert minsky("session", "end", "task-md#123").exit_code == 0
    assert minsky_json("session", "list", "--active")["sessions"] == []
    ended = minsky_json("session", "list", "--ended")["sessions"]
    assert ended[0]["endedAt"].endswith("Z")


def test_starting_a_taken_name_is_a_conflict(minsky, backend: str) -> None:  # type: ignore[no-untyped-def]
    assert minsky("session", "start", "s1", "--repo", REPO).exit_code == 0
    again = minsky("session", "start", "s1", "--repo", REPO)
    assert again.exit_code == 7
    assert "already exists" in again.stderr and "Traceback" not in again.output


def test_end_all_and_clean(minsky, minsky_json, backend: str, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    for name in ("a", "b", "c"):
        assert minsky("session", "start", name, "--repo", REPO).exit_code == 0
    assert minsky_json("session", "end", "--all")["ended"] == ["a", "b", "c"]
    # Nothing is older than a week yet.
    assert minsky_json("session", "clean", "--older-than", "1w")["removed"] == []
    dry = minsky_json("session", "clean", "--older-than", "1s", "--dry-run")
    # Sessions created this second may not be older than 1s yet: wait for them.
    import time

    time.sleep(1.1)
    dry = minsky_json("session", "clean", "--older-than", "1s", "--dry-run")
    assert dry["removed"] == ["a", "b", "c"] and dry["dryRun"] is True
    assert len(minsky_json("session", "list")["sessions"]) == 3
    assert (state_dir / "sessions" / "a").is_dir()
    done = minsky_json("session", "clean", "--older-than", "1s")
    assert done["removed"] == ["a", "b", "c"]
    assert minsky_json("session", "list")["sessions"] == []
    assert not (state_dir / "sessions" / "a").exists()


def test_clean_keeps_active_sessions_unless_asked(minsky, minsky_json, backend: str) -> None:  # type: ignore[no-untyped-def]
    assert minsky("session", "start", "old", "--repo", REPO).exit_code == 0
    import time

    time.sleep(1.1)
    kept = minsky_json("session", "clean", "--older-than", "1s")
    assert kept["removed"] == [] and kept["keptActive"] == 1
    assert minsky_json("session", "clean", "--older-than", "1s", "--include-active")["removed"] == ["old"]


@pytest.mark.parametrize("bad", ["30", "d", "1y", "-3d", "0d", "3 days", ""])
def test_bad_durations_are_usage_errors(minsky, bad: str) -> None:  # type: ignore[no-untyped-def]
    result = minsky("session", "clean", "--older-than", bad)
    assert result.exit_code == UsageError.exit_code
    assert "bad duration" in result.stderr and len(result.stderr.strip().splitlines()) == 1


HOSTILE = [
    "../x",
    "../../etc/passwd",
    "/abs/path",
    "a/b",
    "..\\x",
    "x\\..\\y",
    "trailing.",
    "..",
    ".",
    "nul\x00byte",
    "tab\tname",
    "x" * 300,
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_create_nothing_outside_base(minsky, backend: str, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    before = {p for p in tmp_path.rglob("*")}
    result = minsky("session", "start", name, "--repo", REPO)
    assert result.exit_code == UsageError.exit_code, result.output
    assert "cannot name a working directory" in result.stderr
    created = {p for p in tmp_path.rglob("*")} - before
    assert all("sessions" not in p.parts[-1:] for p in created)
    assert not any(
        p.name not in ("minsky", "state", ".local") and p.is_file()
        for p in created
        if "sessions.db" not in p.name and "session-db" not in p.name
    )


def test_symlinked_session_dir_is_refused(minsky, backend: str, state_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "outside"
    outside.mkdir()
    (state_dir / "sessions").mkdir(parents=True)
    (state_dir / "sessions" / "evil").symlink_to(outside)
    result = minsky("session", "start", "evil", "--repo", REPO)
    assert result.exit_code == UsageError.exit_code
    assert "escapes" in result.stderr


def test_stores_holding_odd_names_are_still_read(minsky_json, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    state_dir.mkdir(parents=True)
    (state_dir / "session-db.json").write_text(json.dumps({"sessions": [{"session": "../odd"}]}))
    assert minsky_json("session", "list")["sessions"] == [{"session": "../odd"}]


def test_start_outside_a_git_repo_needs_repo(minsky, backend: str) -> None:  # type: ignore[no-untyped-def]
    result = minsky("session", "start", "--task", "1")
    assert result.exit_code == UsageError.exit_code
    assert "--repo" in result.stderr


def test_start_from_local_git_checkout(minsky_json, backend: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    checkout = tmp_path / "notes"
    checkout.mkdir()
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    monkeypatch.chdir(checkout)
    started = minsky_json("session", "start", "--task", "md#9")["session"]
    assert started["repoName"] == "local/notes" and started["repoPath"] == str(checkout)
    assert started["backendType"] == "local"


def test_get_missing_session_is_not_found(minsky, backend: str) -> None:  # type: ignore[no-untyped-def]
    result = minsky("session", "get", "nope")
    assert result.exit_code == 9 and "no session named 'nope'" in result.stderr


def test_token_is_never_printed(minsky, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    state_dir.mkdir(parents=True)
    record = {"session": "s", "github": {"owner": "o", "repo": "r", "token": "ghp_canarySECRET123"}}
    (state_dir / "session-db.json").write_text(json.dumps({"sessions": [record]}))
    for args in (["session", "list", "--json"], ["session", "get", "s"], ["session", "list", "--detailed"]):
        result = minsky(*args)
        assert result.exit_code == 0
        assert "ghp_canarySECRET123" not in result.output


def test_control_characters_in_names_are_escaped_in_text_output(minsky, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    state_dir.mkdir(parents=True)
    (state_dir / "session-db.json").write_text(json.dumps({"sessions": [{"session": "evil\x1b[2Jname\x07"}]}))
    for args in (["session", "list"], ["session", "list", "--detailed"]):
        out = minsky(*args).stdout
        assert "\x1b" not in out and "\x07" not in out and "evil\\x1b[2Jname\\x07" in out
    assert json.loads(minsky("session", "list", "--json").stdout)["sessions"][0]["session"] == "evil\x1b[2Jname\x07"


def test_end_all_names_the_first_twenty(minsky, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """Ending thousands of sessions printed every name on one line (30 KB); --json keeps them all."""
    import json

    state_dir.mkdir(parents=True, exist_ok=True)
    records = [
        {"session": f"s{i:02d}", "repoName": "r", "repoUrl": "u", "createdAt": "2025-01-01T00:00:00Z"}
        for i in range(25)
    ]
    (state_dir / "session-db.json").write_text(json.dumps({"sessions": records}))
    ended = minsky("session", "end", "--all")
    assert ended.exit_code == 0, ended.output
    line = ended.stdout.strip()
    assert line.startswith("Ended 25 session(s): s00, s01") and "s19 … (--json lists them all)" in line
    assert "s20" not in line and len(ended.stdout.splitlines()) == 1
