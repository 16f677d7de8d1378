"""Rewriting a JSON store one entry at a time: a write in flat memory.

``dump_document`` writes a whole document as ``JSON.stringify(value, null, 2)`` does (so
records a write did not touch keep the original's bytes). The same bytes come out of
writing each entry on its own with a 2-space indent and shifting its lines by its level:
a JSON text holds no raw line break inside a string, so every line break in an entry's
text is indentation. Entries are read with ``lines`` (proved, as a read is); a document
that reader cannot prove is rewritten whole by the caller, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import IO, Any

from minsky import jsonlines as lines
from minsky.values import as_found_bytes
from minsky_backend_json.keys import decode_entry


def _indented(value: Any, level: int) -> bytes:
    # An entry no store can hold exactly (kept until `check --repair` moves it) is written as found.
    return as_found_bytes(value, indent=2).replace(b"\n", b"\n" + b"  " * level)


def rewrite(source: IO[bytes], target: IO[bytes], edit: Callable[[Iterator[Any]], Iterator[Any]]) -> lines.Layout:
    """Copy the store open as ``source`` into ``target`` through ``edit`` (a generator over the
    decoded entries, yielding those to write). Raises ``lines.NotLines`` before anything is
    written when the head is not one ``lines`` proves, and part-way through otherwise: the
    caller then discards ``target`` and rewrites the document whole."""
    layout = lines.Layout()
    lines.head(source, layout)
    decoded = (decode_entry(piece) for piece in lines.body(source, layout))
    level = 1 if layout.bare else 2
    opening = b"[" if layout.bare else b'{\n  "sessions": ['
    first = True
    for entry in edit(decoded):
        if first:
            target.write(opening)
        target.write((b"\n" if first else b",\n") + b"  " * level + _indented(entry, level))
        first = False
    if not layout.complete:  # ``edit`` stopped early: the rest of the document is still unread
        raise lines.NotLines("the edit did not read the whole list")
    if layout.bare:
        target.write(b"[]" if first else b"\n]")
    else:
        target.write(opening + b"]" if first else b"\n  ]")
        for key, value in layout.rest.items():
            target.write(b",\n  " + as_found_bytes(key) + b": " + _indented(value, 1))
        target.write(b"\n}")
    if layout.newline:
        target.write(b"\n")
    return layout
