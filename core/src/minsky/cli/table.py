"""``session list`` as gh prints lists: on a terminal a header and aligned columns; in a
pipe tab-separated rows without a header, so ``cut -f1`` and ``awk -F'\\t'`` keep working."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator

from minsky.cli.output import echo

HEADER = ("NAME", "TASK", "REPO", "CREATED", "STATUS")


def width(text: str) -> int:
    """Terminal cells: wide (CJK) characters take two, combining marks none."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def aligned(rows: list[list[str]]) -> Iterator[str]:
    widths = [max(width(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell + " " * (widths[i] - width(cell)) for i, cell in enumerate(row[:-1])]
        yield "  ".join([*cells, row[-1]])


def echo_rows(lines: Iterable[str], *, terminal: bool) -> int:
    """Print tab-separated ``lines``; on a terminal, buffered and aligned under a header."""
    if not terminal:
        count = 0
        for line in lines:
            echo(line)
            count += 1
        return count
    rows = [line.split("\t") for line in lines]
    if rows:
        for line in aligned([list(HEADER), *rows]):
            echo(line)
    return len(rows)
