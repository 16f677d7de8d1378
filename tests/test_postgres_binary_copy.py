"""Rows a migration hands over ready-made (``row_maker``) go to PostgreSQL as binary COPY rows
when every column written takes text or a timestamp (``minsky_backend_postgres.copybinary``):
the server stores exactly what text COPY (``write_row``) stores, and a refusal names the
session the server refused, as before."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minsky.codec import record_from_dict
from minsky.errors import StoreError
from minsky_backend_postgres import copybinary
from minsky_backend_postgres.store import PostgresStore

pytestmark = pytest.mark.postgres

TEXTS = ["plain", "caf\u00e9", "\U0001f680 \u2028 \u4e2d", "tab\there", "line\nbreak", "cr\rx", "back\\slash \\N", ""]
STAMPS = [
    "0001-01-01T00:00:00.000Z",
    "1969-12-31T23:59:59.999Z",
    "2000-01-01T00:00:00.000Z",
    "2024-02-29T12:34:56.789Z",
    "9999-12-31T23:59:59.999Z",
    "2024-01-01T00:00:00+05:30",  # stored as the UTC instant
    "not a time",  # kept in the record only: the column gets its filler
    "2024-01-01T00:00:00.\u0660\u0660\u0660Z",  # digits of another script: the instant they read as
    "\uff12\uff10\uff12\uff14-01-2\u0665T00:00:00.000Z",
]


def awkward_records() -> list[Any]:
    records = []
    for i, text in enumerate(TEXTS * 2):
        data: dict[str, Any] = {
            "session": f"s{i:02d}-{text}",
            "repoName": text,
            "repoUrl": f"https://h/{text}",
            "createdAt": STAMPS[i % len(STAMPS)],
            "taskId": None if i % 3 else f"#{i}",
            "prState": {"commitHash": text, "n": i},
            "pullRequest": [text, i, None, True],
        }
        if i == 3:
            data["branch"] = "x" * 70_000  # a cell longer than the length cache holds
        if i == 4:
            del data["createdAt"]
        records.append(record_from_dict(data))
    return records


def _rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        columns = [c for (c,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'sessions' "
            "AND column_name <> 'minsky_seq' ORDER BY ordinal_position"
        )]  # fmt: skip
        # As text: a timestamp of year 1 in a zone west of UTC is in year 0, which Python has not.
        texts = ", ".join(f"{c}::text" for c in columns)
        return conn.execute(f"SELECT {texts} FROM sessions ORDER BY session").fetchall()


def _write(url: str, records: list[Any], on_conflict: str, *, offered: bool) -> None:
    store = PostgresStore(url)
    try:
        with store.bulk_writer(on_conflict=on_conflict) as writer:  # type: ignore[arg-type]
            if offered:
                assert writer.row_maker() is not None and writer.lines.binary
            for start in range(0, len(records), 5):
                writer.write(records[start : start + 5])
    finally:
        store.close()


@pytest.mark.parametrize("on_conflict", ["fail", "overwrite"])  # COPY into the table / into staging
def test_binary_rows_store_what_text_rows_store(postgres_url: str, on_conflict: str) -> None:
    records = awkward_records()
    stored = {}
    for offered in (False, True):
        _write(postgres_url, records, on_conflict, offered=offered)
        stored[offered] = _rows(postgres_url)
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("DROP TABLE sessions CASCADE")
    assert len(stored[True]) == len(records)
    assert stored[True] == stored[False]
    assert [r.session for r in PostgresStore(postgres_url).read()] == []  # the table was dropped


@pytest.mark.parametrize(
    ("stamp_type", "state_type", "branch_type", "binary"),
    [
        ("TIMESTAMP", "TEXT", "TEXT", True),
        ("VARCHAR(40)", "TEXT", "TEXT", True),
        ("TIMESTAMPTZ", "JSONB", "TEXT", False),
        # text input cuts a name at 63 bytes where binary input refuses it (adversary helper-31):
        # rows are made in the writer's process, which refuses a longer value (test_postgres_name_columns)
        ("TIMESTAMPTZ", "TEXT", "NAME", False),
    ],
)
def test_a_table_of_another_era_stores_what_text_rows_store(
    postgres_url: str, stamp_type: str, state_type: str, branch_type: str, binary: bool
) -> None:
    """``timestamp`` without a zone takes the digits of the UTC text (the zone is ignored),
    whatever the session's TimeZone; a table that is not all text and timestamps gets text lines."""
    records = awkward_records()
    if branch_type == "NAME":
        records = [
            r for r in records if not isinstance(r.branch, str) or len(r.branch.encode("utf-8", "surrogatepass")) <= 63
        ]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("ALTER DATABASE " + conn.info.dbname + " SET TimeZone = 'America/New_York'")
    stored = {}
    try:
        for offered in (False, True):
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                conn.execute(
                    "CREATE TABLE sessions (session TEXT PRIMARY KEY, repo_name TEXT NOT NULL, repo_url TEXT NOT NULL, "
                    f"created_at {stamp_type}, task_id TEXT, branch {branch_type}, pr_state {state_type}, "
                    "pull_request TEXT, record TEXT)"
                )
            store = PostgresStore(postgres_url)
            try:
                with store.bulk_writer(on_conflict="fail") as writer:
                    if offered:
                        assert (writer.row_maker() is not None) == (branch_type != "NAME")
                        assert writer.lines.binary == binary
                    writer.write(records)
            finally:
                store.close()
            stored[offered] = _rows(postgres_url)
            with psycopg.connect(postgres_url, autocommit=True) as conn:  # the next table is upgraded again
                conn.execute("DROP TABLE sessions, minsky_schema_migrations CASCADE")
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("ALTER DATABASE " + conn.info.dbname + " RESET TimeZone")
    assert len(stored[True]) == len(records)
    for binary_row, text_row in zip(stored[True], stored[False], strict=True):
        assert binary_row == text_row


def test_a_refusal_in_a_binary_copy_names_the_row_the_server_refused(postgres_url: str) -> None:
    ours = PostgresStore(postgres_url)
    ours.insert(record_from_dict({"session": "seed", "taskId": "seed"}))  # creates the schema
    ours.delete("seed")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE UNIQUE INDEX other_unique_task ON sessions (task_id)")
    records = [record_from_dict({"session": f"n-{i:04d}", "taskId": f"#{i}"}) for i in range(3000)]
    records[2501] = record_from_dict({"session": "n-2501", "taskId": "#7"})
    try:
        with pytest.raises(StoreError) as info, ours.bulk_writer(on_conflict="fail") as writer:
            assert type(writer).__name__ == "_DirectCopyWriter"
            assert writer.row_maker() is not None and writer.lines.binary
            for start in range(0, len(records), 1000):
                writer.write(records[start : start + 1000])
        assert "'n-2501'" in str(info.value), str(info.value)
        assert list(ours.read()) == []
    finally:
        ours.close()


def test_a_row_is_its_fields_and_a_cell_it_cannot_carry_is_none() -> None:
    assert copybinary._fields(("a", None, "\u00e9"), frozenset()) == (
        b"\x00\x00\x00\x01a" + b"\xff\xff\xff\xff" + b"\x00\x00\x00\x02\xc3\xa9"
    )
    assert copybinary._fields(("2000-01-01T00:00:01.000Z",), frozenset({0})) == b"\x00\x00\x00\x08" + (
        1_000_000
    ).to_bytes(8, "big")
    assert copybinary._fields(("a\x00b",), frozenset()) is None
    assert copybinary._fields((1,), frozenset()) is None
    assert copybinary._fields(("2000-01-01T00:00:01",), frozenset({0})) is None  # no zone


_STAMP_TEXT = st.sampled_from([*STAMPS, "", "Z", "2024-01-01T00:00:00Z", "2024-13-01T00:00:00.000Z"])
_CELL = st.none() | st.text(alphabet=st.sampled_from("ab\\\t\n\x00\u00e9\U0001f680 "), max_size=6)


@settings(max_examples=300, deadline=None)
@given(cells=st.lists(_CELL, min_size=2, max_size=6), stamp=st.none() | _STAMP_TEXT)
def test_the_generated_row_is_the_loops_row(cells: list[str | None], stamp: str | None) -> None:
    """``copybinary._rower``'s straight-line code gives what ``_fields``'s loop gives (NULLs,
    NUL, non-ASCII text, timestamps it cannot read), byte for byte."""
    from minsky import original

    table = original.Table(
        [original.Column("session", "text", True), original.Column("created_at", "timestamp")]
        + [original.Column(f"c{i}", "text") for i in range(len(cells))]
    )
    row = (cells[0] or "x", stamp, *cells)
    assert copybinary._rower(table)(row) == copybinary._fields(row, frozenset({1}))
