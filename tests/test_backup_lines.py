"""A backup laid out one record per line (minsky's own) is read line by line (``minsky.jsonlines``);
whatever that reader cannot prove is scanned as before (``minsky.backup.scan``). Both must give
exactly the same restore: the same records with their types and key order, names, repeated
names, layout, metadata, digest and sha256 — or the same refusal, word for word. Generated
backups in minsky's layout, in the other shapes, and with bytes inserted, deleted or replaced
anywhere are read both ways and compared.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minsky import jsonlines
from minsky.backup import open_backup, write_backup
from minsky.codec import record_from_dict, record_to_dict
from minsky.errors import MinskyError
from test_json_streaming import names, records, text_of, typed
from test_value_properties import values

sys.set_int_max_str_digits(0)


def restored(path: Path) -> Any:
    """Everything a restore takes from the backup, or the refusal."""
    try:
        with open_backup(path) as backup:
            return (
                typed([record_to_dict(r) for r in backup.read()]),
                list(backup.keys()),
                backup.repeated,
                backup.to_json(),
                typed(backup.layout.fields),
                typed(backup.layout.data),
                backup.lines,
            )
    except MinskyError as exc:
        return ("error", type(exc).__name__, str(exc))


def both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    fast = restored(path)

    def refuse(*args: object, **kwargs: object) -> Any:
        raise jsonlines.NotLines("forced: the scanner's path")

    with monkeypatch.context() as patch:
        patch.setattr(jsonlines, "pieces", refuse)
        scanned = restored(path)
    if fast[0] != "error":
        assert scanned[-1] is False
        scanned = (*scanned[:-1], fast[-1])  # which path read it: the one thing allowed to differ
    return fast, scanned


def minsky_layout(entries: list[Any], rest: list[tuple[str, Any]]) -> bytes:
    """As ``write_backup`` lays a backup out (entries as foreign text: tokens, escapes, surrogates)."""
    body = b"".join((b"\n  " if i == 0 else b",\n  ") + text_of(e) for i, e in enumerate(entries))
    tail = b",\n".join(text_of(k) + b": " + text_of(v) for k, v in rest)
    return b'{"sessions": [' + body + b"\n],\n" + tail + b"}\n"


meta_keys = st.sampled_from(["baseDir", "minskyBackup", "data", "sessions", "x"])
rests = st.lists(
    st.tuples(meta_keys, st.one_of(values, st.dictionaries(st.sampled_from(["a", "sessions"]), values))), min_size=1
)
edits = st.lists(
    st.tuples(st.floats(0, 1), st.integers(0, 3), st.sampled_from([b"", b"\n", b",", b"]", b"}", b" ", b"\xff", b'"'])),
    max_size=2,
)

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


plain = st.fixed_dictionaries({"session": st.sampled_from(["a", "b", "c\\n", "😀"])}, optional={"v": values})


@SETTINGS
@given(entries=st.lists(st.one_of(plain, plain, records, values), max_size=5), rest=rests)
def test_the_line_reader_restores_exactly_what_the_scanner_does(
    entries: list[Any], rest: list[tuple[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "backup.json"
    path.write_bytes(minsky_layout(entries, rest))
    fast, scanned = both(path, monkeypatch)
    assert fast == scanned


@SETTINGS
@given(entries=st.lists(plain, max_size=4), rest=rests, edits=edits)
def test_damaged_backups_read_as_the_scanner_reads_them(
    entries: list[Any],
    rest: list[tuple[str, Any]],
    edits: list[tuple[float, int, bytes]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = minsky_layout(entries, rest)
    for where, cut, insert in edits:  # damage anywhere: the line reader must not read it differently
        at = int(where * len(data))
        data = data[:at] + insert + data[at + cut :]
    path = tmp_path / "backup.json"
    path.write_bytes(data)
    fast, scanned = both(path, monkeypatch)
    assert fast == scanned


@SETTINGS
@given(entries=st.lists(records, max_size=6), shape=st.sampled_from(["array", "indented", "wrapper", "one-line"]))
def test_other_shapes_read_as_before(
    entries: list[Any], shape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document: Any = {
        "array": entries,
        "indented": entries,
        "wrapper": {"timestamp": "t", "version": "1.0", "data": {"sessions": entries, "baseDir": "/b"}},
        "one-line": {"sessions": entries, "baseDir": "/b"},
    }[shape]
    path = tmp_path / "backup.json"
    path.write_bytes(text_of(document, indent=2 if shape in ("indented", "wrapper") else None))
    fast, scanned = both(path, monkeypatch)
    assert fast == scanned


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.fixed_dictionaries({"session": names}), max_size=6))
def test_minskys_backups_are_read_line_by_line(entries: list[Any], tmp_path: Path) -> None:
    records_ = [record_from_dict(e) for e in entries if e["session"] != "\udc80"]
    path, digest = write_backup(
        tmp_path, records_, source_backend="json", source_location="/s", base_dir="/b", path=tmp_path / "b.json"
    )
    with open_backup(path) as backup:
        backup.check()
        assert backup.lines
        assert list(backup.keys()) == [r.session for r in records_]
        assert backup.digest.hexdigest == digest.hexdigest
        counts = {n: [r.session for r in records_].count(n) for n in {r.session for r in records_}}
        assert backup.repeated == {n: c for n, c in counts.items() if c > 1}


@pytest.mark.parametrize(
    ("line", "name"),
    [
        (b'{"session": "a", "session": "b"}', "b"),  # the last copy of a key counts
        (b'{"session": "a\\u0062"}', "ab"),  # an escape
        (b'{"session": "caf\xc3\xa9", "x": {"session": "no"}}', "café"),
        (b'{"x": 1, "session": "late"}', "late"),  # not the first key
        (b'{"session" : "spaced"}', "spaced"),
    ],
)
def test_the_names_pass_gives_the_names_the_records_hold(
    line: bytes, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "backup.json"
    path.write_bytes(b'{"sessions": [\n  {"session": "first"},\n  ' + line + b'\n],\n"baseDir": "/b"}\n')
    fast, scanned = both(path, monkeypatch)
    assert fast == scanned
    assert fast[1] == ["first", name]
