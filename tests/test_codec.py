"""The record model and converter: exact round trips, canonical form, digests."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from minsky.codec import StoreDigest, canonical, canonical_bytes, record_from_dict, record_to_dict
from minsky.errors import RecordError
from minsky.model import MISSING, SessionRecord


def test_every_sample_record_round_trips_exactly(shared_sample: Path) -> None:
    store = json.loads(shared_sample.read_text("utf-8"))
    for item in store["sessions"]:
        assert record_to_dict(record_from_dict(item)) == item


def test_missing_null_empty_and_false_stay_distinct() -> None:
    record = record_from_dict({"session": "s", "taskId": None, "branch": "", "prApproved": False})
    assert record.task_id is None and record.branch == "" and record.pr_approved is False
    assert record.repo_name is MISSING
    assert record_to_dict(record) == {"session": "s", "taskId": None, "branch": "", "prApproved": False}


def test_unknown_keys_are_carried_at_every_level() -> None:
    data = {
        "session": "s",
        "future": [1, {"a": None}],
        "pullRequest": {"number": 1, "draftReason": "x", "github": {"id": 2**70, "newThing": True}},
        "prState": {"exists": False, "extra": "field named extra"},
    }
    record = record_from_dict(data)
    assert record.extra == {"future": [1, {"a": None}]}
    assert record_to_dict(record) == data


def test_nested_objects_of_an_unexpected_shape_are_kept_as_they_are() -> None:
    data = {"session": "s", "prState": "not-an-object", "pullRequest": None, "github": [1, 2]}
    assert record_to_dict(record_from_dict(data)) == data


def test_record_without_a_session_name_is_rejected_with_its_position() -> None:
    for bad in ({}, {"session": ""}, {"session": 12}, ["session"]):
        try:
            record_from_dict(bad, where="sessions[3]: ")
        except RecordError as exc:
            assert str(exc).startswith("sessions[3]: ")
        else:
            raise AssertionError(f"{bad!r} was accepted")


def test_canonical_form_is_sorted_compact_utf8() -> None:
    record = record_from_dict({"session": "ü", "b": 1, "a": [1, 2]})
    assert canonical(record) == '{"a":[1,2],"b":1,"session":"ü"}'.encode()


def test_store_digest_ignores_order_but_not_content() -> None:
    a, b = SessionRecord(session="a"), SessionRecord(session="b", branch="x")
    assert StoreDigest.of([a, b]).hexdigest == StoreDigest.of([b, a]).hexdigest
    assert StoreDigest.of([a, b]).hexdigest != StoreDigest.of([a, SessionRecord(session="b", branch="y")]).hexdigest
    assert StoreDigest.of([a]).count == 1


@given(st.lists(st.binary(min_size=32, max_size=32) | st.sampled_from([b"\xff" * 32, b"\x00" * 32]), max_size=20))
def test_a_digest_added_as_bytes_counts_as_added_as_hex(digests: list[bytes]) -> None:
    as_hex, as_bytes = StoreDigest(), StoreDigest()
    for digest in digests:
        as_hex.add(digest.hex())
        as_bytes.add_bytes(digest)
    assert (as_bytes.count, as_bytes.total, as_bytes.hexdigest) == (as_hex.count, as_hex.total, as_hex.hexdigest)
    assert as_bytes == as_hex


def _text(**kwargs: int) -> st.SearchStrategy[str]:
    """Text a store can hold (U+0000 is refused by rule: test_value_properties.py)."""
    return st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), **kwargs)


json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _text()
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
known_or_unknown_keys = st.sampled_from(
    ["repoName", "taskId", "prApproved", "prState", "pullRequest", "github", "created", "x", "endedAt"]
) | _text(max_size=10)


@settings(max_examples=300)
@given(_text(min_size=1), st.dictionaries(known_or_unknown_keys, json_value, max_size=6))
def test_any_json_record_round_trips(name: str, fields: dict) -> None:  # type: ignore[type-arg]
    data = {**fields, "session": name}
    record = record_from_dict(data)
    assert record_to_dict(record) == data
    assert canonical(record_from_dict(json.loads(canonical(record)))) == canonical_bytes(data)
