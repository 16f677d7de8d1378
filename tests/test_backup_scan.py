"""The streaming backup reader gives exactly what ``minsky.codec.loads`` gives (what a JSON
store read gives: ``NaN`` and ``1e400`` kept as found), whatever the layout, the whitespace
and where the read chunks happen to cut the text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minsky.backup import open_backup
from minsky.backup import scan as scan_module
from minsky.codec import as_found_bytes, loads, record_to_dict
from minsky.errors import StoreError

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
records = st.lists(
    st.builds(
        lambda name, rest: {**rest, "session": name},
        st.text(min_size=1, max_size=20),
        st.dictionaries(st.text(max_size=10), values, max_size=5),
    ),
    max_size=8,
)


def layouts(items: list[dict[str, Any]], indent: int | None) -> dict[str, str]:
    dump = lambda value: json.dumps(value, indent=indent, ensure_ascii=indent is None)  # noqa: E731
    return {
        "array": dump(items),
        "store": dump({"sessions": items, "baseDir": "/b"}),
        "wrapper": dump({"timestamp": "t", "version": "1.0", "data": {"sessions": items, "baseDir": "/b"}}),
    }


def canonical(items: list[Any]) -> list[bytes]:
    return [as_found_bytes(item, sort_keys=True) for item in items]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=records, indent=st.sampled_from([None, 0, 2]), chunk=st.sampled_from([1, 3, 7, 64, 1 << 20]))
def test_streamed_records_equal_json_loads(
    items: list[dict[str, Any]], indent: int | None, chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan_module, "CHUNK", chunk)
    for form, text in layouts(items, indent).items():
        path = tmp_path / f"{form}.json"
        path.write_text(text, "utf-8")
        with open_backup(path) as backup:
            got = [record_to_dict(r) for r in backup.read()]
            assert backup.layout.form == form and backup.count() == len(items)
        assert canonical(got) == canonical(loads(json.dumps(items)))


@pytest.mark.parametrize(
    "text",
    ['{"sessions": [{"session": "a"}', '[{"session": "a"},]', '[{"session": "a"}] x', "", "   ",
     '{"sessions": 3}', "\x00" * 100, '{"sessions": [], "data": {"sessions": []}}', '[' * 100_000 + ']' * 100_000],
)  # fmt: skip
def test_broken_backups_are_one_line_store_errors(text: str, tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(text)
    with pytest.raises(StoreError) as info:
        open_backup(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
