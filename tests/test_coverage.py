"""--verify's check against the source's own cells, made in one pass over the rows.

``uncovered`` skips ``normal`` for a cell that is, type and value, the projected one: it must
say exactly what the column-by-column comparison says (kept below as the reference), on
every layout of the original's corpus, hand-made and generated tables, hostile records and
hostile cells. ``store_coverage`` with a migration's digests checks each row against the
record the copy read from it; a reader that yields something else than ``read_row`` (a
backend whose ``read()`` drops a column) must still be caught, and a row changed since the
copy must not be reported.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minsky import original
from minsky.codec import digest_form, record_from_dict, record_to_dict
from minsky.migrate import Endpoint, migrate
from minsky.model import SessionRecord
from minsky.original import KEY, Table
from minsky_backend_json import SPEC as JSON_SPEC
from minsky_backend_sqlite.store import SqliteStore
from test_original_rows import driver_values, handmade_tables, hostile_records, outcome, records_for, sqlite_tables
from test_original_rows import tables as generated_tables
from test_original_sql import LAYOUTS, build


def ref_uncovered(table: Table, row: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
    """``uncovered`` as of d3a07fa: every non-NULL cell through ``normal``."""
    again = original.project_lenient(table, data)
    missing = []
    for column in table.data_columns:
        value = row.get(column.name)
        key = table.keys[column.name]
        if value is not None and original.normal(column, key, value) != original.normal(
            column, key, again.get(column.name)
        ):
            missing.append(column.name)
    return missing


def same(table: Table, row: Mapping[str, Any], data: Mapping[str, Any]) -> None:
    got = outcome(lambda: original.uncovered(table, row, data))
    expected = outcome(lambda: ref_uncovered(table, row, data))
    if outcome(lambda: original.project_lenient(table, data))[0] == "raised":
        expected = ("value", [])  # a record no table holds: its row is left to the copy's rejection
    assert got == expected, (row, data)


def rows_for(table: Table, data: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The row minsky would write for ``data``, and that row with each cell made hostile."""
    try:
        row = original.project_lenient(table, data)
    except Exception:  # a value no cell can hold: the key alone
        row = {c.name: None for c in table.data_columns} | {KEY: data[KEY]}
    yield row
    for name, value in row.items():
        for hostile in (None, True, 1, 1.0, -0.0, 0.0, str(value), '{"v": 1}', "", b"x"):
            yield {**row, name: hostile}


def test_the_quick_comparison_says_what_normal_says_on_every_table() -> None:
    tables = list(sqlite_tables())
    assert len(tables) > 1, "the original's corpus is missing: set MINSKY_SHARED_DIR"
    for _, table, rows in tables + [(n, t, []) for n, t in handmade_tables()]:
        records = list(hostile_records())
        for data in records:
            if not isinstance(data.get(KEY), str):
                continue
            for row in rows_for(table, data):
                same(table, row, data)
        for row in rows:  # the corpus's own rows, the original's (no digest, no record) among them
            for data in records[:200]:
                same(table, row, data)
            if isinstance(row.get(KEY), str):
                same(table, row, original.read_row(table, row))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_quick_comparison_says_what_normal_says_on_any_table(data: st.DataObject) -> None:
    table = data.draw(generated_tables())
    record = data.draw(records_for(table))
    for row in list(rows_for(table, record))[:12]:
        same(table, row, record)
    row = data.draw(st.fixed_dictionaries({n: st.none() | driver_values for n in table.names}))
    same(table, row, record)


# -- the check in a migration ---------------------------------------------------------------


class DroppingRead(SqliteStore):
    """A backend whose ``read()`` loses a column after ``read_row`` (``get`` still has it)."""

    def read(self) -> Iterator[SessionRecord]:
        for record in super().read():
            data = dict(record_to_dict(record))
            data.pop("prBranch", None)
            yield record_from_dict(data)


class DroppingDecode(SqliteStore):
    """A backend whose every reader loses a column after ``read_row``."""

    def _decode(self, table: Table, row: tuple[object, ...]) -> SessionRecord:
        data = dict(record_to_dict(super()._decode(table, row)))
        data.pop("prBranch", None)
        return record_from_dict(data)


def migrated(source: SqliteStore, tmp_path: Path) -> list[str]:
    target = JSON_SPEC.open({"path": str(tmp_path / "out.json")})
    report = migrate(Endpoint("sqlite", source), Endpoint("json", target), verify=True)
    assert report.verification is not None
    assert report.verification.ok is not bool(report.verification.uncovered)
    return report.verification.uncovered


@pytest.mark.parametrize("store_class", [DroppingRead, DroppingDecode])
def test_a_reader_that_drops_a_column_after_read_row_fails_verify(tmp_path: Path, store_class: type) -> None:
    """read_row gives every column; what the migration read lacks one: the one pass over the rows
    must not trust read_row for what was read."""
    db = build(tmp_path / "sessions.db", "sqlite-2025-08-06-camel-pr")
    gaps = migrated(store_class(db), tmp_path)
    assert gaps and all("'prBranch'" in gap for gap in gaps), gaps
    assert any("'task-md#102'" in gap for gap in gaps), gaps


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_verifies_clean(tmp_path: Path, layout: str) -> None:
    assert migrated(SqliteStore(build(tmp_path / "sessions.db", layout)), tmp_path) == []


def digests_of(store: SqliteStore) -> dict[str, bytes]:
    return {r.session: hashlib.sha256(digest_form(r)).digest()[:8] for r in store.read()}


def test_a_row_changed_since_the_copy_is_checked_against_the_reader_not_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = build(tmp_path / "sessions.db", "sqlite-2025-08-06-camel-pr")
    store = SqliteStore(db)
    read = digests_of(store)
    name = next(iter(read))
    conn = sqlite3.connect(db)
    conn.execute('UPDATE sessions SET "prBranch" = ? WHERE session = ?', ("changed-later", name))
    conn.execute("DELETE FROM sessions WHERE session = ?", (list(read)[-1],))
    conn.commit()
    conn.close()
    assert original.store_coverage(store, 20, read.get) == []
    # The same rows read by a reader that drops the column: the changed row, and every row.
    lossy = DroppingRead(db)
    assert any(repr(name) in gap for gap in original.store_coverage(lossy, 20, read.get))
    monkeypatch.setattr(original, "_LATER", 2)  # more rows to look at again than it keeps
    assert len(original.store_coverage(lossy, 20, digests_of(lossy).get)) > 2
    assert original.store_coverage(store, 20, digests_of(store).get) == []


def test_a_row_no_reader_yields_is_reported(tmp_path: Path) -> None:
    db = build(tmp_path / "sessions.db", "sqlite-2025-08-06-camel-pr")

    class Skipping(SqliteStore):
        def read(self) -> Iterator[SessionRecord]:
            yield from list(super().read())[1:]

        def get(self, name: str) -> SessionRecord | None:
            return None if name == first else super().get(name)

    store = Skipping(db)
    first = next(SqliteStore(db).read()).session
    for digests in (digests_of(store).get, None):
        assert original.store_coverage(store, 20, digests) == [f"session {first!r}: the row was not read at all"]


@pytest.mark.parametrize("again", [None, "changed-again"])
def test_a_row_changed_again_while_it_is_checked_is_not_reported(tmp_path: Path, again: str | None) -> None:
    """A row changed since the copy is looked at again; a writer changing it once more between the
    pass over the cells and the pass of read() must not make a gap out of the cell it replaced."""
    db = build(tmp_path / "sessions.db", "sqlite-2025-08-06-camel-pr")
    read = digests_of(SqliteStore(db))
    name = next(iter(read))

    def change(value: str | None) -> None:
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            conn.execute('UPDATE sessions SET "prBranch" = ? WHERE session = ?', (value, name))

    class ChangedDuringTheCheck(SqliteStore):
        reads = 0

        def read(self) -> Iterator[SessionRecord]:
            self.reads += 1
            if self.reads == 1:  # the pass of read() after the pass over the cells
                change(again)
            return super().read()

    class Lossy(ChangedDuringTheCheck, DroppingRead):
        pass

    change("changed-after-the-copy")
    assert original.store_coverage(ChangedDuringTheCheck(db), 20, read.get) == []
    if again is not None:  # the same race with a reader that drops the column: still reported
        change("changed-after-the-copy")
        gaps = original.store_coverage(Lossy(db), 20, read.get)
        assert any(repr(name) in gap and "'prBranch'" in gap for gap in gaps), gaps


def test_a_record_no_store_can_hold_does_not_stop_the_check_of_the_others(tmp_path: Path) -> None:
    """One row with a number no store holds exactly (the copy rejects its record, by name): the
    rows of a reader that drops a column are still reported."""
    db = build(tmp_path / "sessions.db", "sqlite-2025-08-06-camel-pr")
    first = next(SqliteStore(db).read()).session
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute('UPDATE sessions SET "prState" = ? WHERE session = ?', ("1e400", first))
    target = JSON_SPEC.open({"path": str(tmp_path / "out.json")})
    report = migrate(Endpoint("sqlite", DroppingRead(db)), Endpoint("json", target), verify=True)
    assert [r["session"] for r in report.rejected] == [first]
    assert report.verification is not None and not report.verification.ok
    assert any("'prBranch'" in gap for gap in report.verification.uncovered), report.verification.uncovered


class DroppingRecordKey(SqliteStore):
    """A backend whose ``read()`` loses a key only the ``record`` column holds (no cell shows it)."""

    def read(self) -> Iterator[SessionRecord]:
        for record in super().read():
            data = dict(record_to_dict(record))
            data.pop("notes", None)
            yield record_from_dict(data)


def test_a_reader_that_drops_a_key_only_the_record_column_holds_fails_verify(tmp_path: Path) -> None:
    db = build(tmp_path / "sessions.db", "sqlite-2025-08-06-camel-pr")
    store = SqliteStore(db)
    records = [record_from_dict({**record_to_dict(r), "notes": f"kept {i}"}) for i, r in enumerate(store.read())]
    with store.bulk_writer("overwrite") as writer:
        writer.write(records)
    assert all("notes" in record_to_dict(r) for r in SqliteStore(db).read())
    gaps = migrated(DroppingRecordKey(db), tmp_path)
    assert gaps and all("key 'notes' of the row's record is not in the record read" in gap for gap in gaps), gaps
    (tmp_path / "again").mkdir()
    assert migrated(SqliteStore(db), tmp_path / "again") == []
