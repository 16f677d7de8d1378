"""A writer's row taken from the row a record was read from, where the two tables agree.

A reader that proved a row is as minsky wrote it (its cells hash to its ``record_digest``,
``row_reader``) keeps the cells' texts with the record (``codec.proven_cells``): they are what
minsky's writer made of that record. A writer into a table whose column is the same (name,
key, type, limits) and always holds text takes that cell as it is instead of making it again
(the JSON text of ``prState`` or ``pullRequest``, the digest); only the other columns are
made, from the record. SQLite -> PostgreSQL of a million records: the row took 8.7 us a
record, most of it JSON text and the digest.

The result is the writer's own row, byte for byte (tests/test_carried_cells.py holds the two
to each other on generated tables and records): a cell is carried only when the same writer
code would have made it, and the digest only when every cell it covers is the same text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from minsky.codec import canonical_text, proven_cells, record_to_dict
from minsky.model import SessionRecord
from minsky.original import (
    KEY,
    Table,
    _always_text,
    _cell_of,
    _compile,
    _digest_lines,
    _returned,
    row_writer,
)

_KEPT: Final = 16  # source tables whose carriers a writer keeps (one per read, usually one)


def record_writer(table: Table, columns: Sequence[str]) -> Callable[[SessionRecord], tuple[Any, ...]]:
    """``row_writer(table, columns)`` of a record: ``writer(record)``, taking the cells its
    reader proved where ``table`` has the same columns. Generate it once per table."""
    plain = row_writer(table, columns)
    carriers: dict[Table, Callable[..., tuple[Any, ...]] | None] = {}

    def write(record: SessionRecord) -> tuple[Any, ...]:
        cells = proven_cells(record)
        if cells is not None:
            source, texts, digest = cells
            try:
                carry = carriers[source]
            except KeyError:
                if len(carriers) >= _KEPT:
                    carriers.clear()
                carry = carriers[source] = carrier(source, table, columns)
            if carry is not None:
                return carry(texts, digest, record)
        return plain(record_to_dict(record), canonical_text(record))

    return write


def carrier(source: Table, table: Table, columns: Sequence[str]) -> Callable[..., tuple[Any, ...]] | None:
    """``carry(texts, digest, record)``: ``table``'s row for a record read from a proven row of
    ``source`` (``texts``: its cells' texts in ``source.cell_plan`` order; ``digest``: its
    ``record_digest``); None when no cell can be carried."""
    at = {(column, key): i for i, (column, key, _) in enumerate(source.cell_plan)}
    carried: dict[int, int] = {}  # a cell of ``table`` -> the source text it is
    for j, (column, key, _) in enumerate(table.cell_plan):
        i = at.get((column, key))
        # Same column, same key: the same writer code. A text or timestamp cell is always text that
        # hashes as itself (``_always_text``), so the digest proved it equal to what that code makes.
        if i is not None and _always_text(column) and _always_text(source.cell_plan[i][0]):
            carried[j] = i
    if not carried:
        return None
    body = ["    " + "".join(f"t{i}, " for i in range(len(source.cell_plan))) + "= texts"]
    made = [j for j in range(len(table.cell_plan)) if j not in carried]
    if made:
        body += ["    data = DICT(record)", f"    name = data[{KEY!r}]", "    get = data.get"]
    for j in range(len(table.cell_plan)):
        body += [f"    c{j} = t{carried[j]}"] if j in carried else _cell_of(table, j)
    if table.has_digest:
        body += _digest_of(source, table, made)
    body.append("    record_text = TEXT(record)")
    code: Callable[..., tuple[Any, ...]] = _compile(
        table, "carry", "texts, digest, record", body, _returned(table, tuple(columns), record=True)
    )
    return code


def _digest_of(source: Table, table: Table, made: list[int]) -> list[str]:
    """Lines that set ``digest``: the source row's when every cell it covers is, by name, the
    same text in both tables (the digest hashes names and texts); else made from the cells."""
    names = {column.name: i for i, (column, _, _) in enumerate(source.cell_plan)}
    same = {column.name for column, _, _ in table.cell_plan} == set(names) and all(
        _always_text(column) for column, _, _ in (*table.cell_plan, *source.cell_plan)
    )
    made_lines = _digest_lines(table, "locals")
    if not same:
        return made_lines
    if not made:
        return []  # ``digest``, the argument, is already the one
    checks = " and ".join(f"c{j} == t{names[table.cell_plan[j][0].name]}" for j in made)
    return [f"    if not ({checks}):", *(f"    {line}" for line in made_lines)]
