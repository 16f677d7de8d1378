"""The JSON store read one record at a time (``minsky_backend_json.lines``) gives exactly what
reading the document whole gives: the same values with their types (``1`` / ``1.0`` / ``true``,
``-0.0``, integers past 64 bits, ``-0`` and ``1e400`` kept as found), the same key order and
duplicate-key outcome, and the same refusal when the document is not a store. Documents are
generated in every layout writers produce (minsky's one record per line, the original's
2-space indent as a bare array or an object, the benchmark's) and in awkward ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minsky import jsonlines as lines
from minsky.codec import canonical, canonical_of_dict, loads
from minsky.errors import StoreError
from minsky_backend_json.keys import decode_for_name
from minsky_backend_json.store import JsonStore, parse_document
from test_value_properties import Token, deep, values

sys.set_int_max_str_digits(0)


def text_of(value: Any, indent: int | None = None) -> bytes:
    """JSON text as a foreign writer leaves it: surrogates as escapes, tokens (``-0``, ``NaN``) as they are."""
    tokens: dict[str, str] = {}

    def placeholder(obj: object) -> str:
        assert isinstance(obj, Token)
        key = f"@@token{len(tokens)}@@"
        tokens[json.dumps(key)] = obj.text
        return key

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)
    try:
        text = json.dumps(value, default=placeholder, indent=indent)
    finally:
        sys.setrecursionlimit(limit)
    for key, token in tokens.items():
        text = text.replace(key, token)
    return text.encode("ascii")


def typed(value: Any) -> Any:
    """A value with its types and key order spelled out (``==`` would take 1 for 1.0 and True)."""
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, repr(value))


def layouts(entries: list[Any], rest: dict[str, Any]) -> dict[str, bytes]:
    parts = [text_of(e) for e in entries]
    tail = b"".join(b",\n  " + text_of(k) + b": " + text_of(v) for k, v in rest.items())
    return {
        # minsky's streamed store (_StreamingWriter)
        "streamed": b'{"sessions": [\n' + b",\n".join(b"    " + p for p in parts) + b"\n  ]" + tail + b"\n}\n",
        # the original's JSON.stringify(value, null, 2) and dump_document, both shapes
        "indented-object": text_of({"sessions": entries, **rest}, indent=2) + b"\n",
        "indented-array": text_of(entries, indent=2),
        # benchmarks/dataset.py
        "bench": b'{"sessions": [\n' + b",\n".join(parts) + b"\n]" + tail.replace(b"\n  ", b" ") + b"}\n",
        "crlf": (b'{"sessions": [\n' + b",\n".join(b"\t" + p for p in parts) + b"\n]" + tail + b"}").replace(
            b"\n", b"\r\n"
        ),
        # one line: not proved by lines, read whole
        "minified": b'{"sessions": [' + b", ".join(parts) + b"]" + tail.replace(b"\n  ", b"") + b"}",
    }


def whole(data: bytes, path: Path) -> Any:
    try:
        return typed(list(parse_document(data, path, strict=False)["sessions"]))
    except StoreError as exc:
        return ("error", type(exc).__name__)


def streamed(path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    try:
        return typed(list(JsonStore(path)._entries(strict=False)))
    except StoreError as exc:
        return ("error", type(exc).__name__)


names = st.sampled_from(["alpha", "Alpha", 'b\\"c', "d,\n]", "😀", "\udc80"])
records = st.fixed_dictionaries({"session": names}, optional={"v": st.one_of(values, deep()), "w": values})
rests = st.dictionaries(st.sampled_from(["baseDir", "x", "sessionz", "Sessions"]), values, max_size=2)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(entries=st.lists(st.one_of(records, values), min_size=1, max_size=5), rest=rests)
def test_every_layout_reads_as_the_whole_document_does(
    entries: list[Any], rest: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.json"
    for name, data in layouts(entries, rest).items():
        path.write_bytes(data)
        expected = whole(data, path)
        assert expected[0] != "error", name
        assert streamed(path, monkeypatch) == expected, name
        one_line = not any(isinstance(e, list) and e for e in entries)  # else the indented layouts read whole
        if name in ("streamed", "bench", "crlf") or (name.startswith("indented") and one_line):
            layout = lines.Layout()
            with path.open("rb") as handle:
                assert typed(list(lines.entries_of(handle, layout))) == expected, name
            assert layout.complete and layout.bare == (name == "indented-array")
            doc = parse_document(data, path, strict=False)
            assert typed(layout.rest) == typed({k: v for k, v in doc.items() if k != "sessions"}), name
            assert layout.newline == doc.newline, name


GOOD = [{"session": "a", "n": 1}, {"session": "b", "pr": {"x": [1, 2]}}]
AWKWARD = {
    "repeated-sessions-key": b'{"sessions": [\n{"session": "a"}\n], "sessions": [\n{"session": "b"}\n]}\n',
    # Two top-level lists are refused in every layout: a decoder keeps the last, a write would drop the first.
    "repeated-sessions-key-flat": b'{"sessions": [{"session": "a"}], "sessions": [{"session": "b"}]}',
    "repeated-sessions-key-not-first": b'{"x": 1,\n"sessions": [\n{"session": "a"}\n],\n"sessions": []}\n',
    "repeated-sessions-key-escaped": b'{"sessions": [{"session": "a"}], "sess\\u0069ons": [{"session": "b"}]}',
    "sessions-inside-a-record": b'{"sessions": [{"session": "a", "sessions": [], "x": {"sessions": 1}}]}',
    "comma-then-brace": b'{"sessions": [\n{"session": "a"}\n],}\n',
    "comma-line-then-brace": b'{"sessions": [\n{"session": "a"}\n]\n,\n}\n',
    "repeated-key-in-record": b'{"sessions": [\n{"session": "a", "x": 1, "session": "b"}\n]}\n',
    "sessions-not-first": b'{"baseDir": "/x", "sessions": [\n{"session": "a"}\n]}\n',
    "trailing-comma": b'{"sessions": [\n{"session": "a"},\n]}\n',
    "missing-comma": b'{"sessions": [\n{"session": "a"}\n{"session": "b"}\n]}\n',
    "truncated": b'{"sessions": [\n{"session": "a"},\n{"session": "b"',
    "unclosed-list": b'{"sessions": [\n{"session": "a"}\n',
    "garbage-after": b'{"sessions": [\n{"session": "a"}\n]} x\n',
    "array-garbage-after": b'[\n{"session": "a"}\n] []',
    "bom": b'\xef\xbb\xbf{"sessions": [\n{"session": "a"}\n]}\n',
    "two-records-a-line": b'{"sessions": [\n{"session": "a"}, {"session": "b"}\n]}\n',
    "record-split-oddly": b'{"sessions": [\n{"session":\n "a"}\n]}\n',
    "closing-at-wrong-indent": b'[\n  {\n    "session": "a",\n    "x": {\n  },\n    "y": 1\n  }\n]',
    "inner-brace-at-record-indent": b'[\n  {\n    "session": "a",\n    "x": {\n  }\n  }\n]',
    "sessions-not-a-list": b'{"sessions": {"a": 1}}\n',
    "no-sessions": b'{"x": [\n{"session": "a"}\n]}\n',
    "not-utf8": b'{"sessions": [\n{"session": "a", "x": "caf\xe9"}\n]}\n',
    "nul": b'{"sessions": [\n{"session": "a", "x": "\\u0000"}\n]}\n',
    "deep": b'{"sessions": [\n{"session": "a", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n]}\n",
    "deep-tail": b'{"sessions": [\n{"session": "a"}\n], "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
    "form-feed": b'{"sessions": [\n\x0c{"session": "a"}\n]}\n',
    # orjson reads 1,000 levels; the standard library, which a piece with 19 digits goes to, does not
    "deep-and-guarded": b'{"sessions": [\n{"session": "a"},\n{"session": "b", "s": "1234567890123456789", "x": '
    + b"[" * 1000
    + b"]" * 1000
    + b'},\n{"session": "c"}\n]}\n',
    "empty": b'{"sessions": []}\n',
    "nameless": b'{"sessions": [\n{"session": "a"},\n{"x": 1},\n"text"\n]}\n',
    "good-indented": json.dumps({"sessions": GOOD, "baseDir": "/b"}, indent=2).encode(),
}


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_awkward_documents_read_or_fail_as_the_whole_document_does(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.json"
    path.write_bytes(AWKWARD[name])
    assert streamed(path, monkeypatch) == whole(AWKWARD[name], path)
    if name.startswith("repeated-sessions-key") or name.startswith("comma-"):
        assert whole(AWKWARD[name], path) == ("error", "StoreError")


@pytest.mark.parametrize("name", ["repeated-sessions-key-flat", "repeated-sessions-key-escaped", "comma-then-brace"])
def test_a_write_into_a_refused_document_changes_nothing(name: str, minsky, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Before: a flat file with two lists was read as its last list and the next start dropped
    the first list; "],}" was read and silently rewritten."""
    path = tmp_path / "store.json"
    path.write_bytes(AWKWARD[name])
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "json")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(path))
    for args in (("session", "start", "c", "--repo", "https://example.invalid/r.git"), ("sessiondb", "check")):
        result = minsky(*args)
        assert result.exit_code == 4, result.output
        assert str(path) in result.stderr
    assert path.read_bytes() == AWKWARD[name]


def test_a_missing_name_is_refused_as_before_naming_the_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "store.json"
    path.write_bytes(AWKWARD["nameless"])
    with pytest.raises(StoreError, match=r"sessions\[1\] has no 'session' name"):
        list(JsonStore(path).read())


def test_get_stops_at_the_first_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "store.json"
    path.write_bytes(b'{"sessions": [\n{"session": "a", "n": 1},\n{"session": "a", "n": 2},\n{"session": "b"')
    record = JsonStore(path).get("a")
    assert record is not None and record.extra == {"n": 1}
    with pytest.raises(StoreError, match="not valid JSON"):  # the damage past it is found by a full read
        JsonStore(path).get("b")


def test_a_file_that_looks_streamed_is_not_taken_on_trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The streamed layout's head, but lines another writer wrote (spaces, unsorted keys):
    verification gets each record's canonical form, not the line."""
    path = tmp_path / "store.json"
    path.write_bytes(b'{"sessions": [\n{"session": "b", "repoName": "x/y"},\n{"session": "a"}\n]}\n')
    json_store = JsonStore(path)
    assert list(json_store.read_canonical()) == [canonical(r) for r in json_store.read()]
    assert next(iter(json_store.read_canonical())) == canonical_of_dict({"session": "b", "repoName": "x/y"})


def test_a_writer_replacing_the_file_mid_read_is_not_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "store.json"
    path.write_bytes(b'{"sessions": [\n{"session": "a"},\n{"session": "b"}\n]}\n')
    stream = JsonStore(path).keys()
    assert next(stream) == "a"
    replacement = tmp_path / "new.json"
    replacement.write_bytes(b'{"sessions": [\n{"session": "x"},\n{"session": "y"},\n{"session": "z"}\n]}\n')
    replacement.replace(path)
    assert list(stream) == ["b"]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=40) | st.text('-0123456789.eE "', max_size=60).map(str.encode))
def test_the_fast_suspect_scan_agrees_with_the_regular_expression(data: bytes) -> None:
    from minsky import values

    assert values._suspect_bytes(data) == (values._SUSPECT_BYTES.search(data) is not None)


@pytest.mark.parametrize("offset", [-19, -18, -10, -1, 0, 1])
def test_nineteen_digits_across_a_scan_chunk_are_seen(offset: int) -> None:
    from minsky import values

    start = values._SCAN_CHUNK + offset
    data = bytearray(b"a" * (3 * values._SCAN_CHUNK))
    data[start : start + 19] = b"1" * 19
    assert values._suspect_bytes(bytes(data))
    data[start + 9] = ord("a")
    assert not values._suspect_bytes(bytes(data))


unique_records = st.lists(
    st.fixed_dictionaries({"v": st.one_of(values, deep())}, optional={"w": values}), min_size=1, max_size=4
).map(lambda items: [{"session": f"s{i}", **item} for i, item in enumerate(items)])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(entries=unique_records, rest=rests)
def test_a_streamed_write_gives_the_bytes_of_a_whole_document_write(
    entries: list[Any], rest: dict[str, Any], tmp_path: Path
) -> None:
    """insert/update/delete rewrite entry by entry; the file is byte for byte what writing the
    document whole gives (records a write did not touch keep the original's bytes)."""
    from minsky.codec import record_from_dict, record_to_dict
    from minsky_backend_json.store import dump_document

    new = record_from_dict({"session": "new", "repoName": "a/b"})
    path = tmp_path / "store.json"
    for name, data in layouts(entries, rest).items():
        doc = parse_document(data, path, strict=False)
        if any(not representable_text(e) for e in doc["sessions"]) or any(
            not representable_text(v) for v in doc.values()
        ):
            continue  # as found: whole, the document turns ASCII; streamed, only that entry does
        steps = [
            ("insert", lambda s: s.insert(new), lambda d: d["sessions"].append(record_to_dict(new))),
            ("update", lambda s: s.update("s0", lambda r: r), lambda d: None),
            ("delete", lambda s: s.delete("s0"), lambda d: d.__setitem__("sessions", d["sessions"][1:])),
        ]
        for step, streamed_step, whole_step in steps:
            path.write_bytes(data)
            streamed_step(JsonStore(path))
            whole_step(doc := parse_document(data, path, strict=False))
            assert path.read_bytes() == dump_document(doc), (name, step)


def representable_text(value: Any) -> bool:
    from minsky.values import strict_bytes

    try:
        strict_bytes(value)
    except Exception:
        return False
    return True


def _names(items: list[Any]) -> list[Any]:
    """Each entry's name, or None where it has none (a strict read refuses the store there)."""
    return [e.get("session") if isinstance(e, dict) and isinstance(e.get("session"), str) else None for e in items]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(entries=st.lists(st.one_of(records, values), min_size=1, max_size=5), rest=rests)
def test_the_names_pass_finds_every_name_the_full_read_does(
    entries: list[Any], rest: dict[str, Any], tmp_path: Path
) -> None:
    # keys() and count() decode with orjson alone ("-0", 19 digits, NaN around the name included)
    path = tmp_path / "store.json"
    for name, data in layouts(entries, rest).items():
        path.write_bytes(data)
        full = list(JsonStore(path)._entries(strict=False))
        assert _names(list(JsonStore(path)._entries(strict=False, names_only=True))) == _names(full), name


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_keys_and_count_of_an_awkward_document_agree_with_its_read(name: str, tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    path.write_bytes(AWKWARD[name])
    store = JsonStore(path)

    def outcome(read: Any) -> Any:
        try:
            return read()
        except StoreError as exc:
            return ("error", str(exc))

    assert outcome(lambda: list(store.keys())) == outcome(lambda: [r.session for r in store.read()]), name
    assert outcome(store.count) == outcome(lambda: sum(1 for _ in store.read())), name


@pytest.mark.parametrize(
    "piece",
    [
        b'{"session": "a", "n": -0, "big": 123456789012345678901234, "f": 1e400}',
        b'{"session": "\\ud800x", "v": 1}',
        b'{"session": "n", "x": NaN}',
        b'{"session": "first", "x": -0, "session": "second"}',
        b'{"session": "caf\\u00e9 \\"q\\" \\\\", "n": 10000000000000000000}',
        b'{"sess\\u0069on": "escaped key", "n": -0}',
        b'{"session": "\xc3\xbc\xe2\x9c\x93\xf0\x9f\x9a\x80", "deep": [[[[-0]]]]}',
    ],
)
def test_a_name_decodes_alike_however_the_names_pass_decodes_it(piece: bytes) -> None:
    assert typed(decode_for_name(piece)["session"]) == typed(loads(piece)["session"])
