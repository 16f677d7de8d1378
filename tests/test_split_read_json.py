"""A forked read of a JSON store is decoded by more processes than one, as a SQLite store's is
(``test_split_read``): the reader cuts the file into entries, decoders decode them. Whatever
the file's layout (minsky's lines, the original's indented array, a hand-edited line holding
two entries, one line for everything) the target, its order and every error must be what one
process reading alone gives.

The reader proves its cut by decoding each entry for its name, unless the names pass already
cut that very file (``JsonStore._cut``): a file replaced or edited since is proved again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from minsky import forked
from minsky.codec import record_to_dict
from minsky.errors import MinskyError
from minsky.migrate import Endpoint, migrate
from minsky.model import SessionRecord
from minsky.testing.records import generated_records
from minsky.values import as_found_bytes
from minsky_backend_json.store import JsonStore
from test_forked_read import core_writes_only
from test_original_rows import hostile_records
from test_split_read import ROWS, SETTINGS, none_left, read_by

__all__ = ["core_writes_only"]  # a fixture


def entries() -> list[Any]:
    """Hostile entries (some refused by name) among generated ones, across every turn."""
    named: dict[str, Any] = {}  # one entry a name: the others are tested in test_duplicates
    for e in hostile_records():
        if isinstance(e.get("session"), str) and e["session"]:
            named.setdefault(e["session"], e)
    seen = set(named)
    plenty = [record_to_dict(r) for r in generated_records(ROWS) if r.session not in seen]
    return plenty[:100] + list(named.values()) + plenty[100:]


def in_lines(items: list[Any], join_at: int | None = None) -> bytes:
    """minsky's layout: one entry a line; ``join_at``: that entry and the next on one line."""
    texts = [as_found_bytes(e) for e in items]
    if join_at is not None:
        texts[join_at : join_at + 2] = [texts[join_at] + b", " + texts[join_at + 1]]
    return b'{"sessions": [\n' + b",\n".join(texts) + b'\n], "baseDir": "/b"}\n'


LAYOUTS: dict[str, Callable[[list[Any]], bytes]] = {
    "lines": in_lines,
    "indented array (the original's)": lambda items: as_found_bytes(items, indent=2),
    "two entries on a line in a decoder's turn": lambda items: in_lines(items, join_at=forked.BATCH + 40),
    "two entries on a line in the reader's turn": lambda items: in_lines(items, join_at=5),
    "one line": lambda items: as_found_bytes({"sessions": items}),
}


@pytest.fixture(params=["the names pass first", "names read by the copy"])
def names(request: pytest.FixtureRequest) -> str:
    """With a plugin on the write hook (the audit example, installed beside the tests) the
    names pass runs first, and may spare the reader its proof (``_cut``); without one, the copy
    reads the names (``migrate._names_later``) and the reader proves every cut."""
    if request.param == "names read by the copy":
        request.getfixturevalue("core_writes_only")
    return str(request.param)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_way_of_reading_a_json_store_gives_the_same_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, names: str
) -> None:
    items = entries()
    source_path = tmp_path / "source.json"
    source_path.write_bytes(LAYOUTS[layout](items))
    before = source_path.read_bytes()
    targets = {}
    for how in SETTINGS:
        read_by(how, monkeypatch)
        target = tmp_path / f"{how.replace(' ', '-')}.json"
        report = migrate(Endpoint("json", JsonStore(source_path)), Endpoint("json", JsonStore(target)), verify=True)
        assert report.verification is not None and report.verification.ok, report.to_json()
        targets[how] = (target.read_bytes(), report.written, len(report.rejected))
        assert none_left(), how
    first = targets["a single process"]
    assert all(t == first for t in targets.values()), [h for h, t in targets.items() if t != first]
    # Against the source itself: every entry the single process did not refuse, in order.
    rejected = {r["session"] for r in report.rejected}
    written = [e["session"] for e in json.loads(first[0])["sessions"]]
    assert written == [e["session"] for e in items if e["session"] not in rejected]
    assert len(written) > ROWS and rejected  # hostile entries refused by name, the same in every way
    assert source_path.read_bytes() == before


@pytest.mark.parametrize("bad", [3, forked.BATCH + 3, forked.BATCH * 3 + 7, ROWS - 1])
def test_an_entry_that_is_not_json_is_the_same_error_whichever_process_meets_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: int, names: str
) -> None:
    items = [dict(e) for e in entries()[:ROWS]]
    text = in_lines(items).replace(as_found_bytes(items[bad]), b'{"session": "broken", "x": tru}')
    source_path = tmp_path / "source.json"
    source_path.write_bytes(text)
    errors = {}
    for how in SETTINGS:
        read_by(how, monkeypatch)
        target = tmp_path / f"{how.replace(' ', '-')}.json"
        with pytest.raises(MinskyError) as caught:
            migrate(Endpoint("json", JsonStore(source_path)), Endpoint("json", JsonStore(target)))
        errors[how] = (type(caught.value), str(caught.value))
        assert not target.exists(), how
        assert none_left(), how
    assert len(set(errors.values())) == 1, errors
    assert "is not valid JSON" in errors["1 decoder"][1] and str(source_path) in errors["1 decoder"][1]


def split_read(store: JsonStore) -> list[SessionRecord]:
    split = store.read_split()
    assert split is not None
    decode, batches = split
    return [decode(row) for batch in batches for row in batch]


def test_a_split_read_of_the_file_the_names_pass_cut_needs_no_second_proof(tmp_path: Path) -> None:
    items = entries()
    path = tmp_path / "s.json"
    path.write_bytes(in_lines(items))
    store = JsonStore(path)
    expected = list(store.read())
    assert store._cut is None
    assert len(list(store.keys())) == len(items)
    assert store._cut is not None
    assert split_read(store) == expected
    split = store.read_split()
    assert split is not None
    first = next(split[1])
    assert all(text is not None and item is None for _, text, item in first)  # sent as text, undecoded


@pytest.mark.parametrize("how", ["replaced", "edited in place"])
def test_a_file_changed_after_the_names_pass_is_proved_again(tmp_path: Path, how: str) -> None:
    """The names pass cut a file laid out in lines; the file read next holds two entries on one
    line. Taken as cut, that entry would not decode; proved again, the read falls back to the
    whole document and gives every entry."""
    items = entries()
    path = tmp_path / "s.json"
    path.write_bytes(in_lines(items))
    store = JsonStore(path)
    assert len(list(store.keys())) == len(items)
    changed = in_lines(items, join_at=forked.BATCH + 40)
    if how == "replaced":
        (tmp_path / "new.json").write_bytes(changed)
        os.replace(tmp_path / "new.json", path)
    else:
        with path.open("r+b") as handle:
            handle.write(changed)
            handle.truncate()
    assert split_read(store) == list(JsonStore(path).read())
    assert [r.session for r in split_read(store)] == [e["session"] for e in items]
