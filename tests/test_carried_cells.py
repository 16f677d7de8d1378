"""A writer takes the cells the record's reader proved (``minsky.original.carried``) only where
that gives the row it would have made itself: every cell the same value (byte for byte, or,
for JSON text written in the record's own key order, the same JSON), the same record text, a
digest of the row's own cells, and the same record read back. On minsky's own SQLite table
into PostgreSQL's, on the corpus's tables, and on generated pairs of tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minsky import original
from minsky.codec import canonical, canonical_text, proven_cells, record_from_dict, record_to_dict
from minsky.errors import RecordError
from minsky.model import SessionRecord
from minsky.original import DIGEST, KEY, RECORD, Column, Table, carried
from minsky.testing.records import SAMPLE_DICTS
from minsky.values import problem
from test_original_rows import hostile_records, outcome, records_for, sqlite_tables, tables


def read_back(table: Table, data: Mapping[str, Any]) -> SessionRecord | None:
    """``data`` as minsky writes it into ``table`` (its dict in its own key order), then read
    from the driver's tuple; None when the table cannot hold it."""
    if problem(dict(data)) is not None:  # refused before any writer sees it (NaN, 1e400, a lone surrogate)
        return None
    try:
        record = record_from_dict(dict(data))
        row = original.row_writer(table, table.names)(record_to_dict(record), canonical_text(record))
        return original.row_reader(table)(row, "here", None)
    except (RecordError, TypeError, ValueError):  # refused (a generated table's filler, read without a record)
        return None


def check(source: Table, target: Table, record: SessionRecord) -> str:
    """The carried row against the one ``target``'s writer makes; how they compare."""
    columns = [n for n in target.names if n != "minsky_seq"] + ["not-a-column"]
    made = outcome(lambda: original.row_writer(target, columns)(record_to_dict(record), canonical_text(record)))
    got = outcome(lambda: carried.record_writer(target, columns)(record))
    if made[0] == "raised":
        assert got == made  # refused alike: the same column, the same words
        return "refused"
    assert got[0] == "value", got
    row, expected = dict(zip(columns, got[1], strict=True)), dict(zip(columns, made[1], strict=True))
    for column, key, _ in target.cell_plan:
        assert original.normal(column, key, row[column.name]) == original.normal(column, key, expected[column.name])
    assert row.get(RECORD) == expected.get(RECORD)
    assert row["not-a-column"] is None
    if target.has_digest:
        assert row[DIGEST] == original.cells_digest(target, row)
    if target.has_record and target.has_digest:  # read back: the same record, proven
        again = original.row_reader(target)(tuple(row.get(n) for n in target.names), "there", None)
        assert canonical(again) == canonical(record)
        assert record_to_dict(again) == record_to_dict(record)
    if proven_cells(record) is None or carried.carrier(proven_cells(record)[0], target, columns) is None:
        assert row == expected  # nothing carried: the writer's own row
        return "made"
    return "same" if row == expected else "reordered"


# minsky's own tables: SQLite's, and PostgreSQL's (the same columns, created_at a timestamp).
SQLITE_OWN = next(t for layout, t, _ in sqlite_tables() if layout == "minsky")
POSTGRES_OWN = Table([Column(c.name, "timestamp") if c.name == "created_at" else c for c in SQLITE_OWN.columns])


def reversed_keys(value: Any) -> Any:
    """``value`` with every object's keys in reverse order (a JSON store's records keep theirs)."""
    if isinstance(value, dict):
        return {k: reversed_keys(v) for k, v in reversed(value.items())}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


def test_minsky_sqlite_rows_carry_into_postgres_and_its_own_table() -> None:
    ways: dict[str, int] = {}
    records = [*SAMPLE_DICTS, *hostile_records()]
    for data in [*records, *map(reversed_keys, records)]:
        record = read_back(SQLITE_OWN, data)
        if record is None:
            continue
        for target in (POSTGRES_OWN, SQLITE_OWN):
            way = check(SQLITE_OWN, target, record)
            ways[way] = ways.get(way, 0) + 1
    # Rows written from dicts in the original's key order keep that order's JSON text; rows
    # whose cells are the canonical ones are the writer's own, byte for byte.
    assert min(ways.get("same", 0), ways.get("reordered", 0)) > 10, ways


def test_a_record_in_its_own_key_order_keeps_its_json_cells() -> None:
    data = {"session": "s", "prState": {"z": 1, "a": [2, {"y": 3, "b": 4}]}, "createdAt": "2025-01-02T03:04:05Z"}
    record = read_back(SQLITE_OWN, data)
    assert record is not None and proven_cells(record) is not None
    columns = [n for n in POSTGRES_OWN.names if n != "minsky_seq"]
    row = dict(zip(columns, carried.record_writer(POSTGRES_OWN, columns)(record), strict=True))
    assert row["pr_state"] == '{"z":1,"a":[2,{"y":3,"b":4}]}'  # as the source row holds it
    assert row["created_at"] == "2025-01-02T03:04:05.000Z"  # made for the timestamp column
    assert row[DIGEST] == original.cells_digest(POSTGRES_OWN, row)


def test_the_corpus_tables_carry_into_minsky_own() -> None:
    for _, source, _ in sqlite_tables():
        for data in SAMPLE_DICTS:
            record = read_back(source, data)
            if record is not None:
                for target in (POSTGRES_OWN, SQLITE_OWN, source):
                    check(source, target, record)


def changed(draw: st.DrawFn, table: Table) -> Table:
    """Another table like ``table``: columns kept, dropped, retyped or loosened, one added."""
    columns: list[Column] = []
    for column in table.columns:
        how = draw(st.sampled_from(["keep", "keep", "drop", "kind", "null"])) if column.data else "keep"
        if how == "drop" and column.name != KEY:
            continue
        if how == "kind":
            column = Column(column.name, draw(st.sampled_from(["text", "timestamp", "json", "any"])), column.not_null)
        elif how == "null":
            column = Column(column.name, column.kind, not column.not_null, column.max_length, column.int_bits)
        columns.append(column)
    if draw(st.booleans()):
        columns.append(Column(draw(st.sampled_from(["branch", "pr_state", "createdAt", "zz"])), "text"))
    unique = {c.name: c for c in columns}
    return Table(draw(st.permutations(list(unique.values()))))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_pair_of_tables_carries_only_what_the_writer_makes(data: st.DataObject) -> None:
    source = data.draw(tables())
    target = data.draw(st.composite(lambda draw: changed(draw, source))()) if data.draw(st.booleans()) else source
    for _ in range(3):
        record = read_back(source, data.draw(records_for(source)))
        if record is not None:
            check(source, target, record)
