"""The JSON store: the original format, atomic replacement, locking, corrupt files left alone."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from conftest import run_minsky
from minsky.errors import StoreError

REPO = "https://github.com/acme/widgets.git"


def test_reads_an_original_minsky_store_as_is(minsky, state_dir: Path, shared_sample: Path) -> None:  # type: ignore[no-untyped-def]
    state_dir.mkdir(parents=True)
    store = state_dir / "session-db.json"
    store.write_bytes(shared_sample.read_bytes())
    listed = json.loads(minsky("session", "list", "--json").stdout)["sessions"]
    assert listed == json.loads(shared_sample.read_text("utf-8"))["sessions"]


def test_writes_keep_other_records_and_base_dir(minsky, state_dir: Path, shared_sample: Path) -> None:  # type: ignore[no-untyped-def]
    state_dir.mkdir(parents=True)
    store = state_dir / "session-db.json"
    store.write_bytes(shared_sample.read_bytes())
    assert minsky("session", "start", "new-one", "--repo", REPO).exit_code == 0
    doc = json.loads(store.read_text("utf-8"))
    original = json.loads(shared_sample.read_text("utf-8"))
    assert doc["sessions"][:-1] == original["sessions"]
    assert doc["baseDir"] == original["baseDir"]
    assert doc["sessions"][-1]["session"] == "new-one"


def test_files_are_private(minsky, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    os.umask(0o022)
    assert minsky("session", "start", "s", "--repo", REPO).exit_code == 0
    for path in (state_dir / "session-db.json", state_dir / "session-db.json.lock"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in (state_dir, state_dir / "sessions", state_dir / "sessions" / "s"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert [p.name for p in state_dir.iterdir() if p.name.startswith(".minsky-tmp")] == []


CORRUPT = {
    "empty": b"",
    "truncated": b'{"sessions": [{"session": "a"',
    "not-utf8-outside-a-string": b'{"sessions": [{"session": "a"}]}\xff\xfe',
    "two-documents": b'{"sessions": []}{"sessions": []}',
    "number-at-top": b"42",
    "backup-wrapper-as-store": b'{"timestamp": "t", "version": "1.0", "data": {"sessions": []}}',
    "sessions-not-list": b'{"sessions": {"a": 1}}',
    "record-without-name": b'{"sessions": [{"repoName": "x"}]}',
}


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_corrupt_store_is_reported_and_never_overwritten(minsky, state_dir: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    state_dir.mkdir(parents=True)
    store = state_dir / "session-db.json"
    store.write_bytes(CORRUPT[name])
    for args in (["session", "list"], ["session", "start", "x", "--repo", REPO], ["session", "end", "--all"]):
        result = minsky(*args)
        assert result.exit_code == StoreError.exit_code, (args, result.output)
        assert str(store) in result.stderr
        first, *hints = result.stderr.strip().splitlines()
        assert first.startswith("minsky: error: ") and all(h.startswith("minsky: hint: ") for h in hints)
        assert "Traceback" not in result.output
        assert store.read_bytes() == CORRUPT[name]


def test_parse_error_names_line_and_column(minsky, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    state_dir.mkdir(parents=True)
    (state_dir / "session-db.json").write_text('{\n  "sessions": [\n    {"session": "a",}\n  ]\n}')
    result = minsky("session", "list")
    assert "line 3, column 21" in result.stderr


def test_a_message_of_the_decoder_ending_in_at_is_not_followed_by_at_again(minsky, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    # Adversary helper-39: "Unterminated string starting at at line 1, column 27".
    state_dir.mkdir(parents=True)
    (state_dir / "session-db.json").write_text('{"sessions": [{"session": "a')
    result = minsky("session", "list")
    assert result.exit_code == 4
    assert "Unterminated string starting at line 1, column 27" in result.stderr, result.stderr


def test_concurrent_session_starts_from_processes_lose_nothing(state_dir: Path) -> None:
    import subprocess
    import sys

    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from minsky.cli import cli\n"
                f"for i in range(10):\n"
                f"    cli.main(['session','start',f'p{n}-{{i}}','--repo','{REPO}'], standalone_mode=False)",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=os.environ.copy(),
        )
        for n in range(6)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    result = run_minsky("session", "list", "--json")
    assert len(json.loads(result.stdout)["sessions"]) == 60


@pytest.mark.parametrize("collide", [False, True])
def test_a_streamed_new_store_refuses_a_name_twice_and_only_that(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, collide: bool
) -> None:
    """The streaming writer keeps the names it wrote as hashes: names sharing one (forced) are
    still written, a real repeat is refused, and nothing of the refused write is left."""
    import minsky.names
    from minsky.testing.records import generated_records
    from minsky_backend_json.store import JsonStore

    if collide:
        monkeypatch.setattr(minsky.names, "name_hash", lambda name: 1)
    records = generated_records(5)
    store = JsonStore(tmp_path / "new.json")
    with store.bulk_writer() as writer:
        writer.write(records[:3])
        writer.write(records[3:])
    assert [r.session for r in store.read()] == [r.session for r in records]
    again = JsonStore(tmp_path / "again.json")
    with pytest.raises(StoreError, match="appears twice"), again.bulk_writer() as writer:
        writer.write(records[:3])
        writer.write([records[4], records[1]])
    assert not again.exists()
