"""Writing into a JSON store a migration streamed (one canonical record a line): merged line by
line, without parsing the document, into the same layout; any other layout is rewritten whole.
Names with escapes, non-ASCII names and a nested ``session`` key are the cases that reading a
line's name without decoding it could get wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import Invoke

STREAM_HEAD = b'{"sessions": [\n'
AWKWARD = ["plain", 'quo"te', "back\\slash", "naïve-é", "emoji-😀", "nested"]


def record(name: str, repo: str) -> dict[str, Any]:
    item: dict[str, Any] = {"session": name, "repoName": "r", "repoUrl": repo, "createdAt": "2025-01-01T00:00:00Z"}
    if name == "nested":  # an unknown field holding its own "session" key, sorted before the real one
        item["aExtra"] = {"session": "plain"}
    return item


def write_source(path: Path, names: list[str], repo: str) -> None:
    path.write_text(json.dumps({"sessions": [record(n, repo) for n in names]}), "utf-8")


@pytest.fixture
def migrate(minsky: Invoke, monkeypatch: pytest.MonkeyPatch) -> Any:
    def run(source: Path, target: Path, *extra: str) -> dict[str, Any]:
        monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "json")
        monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(source))  # the configured store is the source
        done = minsky("sessiondb", "migrate", "to", "json", "--json-path", str(target), "--json", *extra)
        return _result(done)

    return run


def _result(done: Any) -> dict[str, Any]:
    assert done.exit_code in (0, 7), done.output
    return {"code": done.exit_code, **(json.loads(done.stdout) if done.exit_code == 0 else {})}


def stored(path: Path) -> dict[str, str]:
    items = json.loads(path.read_bytes())["sessions"]
    names = [item["session"] for item in items]
    assert len(names) == len(set(names)), f"a name is held twice: {sorted(names)}"
    return {item["session"]: item["repoUrl"] for item in items}


@pytest.fixture
def streamed(tmp_path: Path, migrate: Any) -> Path:
    source, target = tmp_path / "first.json", tmp_path / "target.json"
    write_source(source, AWKWARD, "https://h/first")
    assert migrate(source, target)["code"] == 0
    assert target.read_bytes().startswith(STREAM_HEAD), "a new JSON target is streamed"
    return target


@pytest.mark.parametrize("on_conflict", ["fail", "skip", "overwrite"])
def test_a_streamed_store_is_merged_line_by_line(
    streamed: Path, tmp_path: Path, migrate: Any, minsky: Invoke, on_conflict: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    second = tmp_path / "second.json"
    write_source(second, [*AWKWARD[1:], "new-é", 'new"q'], "https://h/second")
    before = streamed.read_bytes()
    result = migrate(second, streamed, "--on-conflict", on_conflict)
    if on_conflict == "fail":
        assert result["code"] == 7 and streamed.read_bytes() == before, "fail wrote something"
        return
    assert result["code"] == 0
    expected = dict.fromkeys(AWKWARD, "https://h/first")
    expected |= {"new-é": "https://h/second", 'new"q': "https://h/second"}
    if on_conflict == "overwrite":
        expected |= dict.fromkeys(AWKWARD[1:], "https://h/second")
    assert stored(streamed) == expected
    assert streamed.read_bytes().startswith(STREAM_HEAD), "the merged store keeps the streamed layout"
    assert json.loads(streamed.read_bytes())["baseDir"], "the other top-level keys are kept"
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(streamed))
    report = minsky("sessiondb", "verify")
    assert report.exit_code == 0, report.output


def test_a_streamed_head_over_other_lines_is_rewritten_whole(tmp_path: Path, migrate: Any) -> None:
    """The head line of a streamed store, but records spread over lines with spaces: no line
    names its record the cheap way, so the document is parsed and rewritten whole."""
    target = tmp_path / "target.json"
    items = [record(n, "https://h/first") for n in AWKWARD]
    lines = ",\n".join(json.dumps(item, indent=None, separators=(", ", ": ")) for item in items)
    target.write_text('{"sessions": [\n' + lines + '\n], "baseDir": "/x"}\n', "utf-8")
    second = tmp_path / "second.json"
    write_source(second, ['quo"te', "later"], "https://h/second")
    assert migrate(second, target, "--on-conflict", "overwrite")["code"] == 0
    expected = dict.fromkeys(AWKWARD, "https://h/first") | dict.fromkeys(['quo"te', "later"], "https://h/second")
    assert stored(target) == expected
    assert json.loads(target.read_bytes())["baseDir"] == "/x"


@pytest.mark.parametrize("on_conflict", ["fail", "skip"])
def test_the_conflict_rule_holds_when_a_streamed_store_is_merged(streamed: Path, on_conflict: str) -> None:
    """A session the file holds as the write commits is never replaced by ``skip`` or ``fail``
    (a migration's commit-time rule); the records it writes beside it arrive (``skip``)."""
    from minsky.codec import record_from_dict
    from minsky.errors import ConflictError
    from minsky_backend_json.store import JsonStore

    store = JsonStore(streamed)
    before = streamed.read_bytes()
    batch = [record_from_dict(record(name, "https://h/late")) for name in ('quo"te', "fresh")]
    try:
        with store.bulk_writer(on_conflict=on_conflict) as writer:  # type: ignore[arg-type]
            writer.write(batch)
    except ConflictError:
        assert on_conflict == "fail"
        assert streamed.read_bytes() == before, "fail wrote something"
        return
    assert on_conflict == "skip" and writer.conflicts == ['quo"te']
    assert stored(streamed) == dict.fromkeys(AWKWARD, "https://h/first") | {"fresh": "https://h/late"}


@pytest.mark.parametrize(
    "layout",
    [
        pytest.param(lambda held: json.dumps({"sessions": held}), id="one-line document"),
        pytest.param(lambda held: json.dumps(held, indent=2), id="the original's bare array"),
        pytest.param(None, id="a store minsky streamed"),
    ],
)
def test_a_name_twice_in_one_write_into_a_store_with_sessions(tmp_path: Path, layout: Any) -> None:
    """adversary helper-35 (F1): into a JSON store already holding sessions, a name given twice
    in one write kept its last copy under skip and fail alike, counted as no conflict."""
    import attrs

    from minsky.codec import record_from_dict
    from minsky.errors import ConflictError
    from minsky_backend_json.store import JsonStore

    path = tmp_path / "s.json"
    held = [record("held", "r")]
    if layout is None:
        with JsonStore(path).bulk_writer() as writer:
            writer.write([record_from_dict(held[0])])
    else:
        path.write_text(layout(held))
    before = path.read_bytes()
    first, other = record_from_dict(record("a", "first")), record_from_dict(record("b", "r"))
    again = attrs.evolve(first, repo_url="again")
    with pytest.raises(ConflictError), JsonStore(path).bulk_writer(on_conflict="fail") as writer:
        writer.write([first, other, again])
    assert path.read_bytes() == before
    with JsonStore(path).bulk_writer(on_conflict="skip") as writer:
        writer.write([first, other])
        writer.write([again])
    assert writer.conflicts == ["a"]
    assert {r.session: r.repo_url for r in JsonStore(path).read()} == {"held": "r", "a": "first", "b": "r"}
