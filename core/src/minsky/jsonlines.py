"""Reading a JSON store one record at a time, in flat memory, without changing a value.

A contract module: the JSON backend reads its store with it, and restore reads minsky's backups
(a JSON store plus a metadata key) with it, before falling back to a whole-document read.

Every layout a writer of this format produces puts each record on lines of its own: minsky's
streamed stores (one record per line), the original's ``JSON.stringify(value, null, 2)`` and
``dump_document`` (a record from a line ``{`` to the line ``}`` at the same indent), bare
arrays and ``{"sessions": [...], ...}`` objects alike. A JSON string cannot hold a raw line
break, so a line break is always whitespace between tokens, and the lines of such a file can
be cut into the text of each record.

The cut is a guess, proved as it goes: each piece must decode (``minsky.values.loads``, the
decoder a whole-document read uses, so every value comes back exactly as it would there) as
one complete value, and what lies between pieces must be exactly the array's punctuation.
JSON's grammar is unambiguous, so a document made of pieces that each decode whole, joined
by checked separators, decodes to exactly those pieces. Anything else (a document on one
line, a hand-formatted one, a ``sessions`` key that is not the first, a repeated one, a piece
that does not decode) raises ``NotLines`` and the caller reads the document whole, as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from minsky.deep import decode_deep_object
from minsky.values import loads

BUFFER: Final = 1 << 20
_WS: Final = b" \t\r\n"
_OBJECT_HEAD: Final = re.compile(rb'\{[ \t\r]*"sessions"[ \t\r]*:[ \t\r]*\[')
_KEY_HEAD: Final = re.compile(rb'"sessions"[ \t\r]*:[ \t\r]*\[')


class NotLines(Exception):
    """The file is not laid out one record per line (or per indented block): read it whole."""


class TwoLists(ValueError):
    """A second top-level ``sessions`` key after the first list: read whole, the last list would
    count, but the first one's entries have been handed out already. Refused (as a backup with
    two lists is), not guessed."""


class Layout:
    """What the lines around the records said: filled in as the reader goes."""

    def __init__(self) -> None:
        self.bare = False
        self.newline = True
        self.rest: dict[str, Any] = {}  # top-level keys after the sessions list
        self.complete = False  # the closing bracket and the tail were read and checked


def entries(path: Path, layout: Layout | None = None) -> Iterator[Any]:
    """The decoded entries of the store at ``path``, in order (see ``entries_of``)."""
    with path.open("rb", buffering=BUFFER) as handle:
        yield from entries_of(handle, layout)


def entries_of(handle: Any, layout: Layout | None = None) -> Iterator[Any]:
    """The decoded entries of an open store file, in order. Raises ``NotLines`` (possibly
    after some entries: they are the document's first ones) when the layout is not one this
    reader can prove; ``OSError`` as reading raises it."""
    layout = layout if layout is not None else Layout()
    for piece in pieces(handle, layout):
        yield decode_entry(piece)


def decode_entry(piece: bytes) -> Any:
    """The entry a piece holds (``loads``), or the object whose member nests too deep to decode
    (``decode_deep_object``: refused by name, not the store with it). ``NotLines`` for anything
    else that does not decode: the guess was wrong, or the file is damaged."""
    try:
        return loads(piece)
    except ValueError:
        found = decode_deep_object(piece)
        if found is None:
            raise NotLines("an entry that does not decode on its own") from None
        return found


def pieces(handle: Any, layout: Layout) -> Iterator[bytes]:
    """The undecoded text of each entry (a piece ``loads`` must still accept whole)."""
    _head(handle, layout)
    yield from body(handle, layout)


def body(handle: Any, layout: Layout) -> Iterator[bytes]:
    """``pieces`` once the head has been read (``head``)."""
    expect_more = False
    first = True
    for line in handle:
        text = line.strip(_WS)
        if not text:
            continue
        if text.startswith(b"]"):
            if expect_more:
                raise NotLines("a comma before the closing bracket")
            _tail(line[line.index(b"]") + 1 :] + handle.read(), layout)
            return
        if not first and not expect_more:
            raise NotLines("two entries without a comma between them")
        first = False
        if text == b"{":  # a record laid out over several lines, closed at its own indent
            indent = line[: len(line) - len(line.lstrip(b" \t"))]
            closing = (indent + b"}", indent + b"},")
            parts = [line]
            for inner in handle:
                parts.append(inner)
                if inner.rstrip(_WS) in closing:
                    break
            else:
                raise NotLines("a record that is not closed at its own indent")
            text = b"".join(parts).strip(_WS)
        expect_more = text.endswith(b",")
        yield text[:-1].rstrip(_WS) if expect_more else text
    raise NotLines("the file ended inside the list")


def head(handle: Any, layout: Layout) -> None:
    """Read up to the list's opening bracket, filling in ``layout.bare``."""
    _head(handle, layout)


def _head(handle: Any, layout: Layout) -> None:
    """Read up to the list's opening bracket."""
    first = handle.readline()
    text = first.strip(_WS)
    if text.startswith(b"["):
        layout.bare = True
        rest = text[1:].strip(_WS)
    elif text == b"{":
        key = handle.readline().strip(_WS)
        match = _KEY_HEAD.match(key)
        if match is None:
            raise NotLines("the first key is not 'sessions'")
        rest = key[match.end() :].strip(_WS)
    else:
        match = _OBJECT_HEAD.match(text)
        if match is None:
            raise NotLines("not a list of sessions or an object whose first key is 'sessions'")
        rest = text[match.end() :].strip(_WS)
    if rest:  # an empty list (a small file) or an entry beside the bracket
        raise NotLines("something on the line of the opening bracket")


def _tail(text: bytes, layout: Layout) -> None:
    """What follows the list: nothing for a bare array, the object's other keys otherwise."""
    layout.newline = text.endswith(b"\n")
    text = text.strip(_WS)
    if layout.bare:
        if text:
            raise NotLines("data after the array")
    elif text != b"}":
        if not text.startswith(b",") or not text[1:].lstrip(_WS).startswith(b'"'):
            # "],}" would decode as {} below: a comma must be followed by a key, as JSON says.
            raise NotLines("neither a comma and a key nor the end of the object after the list")
        try:
            rest = loads(b"{" + text[1:])
        except ValueError:
            raise NotLines("the keys after the list do not decode") from None
        if not isinstance(rest, dict):
            raise NotLines("the keys after the list do not decode")
        if "sessions" in rest:
            raise TwoLists("a second 'sessions' key after the first list")
        layout.rest = rest
    layout.complete = True
