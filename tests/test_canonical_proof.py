"""A SQL row minsky wrote carries its record as canonical text; a reader that proves the text
canonical (``codec.canonical_object``: decode, re-encode, compare) keeps it as the record's
canonical form instead of encoding the record again. That fast path must give exactly what
the slow one gives (decode with ``loads``, encode with ``canonical``): the same dict with the
same types and key order, the same canonical bytes, the same refusal for a record no store can
hold. These tests fail on a fast path that trusts stored text it has not proven: text whose
meaning is the record's but whose bytes are not its canonical form (other key order, spaces,
``\\u`` escapes, ``1E5``), or text orjson would read wrongly (``-0``, integers past 64 bits).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minsky import original
from minsky.codec import (
    UnrepresentableError,
    as_found_bytes,
    canonical,
    canonical_bytes,
    canonical_object,
    compact_bytes,
    digest_form,
    loads,
    record_from_dict,
    record_problem,
    record_to_dict,
)
from minsky.original import Column, Table
from minsky.testing.records import SAMPLE_DICTS
from minsky_backend_sqlite.store import SqliteStore
from test_hostile_values import KEPT, REFUSED
from test_value_properties import as_text, values

sys.set_int_max_str_digits(0)

# Record texts that mean a representable record but are not its canonical bytes.
NOT_CANONICAL = {
    "key-order": b'{"session":"s","b":1,"a":2}',
    "spaces": b'{"a": 2, "session": "s"}',
    "newline": b'{"a":2,"session":"s"}\n',
    "escaped-ascii": b'{"a":"\\u0041","session":"s"}',
    "escaped-non-ascii": b'{"a":"caf\\u00e9","session":"s"}',
    "escaped-slash": b'{"a":"a\\/b","session":"s"}',
    "exponent": b'{"a":1E5,"session":"s"}',
    "float-exponent-lower": b'{"a":1e5,"session":"s"}',
    "float-trailing-zero": b'{"a":1.50,"session":"s"}',
    "repeated-key": b'{"a":1,"a":2,"session":"s"}',
    "nested-key-order": b'{"a":{"y":1,"x":2},"session":"s"}',
    "2^64": b'{"a":18446744073709551616,"session":"s"}',
    "19-digit-negative-past-i64": b'{"a":-9223372036854775809,"session":"s"}',
}
# Record texts orjson reads (or would read) differently from minsky's careful decoder, or that
# no store can hold: never a canonical form.
HOSTILE = {
    "negative-zero": b'{"a":-0,"session":"s"}',
    "negative-zero-in-list": b'{"a":[1,-0],"session":"s"}',
    "nan": b'{"a":NaN,"session":"s"}',
    "1e400": b'{"a":1e400,"session":"s"}',
    "lone-surrogate": b'{"a":"\\ud83d","session":"s"}',
    "nul": b'{"a":"x\\u0000y","session":"s"}',
    "4301-digits": b'{"a":' + b"9" * 4301 + b',"session":"s"}',
    "deep": b'{"a":' + b"[" * 300 + b"]" * 300 + b',"session":"s"}',
}
CANONICAL_TOO = {  # canonical forms with awkward values: proven, and equal to the slow path
    "negative-zero-float": b'{"a":-0.0,"session":"s"}',
    "u64-max": b'{"a":18446744073709551615,"session":"s"}',
    "i64-min": b'{"a":-9223372036854775808,"session":"s"}',
    "escaped-control": b'{"a":"\\u001f","session":"s"}',
    "escaped-quote": b'{"a":"\\"\\\\","session":"s"}',
    "raw-non-ascii": '{"a":"😀 ü \u2028","session":"s"}'.encode(),
    "float": b'{"a":1.5,"b":1.0,"c":5e-324,"session":"s"}',
    "empty": b'{"a":{},"b":[],"session":"s"}',
}


def typed(value: Any) -> bytes:
    """A decoded value with its types and key order (``1`` vs ``1.0``; ``-0.0``; tokens as found)."""
    return as_found_bytes(value)


def slow(raw: bytes) -> Any:
    return loads(raw.decode("utf-8", "surrogateescape"))


def check_proof(raw: bytes) -> Any:
    """``canonical_object`` is None or exactly what the slow path decodes, and ``raw`` its canonical form."""
    fast = canonical_object(raw)
    if fast is not None:
        expected = slow(raw)
        assert typed(fast) == typed(expected)
        assert canonical_bytes(expected) == raw
    return fast


@pytest.mark.parametrize("case", sorted(NOT_CANONICAL) + sorted(HOSTILE))
def test_text_that_is_not_canonical_is_not_proven(case: str) -> None:
    assert check_proof({**NOT_CANONICAL, **HOSTILE}[case]) is None


@pytest.mark.parametrize("case", sorted(CANONICAL_TOO))
def test_canonical_text_is_proven_and_decodes_as_the_slow_path(case: str) -> None:
    assert check_proof(CANONICAL_TOO[case]) is not None


@pytest.mark.parametrize("case", sorted(KEPT) + sorted(REFUSED))
def test_the_hostile_corpus_is_never_proven_wrongly(case: str) -> None:
    field = KEPT[case] if case in KEPT else REFUSED[case][0]
    raw = b'{"session":"s","v":' + field + b"}"
    check_proof(raw)
    if case in KEPT:  # its canonical form: proven or not (orjson holds no integer past 64 bits), never wrong
        check_proof(canonical_bytes(slow(raw)))


def test_a_json_array_or_scalar_is_not_a_record() -> None:
    assert canonical_object(b"[1,2]") is None
    assert canonical_object(b'"s"') is None
    assert canonical_object(b"null") is None


# -- through a row: the record read, fast or slow, is the same ------------------------------

TABLE = Table([Column("session"), Column("repo_name"), Column("record"), Column("record_digest")])


def row_with(text: str) -> dict[str, Any]:
    """A row as minsky writes it, its ``record`` text then replaced: the cells' digest still matches."""
    return original.row_for(TABLE, {"session": "s"}, text)


def same_as_slow_path(text: str) -> None:
    row = row_with(text)
    record = original.read_record(TABLE, row, "here")
    expected = record_from_dict(loads(text), where="here: ")
    assert typed(record_to_dict(record)) == typed(record_to_dict(expected))
    assert record_problem(record) == record_problem(expected)
    assert digest_form(record) == digest_form(expected)
    if record_problem(expected) is None:
        assert canonical(record) == canonical_bytes(loads(text))
    else:
        with pytest.raises(UnrepresentableError):
            canonical(record)


@pytest.mark.parametrize("case", sorted(NOT_CANONICAL) + sorted(HOSTILE) + sorted(CANONICAL_TOO))
def test_a_row_reads_as_the_slow_path_reads_it(case: str) -> None:
    raw = {**NOT_CANONICAL, **HOSTILE, **CANONICAL_TOO}[case]
    text = raw.decode("utf-8", "surrogatepass")
    same_as_slow_path(text)


def test_a_non_canonical_record_text_is_re_encoded_not_trusted() -> None:
    text = '{"session":"s","b":1,"a":2}'
    record = original.read_record(TABLE, row_with(text), "here")
    assert canonical(record) == b'{"a":2,"b":1,"session":"s"}'
    record = original.read_record(TABLE, row_with('{"a":-0,"session":"s"}'), "here")
    with pytest.raises(UnrepresentableError, match="-0"):
        canonical(record)


def test_an_edited_row_is_merged_and_its_text_not_kept_as_canonical() -> None:
    text = '{"repoName":"r","session":"s"}'
    table = Table([Column("session"), Column("repo_name"), Column("record"), Column("record_digest")])
    row = original.row_for(table, loads(text), text)
    row["repo_name"] = "edited"  # by someone else: the digest no longer matches
    record = original.read_record(table, row, "here")
    assert canonical(record) == b'{"repoName":"edited","session":"s"}'


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=values,
    sort_keys=st.booleans(),
    ensure_ascii=st.booleans(),
    compact=st.booleans(),
)
def test_any_record_text_reads_as_the_slow_path_reads_it(
    value: Any, sort_keys: bool, ensure_ascii: bool, compact: bool
) -> None:
    # The value as a foreign writer leaves it (tokens, surrogates as escapes), and re-encoded in
    # several forms, one of which is canonical when the value is representable.
    texts = [b'{"session":"s","v":' + as_text(value) + b"}"]
    try:
        decoded = loads(texts[0])
        texts.append(
            json.dumps(
                decoded,
                sort_keys=sort_keys,
                ensure_ascii=ensure_ascii,
                separators=(",", ":") if compact else None,
            ).encode("utf-8", "surrogatepass")
        )
        texts.append(canonical_bytes(decoded))
    except (UnrepresentableError, TypeError, ValueError, RecursionError):
        pass
    for raw in texts:
        check_proof(raw)
        same_as_slow_path(raw.decode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("data", SAMPLE_DICTS, ids=lambda d: str(d.get("session")))
def test_the_sample_records_are_proven_through_a_sqlite_store(tmp_path: Path, data: dict[str, Any]) -> None:
    store = SqliteStore(tmp_path / "s.db")
    record = record_from_dict(json.loads(json.dumps(data)))
    store.insert(record)  # every sample is storable (the refusals are tested above, text by text)
    (read,) = list(store.read())
    try:  # an integer past 64 bits: orjson cannot prove it, the slow path reads it
        orjson.dumps(record_to_dict(record))
        big_int = False
    except TypeError:
        big_int = True
    assert ("canonical" in read._memo) is not big_int  # proven on read: never encoded again
    assert canonical(read) == canonical_bytes(record_to_dict(record))
    # The row's record text edited by hand into another form with the same meaning: not trusted.
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("UPDATE sessions SET record = ?", (json.dumps(record_to_dict(record), indent=1),))
    conn.close()
    (again,) = list(store.read())
    assert "canonical" not in again._memo
    assert canonical(again) == canonical(record)


# -- the JSON-text cells: the inlined encoder is compact_bytes, refusals included ----------------


def same_json_text(value: Any) -> None:
    try:
        expected: str | None = compact_bytes(value).decode("utf-8", "surrogatepass")
    except UnrepresentableError:
        expected = None
    if expected is None:
        with pytest.raises(UnrepresentableError):
            original._json_text(value)
    else:
        assert original._json_text(value) == expected


@pytest.mark.parametrize(
    "value",
    ["x\x00y", {"a": ["\x00"]}, "\\u0000", {"\x00": 1}, "a\\", 2**64, -(2**63) - 1, [1.5, None, True], "\ud83d"],
    ids=repr,
)
def test_a_json_cell_is_compact_bytes_or_refused_alike(value: Any) -> None:
    same_json_text(value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=values)
def test_any_json_cell_is_compact_bytes_or_refused_alike(value: Any) -> None:
    try:
        decoded = loads(b'{"v":' + as_text(value) + b"}")["v"]
    except ValueError:
        return
    same_json_text(decoded)
