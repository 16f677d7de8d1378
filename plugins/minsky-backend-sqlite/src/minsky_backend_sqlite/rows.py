"""Fetching rows whatever bytes another program put in a text cell.

SQLite stores whatever bytes it is given as TEXT, and Python's driver refuses a cell that is
not UTF-8 (``Could not decode to UTF-8 column ...``) in the middle of a fetch: one Latin-1
byte written by another program made every read of the store, and the repair that would move
the row aside, fail. Such a cell is read with the byte kept as a lone surrogate
(``surrogateescape``, as the JSON reader and the PostgreSQL backend keep one): its record is
then refused by name and quarantined by ``check --repair``, and every other row reads.

Every connection decodes that way (``lenient_text``); the bulk reads fetch with the driver's
own decoding, several times faster, and fall back only when a cell needs it (``fetched``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

_NOT_UTF8 = "Could not decode to UTF-8"
KEY_IS = "session = CAST(? AS TEXT) COLLATE BINARY"  # exact names, whatever the column's collation (``bound``)


def lenient_text(data: bytes) -> str:
    """A TEXT cell as ``str``: UTF-8, a byte that is not kept as a lone surrogate."""
    return data.decode("utf-8", "surrogateescape")


def bound(name: str) -> str | bytes:
    """A session name as a parameter of ``KEY_IS``: its text, or for a name read with a stray
    byte (``lenient_text``: a lone surrogate) those bytes again, which ``CAST(? AS TEXT)`` makes
    the text the table holds. The driver refuses to send a lone surrogate as text."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return name.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # no stray byte gives this: it matches no name read here
            return name.encode("utf-8", "surrogatepass")
    return name


def fetched(conn: sqlite3.Connection, sql: str, params: Sequence[object] = (), size: int = 1000) -> Iterator[list[Any]]:
    """The rows of ``sql`` in batches of ``size``. Fetched with the driver's own decoding; at a
    cell that is not UTF-8 the statement runs again decoding leniently, past the rows already
    given: the same rows, as long as it runs in one transaction (the reads' snapshot), which a
    fallback after the first batch requires (outside one it raises as the driver did). The
    connection decodes leniently again whenever this is not fetching: its caller may use it
    between two batches."""
    done, fast = 0, True
    cursor = conn.execute(sql, params)
    try:
        while True:
            try:
                if fast:
                    conn.text_factory = str
                rows = cursor.fetchmany(size)
            except sqlite3.OperationalError as exc:
                if _NOT_UTF8 not in str(exc) or not fast or (done and not conn.in_transaction):
                    raise  # (another snapshot might not hold the rows already given in the same places)
                fast = False
                conn.text_factory = lenient_text
                cursor.close()
                cursor = conn.execute(sql, params)
                for _ in range(done // size):
                    cursor.fetchmany(size)
                if done % size:
                    cursor.fetchmany(done % size)
                continue
            finally:
                conn.text_factory = lenient_text
            if not rows:
                return
            done += len(rows)
            yield rows
    finally:
        # Now, not when a traceback lets go of it: an unfinished statement keeps the connection
        # open past close(), and then the read's WAL is not removed (a read interrupted mid-fetch).
        # (A read abandoned after its connection closed: nothing left to finish.)
        with contextlib.suppress(sqlite3.ProgrammingError):
            cursor.close()
