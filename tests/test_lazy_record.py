"""A record read from a store is built lazily (``record_from_dict`` sets ``session`` and its
memo; the other fields are structured on first access), and is indistinguishable from one
structured eagerly, whatever is done with it first."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minsky import codec
from minsky.codec import UnrepresentableError, canonical, converter, record_digest, record_from_dict, record_to_dict
from minsky.model import MODEL_CLASSES, SessionRecord
from minsky.testing.records import SAMPLE_DICTS


def _text(**kwargs: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(blacklist_categories=("Cs",)), **kwargs)


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | _text(max_size=6)
    | st.sampled_from(["\ud800", "a\x00", *(codec.loads(t) for t in ("1e400", "-0", "NaN"))])  # unrepresentable
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _keys(cls: type) -> list[str]:
    return [codec.camel(f.name) for f in attrs.fields(cls) if f.name not in ("extra", "_memo", "session")]


def _object(cls: type, depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object shaped like ``cls``: its keys (nested ones as objects or anything else),
    a key named ``extra``, and unknown ones."""
    nested = {codec.camel(f.name): codec._nested_class(f) for f in attrs.fields(cls)}
    key = st.sampled_from([*_keys(cls), "extra"]) | _text(max_size=8).filter(lambda k: k != "session")

    def value_for(k: str) -> st.SearchStrategy[Any]:
        inner = nested.get(k)
        if inner is not None and depth < 3:
            return _object(inner, depth + 1) | json_value
        return json_value

    return st.lists(key, max_size=7, unique=True).flatmap(
        lambda ks: st.fixed_dictionaries({k: value_for(k) for k in ks})
    )


records = st.builds(
    lambda fields, name, last: {**fields, "session": name} if last else {"session": name, **fields},
    _object(SessionRecord, 0),
    _text(min_size=1, max_size=8),
    st.booleans(),
)


def _eager(data: dict[str, Any]) -> SessionRecord:
    """What ``record_from_dict`` built before it was lazy: every field structured at once."""
    record: SessionRecord = converter.structure(data, SessionRecord)
    record._memo["dict"] = data
    return record


def _outcome(action: Callable[[SessionRecord], Any], record: SessionRecord) -> Any:
    try:
        return "value", action(record)
    except Exception as exc:  # the same exception, with the same message, is the point
        return "raised", type(exc), str(exc)


FIELDS = [f.name for f in attrs.fields(SessionRecord)]

ACTIONS: dict[str, Callable[[SessionRecord], Any]] = {
    "repr": repr,
    "str": str,
    "hash": hash,
    "active": lambda r: r.active,
    "extra": lambda r: r.extra,
    "asdict": lambda r: attrs.asdict(r),
    "astuple": lambda r: attrs.astuple(r, retain_collection_types=True),
    "asdict-shallow": lambda r: list(attrs.asdict(r, recurse=False).items()),
    "evolve": lambda r: repr(attrs.evolve(r, branch="b")),
    "evolve-session": lambda r: attrs.evolve(r, session="other"),
    "unstructure": lambda r: list(converter.unstructure(r).items()),
    "record_to_dict": lambda r: list(record_to_dict(r).items()),
    "canonical": canonical,
    "digest": record_digest,
    "copy": lambda r: repr(copy.copy(r)),
    "deepcopy": lambda r: repr(copy.deepcopy(r)),
    **{f"pickle-{p}": (lambda r, p=p: pickle.dumps(r, protocol=p)) for p in range(pickle.HIGHEST_PROTOCOL + 1)},
    "unpickled": lambda r: repr(pickle.loads(pickle.dumps(r))),
    "dir": dir,
    "no-such-attribute": lambda r: r.no_such_attribute,  # type: ignore[attr-defined]
    "hasattr": lambda r: (hasattr(r, "no_such_attribute"), hasattr(r, "ended_at"), hasattr(r, "__dict__")),
    "getattr-default": lambda r: getattr(r, "nothing_here", "default"),
    "setattr": lambda r: setattr(r, "branch", "x"),
    "delattr": lambda r: delattr(r, "branch"),
    "nested": lambda r: [
        (type(v).__name__, v if type(v) not in MODEL_CLASSES else attrs.asdict(v))
        for v in (r.pr_state, r.pull_request, r.github)
    ],
    **{f"field-{name}": (lambda r, name=name: getattr(r, name)) for name in FIELDS if name != "_memo"},
}


@settings(max_examples=150, deadline=None)
@given(data=records, action=st.sampled_from(sorted(ACTIONS)), then=st.sampled_from(sorted(ACTIONS)))
def test_a_lazy_record_is_indistinguishable_from_an_eager_one(data: dict[str, Any], action: str, then: str) -> None:
    lazy, eager = record_from_dict(data), _eager(data)
    # Two actions in a row: the first one done to a lazy record is the one that structures it.
    for name in (action, then):
        assert _outcome(ACTIONS[name], lazy) == _outcome(ACTIONS[name], eager), name
    assert lazy == eager and eager == lazy
    assert repr(lazy) == repr(eager)
    assert pickle.dumps(lazy) == pickle.dumps(eager)


@settings(max_examples=100, deadline=None)
@given(a=records, b=records)
def test_lazy_records_compare_as_eager_ones_do(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert (record_from_dict(a) == record_from_dict(b)) == (_eager(a) == _eager(b))
    assert (record_from_dict(a) == _eager(b)) == (_eager(a) == _eager(b))
    assert (record_from_dict(a) != record_from_dict(b)) == (_eager(a) != _eager(b))


def test_every_sample_is_the_same_lazy_or_eager() -> None:
    for data in SAMPLE_DICTS:
        for name, action in ACTIONS.items():
            assert _outcome(action, record_from_dict(dict(data))) == _outcome(action, _eager(dict(data))), name


def test_a_record_read_structures_nothing_until_a_field_is_read() -> None:
    data = dict(SAMPLE_DICTS[2])  # nested pull request, PR state
    record = record_from_dict(data)
    unset = [f.name for f in attrs.fields(SessionRecord) if not _is_set(record, f.name)]
    assert unset == [f.name for f in attrs.fields(SessionRecord) if f.name not in ("session", "_memo")]
    assert record.session == data["session"]
    canonical(record)
    record_to_dict(record)
    record_digest(record)
    assert not _is_set(record, "pr_state")  # what a migration does needs no field
    assert record.pull_request.github.id == 2233445566778899001122  # type: ignore[union-attr]
    assert all(_is_set(record, f.name) for f in attrs.fields(SessionRecord))


def test_an_unrepresentable_record_is_lazy_too() -> None:
    data = codec.loads('{"session": "s", "prState": {"exists": 1e400}, "x": -0}')
    lazy = record_from_dict(data)
    with pytest.raises(UnrepresentableError):
        canonical(lazy)
    assert lazy == _eager(data) and repr(lazy) == repr(_eager(data)) and list(lazy.extra) == ["x"]


def test_a_record_being_unpickled_has_no_fields_yet() -> None:
    bare = SessionRecord.__new__(SessionRecord)  # as pickle and copy make one before __setstate__
    assert not hasattr(bare, "branch") and not hasattr(bare, "_memo")
    with pytest.raises(AttributeError, match="'SessionRecord' object has no attribute 'branch'"):
        bare.branch  # noqa: B018


def _is_set(record: SessionRecord, name: str) -> bool:
    try:
        object.__getattribute__(record, name)
    except AttributeError:
        return False
    return True
