"""The rows minsky writes into SQL tables, and the digests of rows it reads, are the same byte
for byte as the per-column loops they were generated from (``minsky.original``'s
``project``, ``cells_digest``, ``row_for`` and ``row_writer``, as of 2980e02, kept below as the
reference): on every table of the original's corpus and minsky's own, on hand-made tables of
every column kind, and on generated tables; with the corpus's records, awkward and hostile
ones, and generated ones. And the generated reader of a row (``row_reader``, which reads an
untouched row straight from the driver's tuple) reads or refuses every row exactly as
``read_record`` does: rows minsky wrote, rows changed since cell by cell, and rows with a
record or digest column that is not what minsky wrote."""

from __future__ import annotations

import contextlib
import datetime
import decimal
import hashlib
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ORIGINAL
from minsky import original
from minsky.codec import as_found_bytes, canonical, canonical_text, loads, record_from_dict, record_to_dict
from minsky.errors import RecordError
from minsky.original import KEY, Column, Table
from minsky.testing.records import SAMPLE_DICTS
from minsky_backend_sqlite import schema as sqlite_schema
from test_hostile_values import KEPT, REFUSED
from test_original_sql import AWKWARD

# -- the reference: the loops as they were ------------------------------------------------


def ref_project(table: Table, data: Mapping[str, Any]) -> dict[str, Any]:
    name = data[KEY]
    get = data.get
    out: dict[str, Any] = {}
    for column, key, convert in table.cell_plan:
        if convert is None:  # the session name
            if not isinstance(name, str) or not original._fits(column, name):
                raise RecordError(
                    f"{table.where(name[:60] + '…' if isinstance(name, str) else name, KEY)}: "
                    f"the name is longer than the column holds ({column.max_length} characters)",
                    hint="rename the session, or widen the column: "
                    f"ALTER TABLE {table.name} ALTER COLUMN {KEY} TYPE text",
                )
            out[KEY] = name
            continue
        value = get(key)
        if value is not None:
            value = convert(value)
        out[column.name] = original._filler(table, column, name) if value is None and column.not_null else value
    return out


def ref_cells_digest(table: Table, row: Mapping[str, Any]) -> str:
    parts = []
    for name, column, key, raw in table.digest_plan:
        value = row.get(name)
        if value is None:
            continue
        text = value if raw and isinstance(value, str) else str(original.normal(column, key, value))
        parts.append(f"{name}\x00{len(text)}\x00{text}")
    return hashlib.sha256("".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def ref_row_for(table: Table, data: Mapping[str, Any], record_text: str) -> dict[str, Any]:
    row = ref_project(table, data)
    if table.has_record:
        row[original.RECORD] = record_text
    if table.has_digest:
        row[original.DIGEST] = ref_cells_digest(table, row)
    return row


def outcome(action: Callable[[], Any]) -> Any:
    try:
        value = action()
    except Exception as exc:  # the same exception, message and hint are the point
        return "raised", type(exc), str(exc), getattr(exc, "hint", None)
    return "value", list(value.items()) if isinstance(value, dict) else value


def check(table: Table, data: Mapping[str, Any], record_text: str = "{}") -> bool:
    """Every generated function of ``table`` against the reference, on one record; whether
    the table could hold it."""
    assert outcome(lambda: original.project(table, data)) == outcome(lambda: ref_project(table, data))
    expected = outcome(lambda: ref_row_for(table, data, record_text))
    assert outcome(lambda: original.row_for(table, data, record_text)) == expected
    columns = [n for n in table.names if n != "minsky_seq"] + ["not-a-column"]
    writer = original.row_writer(table, columns)
    if expected[0] == "value":
        row = dict(expected[1])
        assert outcome(lambda: writer(data, record_text)) == ("value", tuple(row.get(c) for c in columns))
        assert original.cells_digest(table, row) == ref_cells_digest(table, row)
        return True
    assert outcome(lambda: writer(data, record_text)) == expected
    return False


# -- tables ------------------------------------------------------------------------------


def sqlite_tables() -> Iterator[tuple[str, Table, list[dict[str, Any]]]]:
    """Every SQLite layout of the corpus and minsky's own table, with the rows they hold."""
    scripts = {p.stem: p.read_text("utf-8") for p in sorted((ORIGINAL / "sqlite").glob("*.sql"))}
    scripts["minsky"] = sqlite_schema.CREATE_TABLE
    for layout, script in scripts.items():
        conn = sqlite3.connect(":memory:")
        conn.executescript(script)
        table = sqlite_schema.table_of(conn)
        assert table is not None
        rows = [dict(zip(table.names, r, strict=True)) for r in conn.execute(sqlite_schema.select_sql(table))]
        conn.close()
        yield layout, table, rows


def col(name: str, kind: original.Kind = "text", not_null: bool = False, max_length: int | None = None) -> Column:
    return Column(name, kind, not_null, max_length)


HANDMADE = {
    "every-kind": [
        col("session", "text", True, 40),
        col("repo_name", "text", True, 12),
        col("repoUrl", "any", True),
        col("created_at", "timestamp", True),
        col("createdAt"),  # the exact name wins, the other arrives under its own
        col("task_id", "text", False, 8),
        Column("commit_count", "integer", False, None, 16),
        Column("agent_id", "integer", True, None, 32),
        col("ratio", "real"),
        col("pr_approved", "boolean", True),
        col("pr_state", "json", True),
        col("pull_request", "text", False, 60),
        col("github", "any"),
        col("remote", "json"),
        col("project_id", "uuid"),
        col("interface_binding", "other"),
        col("record"),
        col("record_digest"),
        col("minsky_seq", "integer"),
    ],
    "odd-names": [
        col("session", "any"),
        col("it's"),
        col('say "hi"', "json"),
        col("{braces}", "integer"),
        col("back\\slash", "timestamp"),
        col("new\nline"),
        col("ünï_cödé"),
        col("_leading_"),
        col("x__y"),
        col("a_b"),  # key "aB": sorted by name after "aZ", by key before it
        col("aZ", "integer"),
        col("record_digest"),
    ],
    "no-record": [col("session", "text", True), col("repo_name", "text", True), col("pr_state"), col("prApproved")],
    "json-not-null": [col("session"), col("pr_state", "text", True), col("github", "text", True, 3)],
    "refusing": [col("session"), col("repo_name", "text", True, 0), col("status", "other", True)],
}


def handmade_tables() -> Iterator[tuple[str, Table]]:
    for name, columns in HANDMADE.items():
        yield name, Table(columns)


# -- records -----------------------------------------------------------------------------

KEYS = ["repoName", "repoUrl", "createdAt", "taskId", "prApproved", "prState", "pullRequest", "github", "remote"]
KEYS += ["commitCount", "agentId", "ratio", "projectId", "status", "it's", "{braces}", "ünïCödé", "xY", "aB", "aZ"]

VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**15,
    2**31,
    2**63,
    -(2**63),
    2**80,
    0.5,
    -0.0,
    1e300,
    2.0**53,
    "",
    "x",
    "2025-01-20T10:30:00.000Z",
    "2024-11-02T17:45:12.5+02:00",
    "2025-08-10 09:00:00.5+00",
    "0001-01-01T00:00:00+14:00",
    "not a time",
    "4b0e8c4e-0f43-4b0e-9c1a-1b2c3d4e5f60",
    "4B0E8C4E-0F43-4B0E-9C1A-1B2C3D4E5F60",
    "a" * 70,
    "ü" * 13,
    "\ud800",
    "a\x00b",
    [],
    {},
    [1, "a", None, {"b": [True]}],
    {"number": 7, "github": {"id": 2**70}, "z": None, "a": 1},
    {"\ud83d": 1},
    *(loads(raw) for raw in KEPT.values()),
    *(loads(raw) for raw, _ in REFUSED.values() if len(raw) < 1000),
]


def hostile_records() -> Iterator[dict[str, Any]]:
    yield from (dict(d) for d in SAMPLE_DICTS)
    yield from (dict(d) for d in AWKWARD)
    for path in sorted((ORIGINAL / "expected").glob("*.jsonl")):
        yield from (json.loads(line) for line in path.read_text("utf-8").splitlines())
    for key in KEYS:
        for value in VALUES:
            yield {"session": "s", key: value}
    for name in (None, 7, "", "n" * 41, "\ud800", ["s"]):
        yield {"session": name, "repoName": "r"}
    yield {"repoName": "no session key"}


# -- the tests ---------------------------------------------------------------------------


def test_minsky_and_the_corpus_tables_write_what_they_wrote() -> None:
    tables = list(sqlite_tables())
    assert len(tables) > 1, f"the original's corpus is missing at {ORIGINAL}: set MINSKY_SHARED_DIR"
    for layout, table, rows in tables + [(n, t, []) for n, t in handmade_tables()]:
        held = sum(check(table, data) for data in hostile_records())
        assert (held == 0) if layout == "refusing" else (held > 100), (layout, held)
        for row in rows:  # the rows as the driver hands them back: their digest as read
            assert original.cells_digest(table, row) == ref_cells_digest(table, row)


def test_the_sqlite_writer_writes_what_it_wrote() -> None:
    for _, table, _ in sqlite_tables():
        columns = sqlite_schema.write_columns(table)
        for data in hostile_records():
            try:
                record = record_from_dict(data)
                text = canonical(record).decode("utf-8", "surrogatepass")
            except RecordError:
                continue
            expected = outcome(lambda: ref_row_for(table, data, text))  # noqa: B023 (called at once)
            if expected[0] == "value":
                expected = ("value", tuple(dict(expected[1]).get(c) for c in columns))
            assert outcome(lambda: sqlite_schema.to_row(table, record)) == expected  # noqa: B023


@pytest.mark.postgres
def test_the_postgres_writer_writes_what_it_wrote(postgres_server_url: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    from psycopg.conninfo import make_conninfo

    from minsky_backend_postgres import schema as pg_schema

    layouts: dict[str, list[Any]] = {
        p.stem: [p.read_text("utf-8")] for p in sorted((ORIGINAL / "postgres").glob("*.sql"))
    }
    layouts["minsky"] = [*pg_schema.V1, *pg_schema.V2]
    for layout, statements in layouts.items():
        name = f"minsky_rows_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            with psycopg.connect(make_conninfo(postgres_server_url, dbname=name), autocommit=True) as conn:
                for statement in statements:
                    conn.execute(statement)
                table = pg_schema.table_of(conn)
                assert table is not None, layout
            columns = pg_schema.write_columns(table)
            for data in hostile_records():
                try:
                    record = record_from_dict(data)
                    text = canonical(record).decode("utf-8", "surrogatepass")
                except RecordError:
                    check(table, data)
                    continue
                check(table, data, text)
                expected = outcome(lambda: ref_row_for(table, data, text))  # noqa: B023
                if expected[0] == "value":
                    expected = ("value", tuple(dict(expected[1]).get(c) for c in columns))
                assert outcome(lambda: pg_schema.to_row(table, record)) == expected, layout  # noqa: B023
            store_rows = list(pg_store_rows(make_conninfo(postgres_server_url, dbname=name)))
            for table, row in store_rows:
                assert original.cells_digest(table, row) == ref_cells_digest(table, row), layout
        finally:
            with psycopg.connect(postgres_server_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_store_rows(url: str) -> Iterator[tuple[Table, Mapping[str, Any]]]:
    from minsky_backend_postgres.store import PostgresStore

    store = PostgresStore(url)
    try:
        yield from store.source_rows()
    finally:
        store.close()


# Generated tables and records: any column kind, limit and name a table may have.

names = st.sampled_from(
    [
        "repoName",
        "repo_name",
        "createdAt",
        "created_at",
        "prState",
        "pr_state",
        "prApproved",
        "github",
        "it's",
        "a_b",
        "aZ",
    ]
) | st.text(min_size=1, max_size=6).filter(lambda n: n not in original.MINSKY_COLUMNS)  # those: ``extra_columns``
column_strategy = st.builds(
    Column,
    names,
    st.sampled_from(["text", "any", "integer", "real", "boolean", "timestamp", "json", "uuid", "other"]),
    st.booleans(),
    st.none() | st.integers(0, 40),
    st.sampled_from([16, 32, 64]),
)
extra_columns = st.lists(st.sampled_from(["record", "record_digest", "minsky_seq"]), unique=True)


@st.composite
def tables(draw: st.DrawFn) -> Table:
    session = draw(
        st.builds(Column, st.just(KEY), st.sampled_from(["text", "any"]), st.booleans(), st.none() | st.integers(0, 9))
    )
    data = draw(
        st.lists(column_strategy, max_size=8, unique_by=lambda c: c.name).filter(
            lambda cs: all(c.name != KEY for c in cs)
        )
    )
    extra = [Column(n, "integer" if n == "minsky_seq" else "text") for n in draw(extra_columns)]
    everything = [session, *data, *extra]
    return Table(draw(st.permutations(everything)))


cell_values = st.sampled_from(VALUES) | st.text(max_size=12) | st.integers() | st.floats(allow_nan=False)


@st.composite
def records_for(draw: st.DrawFn, table: Table) -> dict[str, Any]:
    keys = [*table.keys.values(), "other"]
    data: dict[str, Any] = draw(st.dictionaries(st.sampled_from(keys), cell_values, max_size=len(keys)))
    data.pop(KEY, None)
    return {KEY: draw(st.sampled_from(["s", "a-longer-name"]) | st.text(min_size=1, max_size=12)), **data}


driver_values = cell_values | st.sampled_from(
    [
        decimal.Decimal("1.50"),
        datetime.datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC),
        datetime.date(2025, 1, 2),
        uuid.UUID("4b0e8c4e-0f43-4b0e-9c1a-1b2c3d4e5f60"),
        b"bytes",
        1.5,
        float("nan"),
        '{"a": 1}',
        "not json {",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_table_writes_and_digests_what_it_did(data: st.DataObject) -> None:
    table = data.draw(tables())
    for _ in range(3):
        check(table, data.draw(records_for(table)), data.draw(st.text(max_size=5)))
    row = data.draw(st.fixed_dictionaries({n: st.none() | driver_values for n in table.names}))
    assert outcome(lambda: original.cells_digest(table, row)) == outcome(lambda: ref_cells_digest(table, row))


# The reader: ``row_reader`` against ``read_record`` of the row as a mapping.


def read_outcome(action: Callable[[], Any]) -> Any:
    """What reading a row gave: the exception (type, message, hint), or the record's name, its
    dict exactly (repr tells -0.0 from 0.0, True from 1, and shows key order) and the canonical
    form it was given (only ever bytes proven canonical)."""
    try:
        record = action()
    except Exception as exc:
        return "raised", type(exc), str(exc), getattr(exc, "hint", None)
    data = record_to_dict(record)
    form = record._memo.get("canonical")
    if form is not None:  # what an SQL writer binds: the text the row held, or the form decoded
        assert canonical_text(record) == form.decode("utf-8", "surrogatepass")
    return "value", record.session, repr(data), as_found_bytes(data), form


def check_read(table: Table, row: Mapping[str, Any]) -> str:
    """The generated reader on ``row`` (as the driver's tuple) against ``read_record``; which
    way the reference went. A row ``read_record`` reads as a proven-canonical record (the cells
    hash to the stored digest, or there is none) the reader must read straight from the tuple,
    its digest computed by position as ``cells_digest`` computes it: only that way keeps the
    row's text on the record."""
    cells = tuple(row.get(name) for name in table.names)
    mapping = dict(zip(table.names, cells, strict=True))
    expected = read_outcome(lambda: original.read_record(table, mapping, "where", "record-where"))
    reader = original.row_reader(table)
    assert read_outcome(lambda: reader(cells, "where", "record-where")) == expected
    way = "canonical" if expected[0] == "value" and expected[-1] is not None else expected[0]
    if way == "canonical":
        assert "text" in reader(cells, "where", "record-where")._memo
    return way


RECORD_TEXTS: list[Any] = [
    None,
    "",
    7,
    b"{}",
    "not json",
    "[]",
    '"s"',
    '{"session":"other"}',
    '{"session":"s"}',
    '{ "session":"s"}',
    '{"session":"s","a":1,"a":2}',
    '{"z":1,"session":"s"}',
    '{"session":"s","n":-0}',
    '{"session":"s","n":-0.0}',
    '{"session":"s","n":123456789012345678901234567890}',
    '{"session":"s","n":1E5}',
    '{"session":"s","n":NaN}',
    '{"session":"s","t":"\\u0000"}',
    '{"session":"s","t":"\\\\u0000"}',
    '{"session":"s","t":"\\ud800"}',
    '{"session":"s","t":"\ud800"}',
    '{"session":"s","t":"\u00e9"}',
    '{"session":"s","t":"\\u00e9"}',
    '{"session":1}',
    '{"session":""}',
    '{"session":null}',
]
DIGESTS: list[Any] = [None, "", "0" * 64, 5, b"x"]
DRIVER_CELLS: list[Any] = [
    "2025-01-20 10:30:00+00",
    "2025-01-20 10:30:00.5+00",
    "2024-02-29T23:59:59.999Z",
    "0001-01-01T00:00:00+14:00",
    datetime.datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC),
    datetime.date(2025, 1, 2),
    decimal.Decimal("1.50"),
    uuid.UUID("4b0e8c4e-0f43-4b0e-9c1a-1b2c3d4e5f60"),
    True,
    7,
    2**70,
    -0.0,
    1.5,
    '{"b": 1, "a": [1.0, -0]}',
    "\ud800",
]


def written_rows(table: Table, data: Mapping[str, Any], driver_cells: bool = True) -> Iterator[dict[str, Any]]:
    """The row minsky writes for ``data`` (if the table holds it), and that row changed: each
    data cell in turn set to NULL or to other text, the record or digest column replaced; with
    ``driver_cells``, each cell in turn as a driver may hand it back, digested so."""
    try:
        record = record_from_dict(dict(data))
        text = canonical(record).decode("utf-8", "surrogatepass")
        row = original.row_for(table, record_to_dict(record), text)
    except (RecordError, TypeError, ValueError):
        return
    yield row
    for column in table.data_columns:
        for other in (None, "changed", 1):
            yield {**row, column.name: other}
        for other in DRIVER_CELLS if driver_cells else ():  # as a driver may hand it back, digested so
            changed = {**row, column.name: other}
            if table.has_digest:
                with contextlib.suppress(RecordError):  # a cell no digest is taken of: as it was
                    changed[original.DIGEST] = ref_cells_digest(table, changed)
                    assert original.cells_digest(table, changed) == changed[original.DIGEST]
            yield changed
    if table.has_record:
        for other in RECORD_TEXTS:
            yield {**row, original.RECORD: other}
    if table.has_digest:
        for other in DIGESTS:
            yield {**row, original.DIGEST: other}


def test_the_generated_reader_reads_every_row_as_read_record_does() -> None:
    tables = list(sqlite_tables())
    assert len(tables) > 1, f"the original's corpus is missing at {ORIGINAL}: set MINSKY_SHARED_DIR"
    ways: dict[str, int] = {}
    for _, table, rows in tables + [(n, t, []) for n, t in handmade_tables()]:
        for row in rows:  # the original's rows, as the driver hands them back
            way = check_read(table, row)
            ways[way] = ways.get(way, 0) + 1
        for n, data in enumerate(hostile_records()):
            for row in written_rows(table, data, driver_cells=n < 40):
                way = check_read(table, row)
                ways[way] = ways.get(way, 0) + 1
        for text in RECORD_TEXTS:  # a record column no one wrote cells for
            for digest in DIGESTS:
                check_read(table, {KEY: "s", original.RECORD: text, original.DIGEST: digest})
    # Each way is taken: read straight from the tuple, read by ``read_record``, refused.
    assert min(ways.get("canonical", 0), ways.get("value", 0), ways.get("raised", 0)) > 100, ways


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_table_reads_any_row_as_read_record_does(data: st.DataObject) -> None:
    table = data.draw(tables())
    for _ in range(3):
        record = data.draw(records_for(table))
        for row in written_rows(table, record):
            check_read(table, row)
    driver_row = data.draw(st.fixed_dictionaries({n: st.none() | driver_values for n in table.names}))
    check_read(table, driver_row)
    record_text = data.draw(st.sampled_from(RECORD_TEXTS) | st.text(max_size=30))
    check_read(table, {**driver_row, original.RECORD: record_text})
