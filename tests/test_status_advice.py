"""`migrate status` advice quotes measured figures (benchmarks/, minsky.measured): when it speaks
and what it says — never how fast anything is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minsky.measured import JSON_ADVICE_RECORDS, about, migration_seconds


def json_store(state_dir: Path, count: int, padding: int = 0) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    store = state_dir / "session-db.json"
    sessions = [{"session": f"s-{i:06d}", "n": i} for i in range(count)]
    if padding:
        sessions[0]["notes"] = "x" * padding
    store.write_text(json.dumps({"sessions": sessions}))
    return store


def json_advice(minsky_json) -> list[str]:  # type: ignore[no-untyped-def]
    status = minsky_json("sessiondb", "migrate", "status")
    return [line for line in status["recommendations"] if line.startswith("the JSON store holds")]


def test_no_advice_to_move_a_json_store_at_the_threshold(minsky_json, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    json_store(state_dir, JSON_ADVICE_RECORDS)
    assert json_advice(minsky_json) == []


def test_one_session_past_the_threshold_advises_sqlite_with_figures(minsky_json, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    json_store(state_dir, JSON_ADVICE_RECORDS + 1)
    [line] = json_advice(minsky_json)
    assert f"holds {JSON_ADVICE_RECORDS + 1} sessions" in line
    assert "past 5,000 sessions" in line and "rewrites the whole file" in line
    assert "session start took" in line and "on a 10,000-session JSON store" in line
    assert "s on SQLite, measured" in line
    assert "moving them to SQLite takes " in line and "(estimated)" in line
    assert line.endswith("minsky sessiondb migrate to sqlite --backup ./backups --verify --set-default")


def test_a_few_big_sessions_past_the_size_threshold_are_advised_too(minsky_json, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    json_store(state_dir, 3, padding=6 * 1024 * 1024)
    [line] = json_advice(minsky_json)
    assert "holds 3 sessions (6.3 MB)" in line


def test_the_figure_quoted_is_the_measured_size_nearest_the_store(minsky_json, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    json_store(state_dir, 60_000)
    [line] = json_advice(minsky_json)
    assert "on a 100,000-session JSON store" in line


def test_the_text_output_carries_the_same_advice(minsky, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    json_store(state_dir, JSON_ADVICE_RECORDS + 1)
    result = minsky("sessiondb", "migrate", "status")
    assert result.exit_code == 0, result.output
    assert any(line.startswith("Advice:    the JSON store holds") for line in result.stdout.splitlines())


def test_an_estimate_grows_with_the_store_and_with_what_is_asked() -> None:
    plain = migration_seconds("json", "sqlite", 10_000)
    assert plain is not None and plain > 0
    assert migration_seconds("json", "sqlite", 20_000) == pytest.approx(2 * plain)
    checked = migration_seconds("json", "sqlite", 10_000, verify=True, backup=True)
    assert checked is not None and checked > plain


def test_a_direction_never_measured_has_no_estimate() -> None:
    assert migration_seconds("jsonl", "sqlite", 10_000) is None
    assert migration_seconds("json", "json", 10_000) is None


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0.2, "under a second"),
        (1.0, "about 1 second"),
        (42.4, "about 42 seconds"),
        (150, "about 2 minutes"),
        (3 * 3600, "about 3.0 hours"),
    ],
)
def test_durations_are_said_as_a_person_would(seconds: float, said: str) -> None:
    assert about(seconds) == said
