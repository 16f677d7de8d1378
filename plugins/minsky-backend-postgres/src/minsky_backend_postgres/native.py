"""PostgreSQL's own integrity check, added to ``minsky sessiondb verify`` (the ``verify`` hook).

Core's check decodes every record; this one asks the server about the structures
around them: every index of the sessions table valid and ready (a failed
``CREATE INDEX CONCURRENTLY`` leaves one invalid, silently unused), every
constraint validated (``NOT VALID`` ones were never checked against old rows), the
primary key present, and — when the ``amcheck`` extension is installed — each
B-tree index checked against its invariants with ``bt_index_check``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from minsky import hookimpl
from minsky.backend import Store, VerifyReport

if TYPE_CHECKING:
    from minsky_backend_postgres.store import PostgresStore

_INDEXES = """
SELECT c.relname, i.indisvalid AND i.indisready, am.amname = 'btree', c.oid
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
WHERE i.indrelid = 'sessions'::regclass ORDER BY c.relname
"""
_CONSTRAINTS = """
SELECT conname, contype, convalidated FROM pg_constraint
WHERE conrelid = 'sessions'::regclass ORDER BY conname
"""


@hookimpl
def verify(store: Store) -> VerifyReport | None:
    from minsky_backend_postgres.store import PostgresStore

    return native_verify(store) if isinstance(store, PostgresStore) else None


def native_verify(store: PostgresStore) -> VerifyReport:
    """Structural: ``checked`` stays 0 (core's check counts the records)."""
    import psycopg

    from minsky_backend_postgres import schema
    from minsky_backend_postgres.errors import translate

    try:
        with psycopg.connect(**store.params, autocommit=True) as conn:
            schema.settle_encoding(conn)  # SQL_ASCII: the catalog's text as text, not bytes
            return VerifyReport(ok=True, checked=0, problems=()) if not _has_table(conn) else _check(conn)
    except psycopg.Error as exc:
        raise translate(exc, store.params, "checking indexes and constraints") from None


def _has_table(conn: Any) -> bool:
    return bool(conn.execute("SELECT to_regclass('sessions') IS NOT NULL").fetchone()[0])


def _check(conn: Any) -> VerifyReport:
    import psycopg

    problems: list[str] = []
    indexes = conn.execute(_INDEXES).fetchall()
    for name, valid, _, _ in indexes:
        if not valid:
            problems.append(f"index {name} is not valid (an interrupted build?): REINDEX INDEX {name}")
    constraints = conn.execute(_CONSTRAINTS).fetchall()
    if not any(kind == "p" for _, kind, _ in constraints):
        problems.append("table sessions has no primary key: session names are not kept unique")
    for name, _, validated in constraints:
        if not validated:
            problems.append(f"constraint {name} is NOT VALID: ALTER TABLE sessions VALIDATE CONSTRAINT {name}")
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'").fetchone():
        for name, valid, btree, oid in indexes:
            if valid and btree:
                try:
                    conn.execute("SELECT bt_index_check(%s::oid::regclass)", (oid,))
                except psycopg.Error as exc:
                    problems.append(f"amcheck: index {name}: {' '.join(str(exc).split())}")
    return VerifyReport(ok=not problems, checked=0, problems=tuple(problems))


__all__ = ["native_verify", "verify"]
