"""The original Minsky's ``sessions`` tables, read and written by rule (shared by the SQL backends).

The original kept a record's keys in columns of their own, named camelCase in SQLite files
(``repoName``) and snake_case in PostgreSQL (``repo_name``), and added columns era by era.
Nothing here lists them: every column of a row maps to a record key by rule, so a column
no one foresaw arrives too.

- A column named like a record key (no underscore) is that key; a snake_case one is its
  camelCase key (``last_activity_at`` → ``lastActivityAt``).
- NULL means the key is absent. JSON-text keys (``prState``, ``prApproved``, …) are parsed;
  integers stay numbers; a timestamp column reads as the original read it (UTC ms ``Z``).
- minsky keeps the whole record beside the row (``record``, canonical JSON) with a digest of
  the cells it wrote (``record_digest``). While the row's cells still hash to that digest
  the record is read as is; once someone else changed the row, every column that no longer
  holds what minsky wrote there wins over the record (see ``read_row``).
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, Literal

import attrs
import orjson

from minsky.codec import (
    camel,
    canonical_bytes,
    canonical_object,
    compact_bytes,
    digest_bytes,
    loads,
    proven_record,
    record_from_dict,
    record_to_dict,
)
from minsky.errors import RecordError, StoreError
from minsky.model import SessionRecord
from minsky.original import timestamps

KEY: Final = "session"
RECORD: Final = "record"
DIGEST: Final = "record_digest"
MINSKY_COLUMNS: Final = frozenset({RECORD, DIGEST, "minsky_seq"})
JSON_KEYS: Final = frozenset({"prApproved", "prState", "pullRequest", "github", "remote", "interfaceBinding"})
EPOCH: Final = "1970-01-01T00:00:00.000Z"
REPAIR_HINT: Final = "`minsky sessiondb check --repair` moves unreadable rows into a quarantine file"

Kind = Literal["text", "any", "integer", "real", "boolean", "timestamp", "json", "uuid", "other"]


def column_key(column: str) -> str:
    """The record key of a column: camelCase as it is, snake_case camel-cased."""
    return camel(column) if "_" in column.strip("_") else column


@attrs.frozen
class Column:
    """One column of a ``sessions`` table, as the backend describes it."""

    name: str
    kind: Kind = "text"
    not_null: bool = False
    max_length: int | None = None  # characters, for varchar(n)
    int_bits: int = 64

    @property
    def key(self) -> str:
        return column_key(self.name)

    @property
    def data(self) -> bool:
        """Whether the column holds record data (not minsky's own bookkeeping)."""
        return self.name not in MINSKY_COLUMNS


class Table:
    """A ``sessions`` table's columns, checked once: where each record key lives."""

    def __init__(self, columns: Sequence[Column], name: str = "sessions") -> None:
        self.name = name
        self.columns = tuple(columns)
        self.names = tuple(c.name for c in self.columns)
        if KEY not in self.names:
            raise StoreError(
                f"table {name!r} has no {KEY!r} column (the session name): not a Minsky sessions table",
                hint="point minsky at the original's sessions table, or at a new location",
            )
        record = next((c for c in self.columns if c.name == RECORD), None)
        if record is not None and record.kind not in ("text", "any"):
            raise StoreError(
                f"table {name!r}: column {RECORD!r} is {record.kind}, not text: minsky keeps exact "
                "JSON text there (jsonb would reorder keys and lose exact numbers)",
                hint=f"ALTER TABLE {name} ALTER COLUMN {RECORD} TYPE text",
            )
        self.data_columns = tuple(c for c in self.columns if c.data)
        # Two columns naming one key (``repoName`` and ``repo_name``): the exact name wins,
        # the other arrives under its own column name, so neither is dropped.
        exact = {c.name for c in self.data_columns}
        self.keys = {c.name: (c.name if c.key != c.name and c.key in exact else c.key) for c in self.data_columns}
        self.column_of = {key: name for name, key in self.keys.items()}
        # What ``project`` does per column, decided once (``None``: the session name itself).
        self.cell_plan = tuple(
            (c, self.keys[c.name], None if c.name == KEY else converter(c, self.keys[c.name]))
            for c in self.data_columns
        )
        self.digest_plan = tuple(
            (c.name, c, self.keys[c.name], c.kind in ("text", "any"))
            for c in sorted(self.data_columns, key=lambda c: c.name)
        )
        # ``project``, ``cells_digest``, ``row_for`` and ``row_reader`` of this table, generated on first use.
        self._project: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
        self._digest: Callable[[Mapping[str, Any]], str] | None = None
        self._row: Callable[[Mapping[str, Any], str], dict[str, Any]] | None = None
        self._reader: Callable[[Sequence[Any], str, str | None], SessionRecord] | None = None

    @property
    def has_record(self) -> bool:
        return RECORD in self.names

    @property
    def has_digest(self) -> bool:
        return DIGEST in self.names

    def where(self, row_key: object, column: str | None = None) -> str:
        where = f"table {self.name!r}, session {row_key!r}"
        return f"{where}, column {column!r}" if column else where


# -- cells to record values -----------------------------------------------------


def decode(table: Table, column: Column, value: Any, row_key: object) -> Any:
    """A non-NULL cell as the record value the original would have read from it."""
    key = table.keys[column.name]
    if isinstance(value, str):
        if key in JSON_KEYS and column.kind != "json":
            try:
                return loads(value)  # keeps 1e400, -0, NaN as found: the record is then named
            except ValueError:
                raise RecordError(
                    f"{table.where(row_key, column.name)}: not JSON text: {value[:60]!r}", hint=REPAIR_HINT
                ) from None
        if column.kind == "timestamp":
            return timestamps.to_iso(value) or value
        return value
    if isinstance(value, bool | int | dict | list):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raise RecordError(
            f"{table.where(row_key, column.name)}: holds binary data, which no record key can carry",
            hint=f"convert it to text (e.g. UPDATE {table.name} SET {column.name} = hex({column.name}))",
        )
    return str(value)  # uuid, Decimal, dates: "everything else is a string"


def _record_from_cells(table: Table, row: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for column in table.data_columns:
        value = row[column.name]
        if value is not None:
            data[table.keys[column.name]] = decode(table, column, value, row[KEY])
    return data


# -- record values to cells ------------------------------------------------------


def _fits(column: Column, text: str) -> bool:
    return column.max_length is None or len(text) <= column.max_length


def _json_text(value: Any) -> str:
    """``compact_bytes(value)`` as text, its common case inlined (orjson, no backslash): the
    cell of every JSON-text key of every record written comes through here."""
    try:
        blob = orjson.dumps(value)
    except TypeError:
        blob = compact_bytes(value)  # an integer past 64 bits, or a refusal
    else:
        if b"\\" in blob and b"\\u0000" in blob:
            blob = compact_bytes(value)  # refused unless the escape is "\\\\u0000" text
    return blob.decode("utf-8", "surrogatepass")


def cell(column: Column, key: str, value: Any) -> Any:
    """What goes into ``column`` for a record value: the original's own representation when
    the column's type can read it back exactly, else NULL (the record keeps the value)."""
    return None if value is None else converter(column, key)(value)


def converter(column: Column, key: str) -> Callable[[Any], Any]:
    """``cell`` for one column, decided once per table rather than once per value: the
    projection runs for every record written and every row a coverage check reads."""
    kind = column.kind
    if kind == "timestamp":
        return lambda value: timestamps.storable(value) if isinstance(value, str) else None
    if kind == "integer":
        limit = 1 << (column.int_bits - 1)
        return lambda value: value if type(value) is int and -limit <= value < limit else None
    if kind == "real":
        return lambda value: (  # abs() first: math.isfinite of an int past a float's range raises
            value if type(value) in (int, float) and abs(value) < 2**53 and math.isfinite(value) else None
        )
    if kind == "boolean":
        return lambda value: value if isinstance(value, bool) else None
    if kind == "json":
        return _json_text
    if kind == "uuid":
        return lambda value: value if isinstance(value, str) and _is_uuid(value) else None
    if kind == "other":
        return lambda value: None
    json_key, max_length = key in JSON_KEYS, column.max_length

    def text_cell(value: Any) -> Any:
        if json_key:
            text = _json_text(value)
        elif isinstance(value, str):
            text = value
        elif kind == "any" and type(value) is int and -(1 << 63) <= value < (1 << 63):
            return value
        else:  # sorted keys: the record minsky keeps is canonical, and must project to the same text
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text if max_length is None or len(text) <= max_length else None

    return text_cell


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def _filler(table: Table, column: Column, row_key: object) -> Any:
    """A NOT NULL column the record has nothing (storable) for: a value that carries no data."""
    filler = {"text": "", "any": "", "integer": 0, "real": 0, "boolean": False, "timestamp": EPOCH, "json": "null"}
    if column.kind not in filler or (column.kind == "text" and not _fits(column, "")):
        raise RecordError(
            f"{table.where(row_key, column.name)}: NOT NULL, and the record has no value it can hold",
            hint=f"ALTER TABLE {table.name} ALTER COLUMN {column.name} DROP NOT NULL, or fill the key in the record",
        )
    return filler[column.kind]


def project(table: Table, data: Mapping[str, Any]) -> dict[str, Any]:
    """The row minsky writes for a record: every data column in the table's own naming."""
    compiled = table._project
    if compiled is None:
        compiled = table._project = _compile(table, "project", "data", _cell_lines(table), _returned(table, None))
    return compiled(data)


def _bad_name(table: Table, column: Column, name: object) -> None:
    raise RecordError(
        f"{table.where(name[:60] + '…' if isinstance(name, str) else name, KEY)}: "
        f"the name is longer than the column holds ({column.max_length} characters)",
        hint=f"rename the session, or widen the column: ALTER TABLE {table.name} ALTER COLUMN {KEY} TYPE text",
    )


# -- the per-table code ------------------------------------------------------------
#
# ``project``, ``cells_digest``, ``row_for`` and ``row_writer`` run once per record written or
# row read, so each table gets them as generated straight-line code (as ``minsky.codec``
# structures records): one block per column, each ``cell`` decided once, no per-column loop,
# and the writer's cells hashed from locals rather than looked up again. What they compute is
# the rule written out below the generators, unchanged; tests/test_original_rows.py holds them
# to the loops they replaced, byte for byte.


def _cell_lines(table: Table) -> list[str]:
    """``project``'s body: the local ``c<i>`` of every data column (``cell_plan`` order, so a
    record the table cannot hold is refused at the same column), from ``name`` and ``get``."""
    lines = [f"    name = data[{KEY!r}]", "    get = data.get"]
    for i, (column, key, convert) in enumerate(table.cell_plan):
        if convert is None:  # the session name
            too_long = "" if column.max_length is None else f" or len(name) > {column.max_length!r}"
            lines += [f"    if not isinstance(name, str){too_long}:", f"        BAD_NAME(TABLE, C{i}, name)"]
            lines.append(f"    c{i} = name")
            continue
        plain_text = column.kind in ("text", "any") and column.max_length is None
        if plain_text and key not in JSON_KEYS:  # ``text_cell`` keeps text as it is
            value = f"v if isinstance(v, str) else F{i}(v)"
        elif plain_text:  # ``text_cell`` of a JSON key: its compact JSON
            value = '"true" if v is True else "false" if v is False else JSON(v)'
        else:
            value = f"F{i}(v)"
        lines += [f"    c{i} = v = get({key!r})", "    if v is not None:", f"        c{i} = {value}"]
        if column.not_null:
            lines += [f"    if c{i} is None:", f"        c{i} = FILLER(TABLE, C{i}, name)"]
    return lines


def _digest_lines(table: Table, source: Literal["row", "tuple", "locals"]) -> list[str]:
    """``cells_digest``'s body, into ``digest``: of the row's cells by name (``row``, a mapping),
    by position (``row``, a sequence in ``table.names`` order), or of the locals ``_cell_lines``
    set. Each cell's text ``t<i>`` (None for NULL) first, in column name order, then one string
    of all parts. A local of the writer whose type its column decides (``_always_text``) is its
    own text: ``normal`` would give it back unchanged; a timestamp cell's is ``normal``'s, inline."""
    index = {column.name: i for i, (column, _, _) in enumerate(table.cell_plan)}
    position = {name: i for i, name in enumerate(table.names)}
    lines = ["    get = row.get"] if source == "row" else []
    texts = []
    for name, column, key, raw in table.digest_plan:
        i = index[name]
        if source == "locals":
            value = f"c{i}"
            if _always_text(column):
                texts.append(value)
                continue
        else:
            value = "v"
            lines.append(f"    v = get({name!r})" if source == "row" else f"    v = row[{position[name]}]")
        if column.kind == "timestamp":  # ``normal``: ``to_iso`` of the cell's text, or that text
            text = f"(TO_ISO(s := ({value} if type({value}) is str else str({value}))) or s)"
        else:
            text = f"str(NORMAL(C{i}, {key!r}, {value}))"
            if raw:
                text = f"({value} if isinstance({value}, str) else {text})"
        lines.append(f"    t{i} = None if {value} is None else {text}")
        texts.append(f"t{i}")
    # One string of every part, one encode and one hash: the same digest as hashing part by part
    # (SHA-256 is a stream), at a fraction of the calls.
    parts = "".join(
        f'{{"" if {t} is None else f"{{P{index[name]}}}{{len({t})}}{{NUL}}{{{t}}}"}}'
        for t, (name, *_) in zip(texts, table.digest_plan, strict=True)
    )
    lines.append(f"    digest = SHA256(f'''{parts}'''.encode('utf-8', 'surrogatepass')).hexdigest()")
    return lines


def _always_text(column: Column) -> bool:
    """Whether the cell ``_cell_lines`` sets for ``column`` is always text (or None) that
    ``normal`` gives back unchanged, so that its digest part needs neither. A ``text`` column's
    cell is the value's text, its compact JSON, or ``""`` (``_filler``); a ``timestamp`` column's
    is ``storable``'s (or ``EPOCH``): ``Date.toISOString()`` text of a year 1..9999, which
    ``timestamps.to_iso`` reads back as it is. Not ``any`` (an integer stays one) nor ``json``
    (``normal`` re-encodes it)."""
    return column.kind == "text" or column.kind == "timestamp"


def _returned(table: Table, columns: Sequence[str] | None, record: bool = False) -> str:
    """The return statement: ``project``'s dict (``row_for``'s with ``record``), or the cells in
    ``columns`` order (None for a column minsky does not write)."""
    cells = {column.name: f"c{i}" for i, (column, _, _) in enumerate(table.cell_plan)}
    if record and table.has_record:
        cells[RECORD] = "record_text"
    if record and table.has_digest:
        cells[DIGEST] = "digest"
    if columns is None:
        return "    return {" + ", ".join(f"{name!r}: {local}" for name, local in cells.items()) + "}"
    return "    return (" + "".join(f"{cells.get(name, 'None')}, " for name in columns) + ")"


def _compile(table: Table, kind: str, arguments: str, body: list[str], returned: str) -> Any:
    namespace: dict[str, Any] = {
        "TABLE": table,
        "FILLER": _filler,
        "BAD_NAME": _bad_name,
        "JSON": _json_text,
        "NORMAL": normal,
        "SHA256": hashlib.sha256,
        "NUL": "\x00",
        "TO_ISO": timestamps.to_iso,
        "NAMES": table.names,
        "CANONICAL": canonical_object,
        "PROVEN": proven_record,
        "SLOW": read_record,
        "RecordError": RecordError,
    }
    for i, (column, _, convert) in enumerate(table.cell_plan):
        namespace[f"C{i}"], namespace[f"F{i}"], namespace[f"P{i}"] = column, convert, f"{column.name}\x00"
    source = "\n".join([f"def {kind}({arguments}):", *body, returned])
    exec(compile(source, f"<minsky {kind} of table {table.name}>", "exec"), namespace)  # noqa: S102
    return namespace[kind]


def row_writer(table: Table, columns: Sequence[str]) -> Callable[[Mapping[str, Any], str], tuple[Any, ...]]:
    """``row_for`` as a tuple in ``columns`` order (None for a column it has no value for),
    for a writer to bind: ``writer(data, record_text)``. Generate it once per table."""
    body = _cell_lines(table) + (_digest_lines(table, "locals") if table.has_digest else [])
    writer: Callable[[Mapping[str, Any], str], tuple[Any, ...]] = _compile(
        table, "row", "data, record_text", body, _returned(table, tuple(columns), record=True)
    )
    return writer


# -- comparing cells -------------------------------------------------------------


def normal(column: Column, key: str, value: Any) -> Any:
    """A cell in a form that compares equal however the driver handed it back."""
    if value is None:
        return None
    if column.kind == "timestamp":
        return timestamps.to_iso(str(value)) or str(value)
    if key in JSON_KEYS or column.kind == "json":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return value
        return canonical_bytes({"v": value}).decode("utf-8", "surrogatepass")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def cells_digest(table: Table, row: Mapping[str, Any]) -> str:
    """A digest of a row's non-NULL data cells: what minsky stores beside the record it wrote.

    Each cell is ``name NUL length NUL text``, in column name order. Text is hashed as stored
    (minsky wrote it, so an unchanged cell is byte-identical); other types as ``normal`` gives
    them, since drivers hand them back in forms of their own."""
    compiled = table._digest
    if compiled is None:
        compiled = table._digest = _compile(
            table, "cells_digest", "row", _digest_lines(table, "row"), "    return digest"
        )
    return compiled(row)


def row_for(table: Table, data: Mapping[str, Any], record_text: str) -> dict[str, Any]:
    """Every column minsky writes for a record: its projection, the record and the digest."""
    compiled = table._row
    if compiled is None:
        body = _cell_lines(table) + (_digest_lines(table, "locals") if table.has_digest else [])
        compiled = table._row = _compile(table, "row_for", "data, record_text", body, _returned(table, None, True))
    return compiled(data, record_text)


# -- rows to records -------------------------------------------------------------


def read_row(table: Table, row: Mapping[str, Any]) -> dict[str, Any]:
    """The record a row holds.

    A row the original wrote is read from its columns. A row minsky wrote is its ``record``;
    when the row's cells no longer hash to the digest minsky stored, someone else changed it,
    and each column that no longer holds what minsky wrote there wins (NULL removes the key).
    """
    return _read_row(table, row)[0]


def _read_row(table: Table, row: Mapping[str, Any]) -> tuple[dict[str, Any], bytes | None]:
    """``read_row``, and the record's canonical form when the row's ``record`` text is the
    record read and is proven exactly canonical (``canonical_object``); else None."""
    row_key = row[KEY]
    text = row.get(RECORD)
    if text is None or text == "":
        return _record_from_cells(table, row), None
    if not isinstance(text, str):
        raise RecordError(f"{table.where(row_key, RECORD)}: not JSON text", hint=REPAIR_HINT)
    # What minsky wrote is canonical: proven so by one decode and one re-encode, it is both the
    # record's dict and its canonical form (never encoded again). Anything else: ``loads``.
    encoded = text.encode("utf-8", "surrogatepass")
    stored: Any = canonical_object(encoded)
    proven = encoded if stored is not None else None
    if stored is None:
        try:
            stored = loads(text)
        except ValueError:
            raise RecordError(f"{table.where(row_key, RECORD)}: not JSON: {text[:60]!r}", hint=REPAIR_HINT) from None
    if not isinstance(stored, dict):
        raise RecordError(f"{table.where(row_key, RECORD)}: not a JSON object", hint=REPAIR_HINT)
    if stored.get(KEY) != row_key:
        raise RecordError(
            f"{table.where(row_key, RECORD)}: the record names session {stored.get(KEY)!r}, not the row's",
            hint=REPAIR_HINT,
        )
    digest = row.get(DIGEST)
    if not digest or digest == cells_digest(table, row):
        return stored, proven  # untouched since minsky wrote it (or written before digests were kept)
    written = project_lenient(table, stored)
    merged = dict(stored)
    for column in table.data_columns:
        key, value = table.keys[column.name], row[column.name]
        if column.name == KEY or normal(column, key, value) == normal(column, key, written.get(column.name)):
            continue
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = decode(table, column, value, row_key)
    return merged, None


def read_record(table: Table, row: Mapping[str, Any], where: str, record_where: str | None = None) -> SessionRecord:
    """The record a row holds (``read_row``), built; an error names ``where`` (the store), and a
    record without a usable name ``record_where`` (default ``where``) and the session."""
    try:
        data, canonical_form = _read_row(table, row)
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}", hint=exc.hint) from None
    return record_from_dict(
        data, where=f"{record_where or where}: session {row[KEY]!r}: ", canonical_form=canonical_form
    )


def row_reader(table: Table) -> Callable[[Sequence[Any], str, str | None], SessionRecord]:
    """``read_record`` of a row as the driver hands it, a sequence in ``table.names`` order:
    ``reader(row, where, record_where)``. Generated once per table.

    A row minsky wrote and no one changed since (its ``record`` text proven canonical, naming
    the row's session, and the cells hashing to its ``record_digest``) is read straight from
    the sequence: no mapping per row, the digest's cells taken by position. Every other row
    (the original's, a changed one, one ``read_record`` refuses) goes to ``read_record``,
    which reads or refuses it as it always did."""
    compiled = table._reader
    if compiled is not None:
        return compiled
    position = {name: i for i, name in enumerate(table.names)}
    slow = "    return SLOW(TABLE, dict(zip(NAMES, row, strict=True)), where, record_where)"
    body: list[str] = []
    if table.has_record:
        body += [
            f"    text = row[{position[RECORD]}]",
            "    if type(text) is str and text:",
            '        encoded = text.encode("utf-8", "surrogatepass")',
            "        stored = CANONICAL(encoded)",
            f"        name = row[{position[KEY]}]",
            f"        if stored is not None and type(name) is str and name and stored.get({KEY!r}) == name:",
        ]
        if table.has_digest:
            # A cell no digest can be taken of (``normal`` refuses it) is ``read_record``'s to
            # refuse, naming the store: the same error, the same words.
            digest = _digest_lines(table, "tuple")
            body += [
                f"            stored_digest = row[{position[DIGEST]}]",
                "            if not stored_digest:",
                "                return PROVEN(stored, name, encoded, text)",
                "            try:",
                *(f"            {line}" for line in digest),
                "            except RecordError:",
                "                digest = None",
                "            if stored_digest == digest:",
                "                return PROVEN(stored, name, encoded, text)",
            ]
        else:
            body.append("            return PROVEN(stored, name, encoded, text)")
    reader: Callable[[Sequence[Any], str, str | None], SessionRecord] = _compile(
        table, "read", "row, where, record_where", body, slow
    )
    table._reader = reader
    return reader


def project_lenient(table: Table, data: Mapping[str, Any]) -> dict[str, Any]:
    """``project``, but a record the table cannot hold yields what it can (for comparisons)."""
    try:
        return project(table, data)
    except RecordError:
        return {c.name: cell(c, table.keys[c.name], data.get(table.keys[c.name])) for c in table.data_columns}


# -- coverage: every cell of the source accounted for ----------------------------


_SAME_WHEN_EQUAL: Final = (str, int, bool)  # equal values of one of these types: one ``normal`` form


def uncovered(table: Table, row: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
    """The data columns of ``row`` whose non-NULL cell the record ``data`` does not account for:
    projecting the record back into the table must give the cell again (by ``normal``).

    A cell that is, type and value, the projected one needs no ``normal``: it is a function of
    the value, and two equal values of one type among ``_SAME_WHEN_EQUAL`` are one value. Only
    the other cells are compared through it (JSON text in another key order; 0.0 and -0.0,
    True and 1, {"a": 1} and {"a": 1.0} are equal yet ``normal`` may tell them apart)."""
    try:
        again = project_lenient(table, data)
    except (RecordError, TypeError, ValueError):  # a value no store holds exactly (NaN, 1e400): the
        return []  # copy rejected the record, by name; raised out of here it ended the whole check
    cell_of, projected_of = row.get, again.get
    missing = []
    for column, key, _ in table.cell_plan:
        name = column.name
        value = cell_of(name)
        if value is None:
            continue
        projected = projected_of(name)
        if type(value) is type(projected) and type(value) in _SAME_WHEN_EQUAL and value == projected:
            continue
        if normal(column, key, value) != normal(column, key, projected):
            missing.append(name)
    return missing


def unheld_keys(table: Table, row: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
    """The keys of the record ``row`` holds (``read_row``) that the record read, ``data``, lacks
    or holds otherwise: what a reader lost that no cell shows (a key only the ``record`` column
    holds). Empty for a row ``read_row`` refuses (the reader refuses it too, by name)."""
    try:
        held = read_row(table, row)
    except RecordError:
        return []
    if held is data or digest_bytes(held) == digest_bytes(data):
        return []
    return [key for key in held if key not in data or _value_bytes(held[key]) != _value_bytes(data[key])]


def _value_bytes(value: Any) -> bytes:
    return digest_bytes({KEY: value})


def coverage_problems(
    rows: Iterable[tuple[Table, Mapping[str, Any]]], records: Iterable[Mapping[str, Any]], limit: int = 20
) -> tuple[list[str], list[str]]:
    """Every non-NULL cell of every source row accounted for in the record read from it:
    (problems naming record and column, names of rows no record was read for).

    ``rows`` (the raw cells) and ``records`` (what the store's reader yielded) come in the
    same order; a record out of step is matched by name."""
    problems: list[str] = []
    waiting: dict[str, tuple[Table, Mapping[str, Any]]] = {}
    unmatched: dict[str, Mapping[str, Any]] = {}

    def check(table: Table, row: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        _report(problems, table, row, uncovered(table, row, data), limit, unheld_keys(table, row, data))

    for (table, row), data in _pairs(rows, records):
        if data is not None and row is not None and data.get(KEY) == row[KEY]:
            check(table, row, data)
            continue
        if row is not None:
            if row[KEY] in unmatched:
                check(table, row, unmatched.pop(row[KEY]))
            else:
                waiting[row[KEY]] = (table, row)
        if data is not None:
            name = data.get(KEY)
            if isinstance(name, str) and name in waiting:
                check(*waiting.pop(name), data)
            elif isinstance(name, str):
                unmatched[name] = data
    return problems, list(waiting)


def store_coverage(store: Any, limit: int = 20, read_digest: Callable[[str], bytes | None] | None = None) -> list[str]:
    """``coverage_problems`` of a store with ``source_rows()`` (the SQL backends): its raw rows
    against the records its reader yields.

    With ``read_digest`` (name → the leading bytes of the SHA-256 of ``digest_bytes`` of the
    record a migration read under that name; None if it read none), one pass over the raw rows
    does: a row whose ``read_row`` hashes to what the migration read *is* that record, and is
    checked against it. Only the rows that do not (changed since the migration read them, or a
    reader that yields something else) are checked against a pass of ``read()``, as every row
    is without ``read_digest``. Either way, the two passes are two snapshots: a row another
    writer added or deleted in between is not a gap; one that is still there and still unread is."""
    if read_digest is None:
        return _coverage_of(store, store.source_rows(), limit)
    problems: list[str] = []
    later: list[tuple[Table, Mapping[str, Any]]] = []
    seen: set[Any] = set()
    every_row = False
    rows = store.source_rows()
    try:
        for table, row in rows:
            name = row[KEY]
            kept = read_digest(name) if isinstance(name, str) else None
            try:
                data = read_row(table, row)
            except RecordError:
                data = None
            if kept is not None and data is not None and _short_digest(data, len(kept)) == kept:
                _report(problems, table, row, uncovered(table, row, data), limit)
                continue
            if len(later) == _LATER or name in seen:  # many rows changed, a reader unlike read_row,
                every_row = True  # a repeated name: every row against read(), as without ``read_digest``
                break
            later.append((table, row))
            seen.add(name)
    finally:
        close = getattr(rows, "close", None)
        if callable(close):
            close()
    if every_row:
        return _coverage_of(store, store.source_rows(), limit)
    return problems + (_coverage_of(store, later, limit - len(problems)) if later else [])


def _short_digest(data: Mapping[str, Any], size: int) -> bytes:
    return hashlib.sha256(digest_bytes(data)).digest()[:size]


_LATER: Final = 1000  # raw rows kept for a second look at most (~1 KB each)


def _coverage_of(store: Any, rows: Iterable[tuple[Table, Mapping[str, Any]]], limit: int) -> list[str]:
    """``rows`` against a pass of the store's ``read()``: each row's record found by name."""
    if isinstance(rows, list):  # the few rows left: match them by name, in one pass of read()
        wanted = {row[KEY]: (table, row) for table, row in rows}
        suspects: set[str] = set()
        for record in store.read():
            found = wanted.pop(record.session, None)
            if found is not None and (uncovered(*found, data := record_to_dict(record)) or unheld_keys(*found, data)):
                suspects.add(record.session)
        unread = list(wanted)
        problems: list[str] = []
        if suspects:
            # Those cells were read a whole pass before their records: a writer may have changed
            # the row in between. Only what a second look, cells and records side by side (as
            # without digests), still finds is a gap.
            again = (pair for pair in store.source_rows() if pair[1][KEY] in suspects)
            records = (record_to_dict(r) for r in store.read() if r.session in suspects)
            problems = coverage_problems(again, records, limit)[0]
    else:
        problems, unread = coverage_problems(rows, (record_to_dict(r) for r in store.read()), limit)
    if unread:
        present = set(store.keys())
        gone = [name for name in unread if name in present and store.get(name) is None]
        problems.extend(f"session {name!r}: the row was not read at all" for name in gone[:limit])
    return problems


def _report(
    problems: list[str],
    table: Table,
    row: Mapping[str, Any],
    columns: list[str],
    limit: int,
    keys: Sequence[str] = (),
) -> None:
    for name in columns:
        if len(problems) < limit:
            problems.append(
                f"session {row[KEY]!r}: column {name!r} ({_short(row[name])}) is not in the record read "
                f"(key {table.keys[name]!r})"
            )
    told = {table.keys[name] for name in columns}
    for key in keys:
        if key not in told and len(problems) < limit:
            problems.append(f"session {row[KEY]!r}: key {key!r} of the row's record is not in the record read")


def _pairs(
    rows: Iterable[tuple[Table, Mapping[str, Any]]], records: Iterable[Mapping[str, Any]]
) -> Iterator[tuple[tuple[Any, Any], Any]]:
    row_iter, record_iter = iter(rows), iter(records)
    while True:
        row = next(row_iter, None)
        data = next(record_iter, None)
        if row is None and data is None:
            return
        yield (row if row is not None else (None, None)), data


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"
