"""The worked example, installed like any third-party plugin, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_minsky
from minsky.codec import canonical, record_from_dict

pytest.importorskip("minsky_backend_jsonl", reason="install ./examples/minsky-backend-jsonl (nox -s tests does)")


def test_plugins_list_shows_the_example() -> None:
    listed = json.loads(run_minsky("plugins", "list", "--json").stdout)["plugins"]
    jsonl = next(p for p in listed if p["name"] == "jsonl")
    assert jsonl["distribution"] == "minsky-backend-jsonl" and jsonl["backends"] == ["jsonl"]
    assert jsonl["status"] == "loaded"


def test_json_to_jsonl_to_sqlite_through_the_cli(state_dir: Path, shared_sample: Path, tmp_path: Path) -> None:
    state_dir.mkdir(parents=True)
    (state_dir / "session-db.json").write_bytes(shared_sample.read_bytes())
    lines = tmp_path / "sessions.jsonl"
    first = run_minsky("sessiondb", "migrate", "to", "jsonl", "-o", f"path={lines}", "--verify", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["verificationResult"]["ok"] is True
    assert len(lines.read_text("utf-8").splitlines()) == 5
    db = tmp_path / "sessions.db"
    second = run_minsky(
        "sessiondb",
        "migrate",
        "to",
        "sqlite",
        "--from",
        "jsonl",
        "-o",
        f"jsonl.path={lines}",
        "--sqlite-path",
        str(db),
        "--verify",
        "--json",
    )
    assert second.returncode == 0, second.stderr
    out = tmp_path / "back.json"
    third = run_minsky(
        "sessiondb", "migrate", "to", "json", "--from", "sqlite", "--sqlite-path", str(db), "--json-path", str(out)
    )
    assert third.returncode == 0, third.stderr
    original = json.loads(shared_sample.read_text("utf-8"))["sessions"]
    back = json.loads(out.read_text("utf-8"))["sessions"]
    assert [canonical(record_from_dict(r)) for r in back] == [canonical(record_from_dict(r)) for r in original]


def test_sessions_run_on_the_example_backend(tmp_path: Path) -> None:
    env = {"MINSKY_SESSIONDB_BACKEND": "jsonl"}
    assert run_minsky("session", "start", "x", "--repo", "https://h/a/b", env=env).returncode == 0
    listed = json.loads(run_minsky("session", "list", "--json", env=env).stdout)["sessions"]
    assert [s["session"] for s in listed] == ["x"]
