"""The names pass: a store's entries decoded for their names alone (``keys()``, ``count()``).

A migration reads every name before it copies anything (repeated names, names the target
holds), so this pass is on every JSON source's critical path. It cuts the file as a full read
does (``minsky.jsonlines.pieces``) but decodes each entry with orjson alone: ``loads`` first
looks for what misleads orjson about numbers ("-0", integers past 64 bits), a scan that was a
third of the pass (1.0 s a 100,000 records), and a name is a string, which orjson decodes as
the standard library does. What orjson refuses (a lone surrogate, NaN) goes to ``loads``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

import orjson

from minsky import jsonlines as lines
from minsky.codec import loads

# A piece with this many brackets may nest deeper than records do (minsky keeps 254 levels):
# the standard library, which ``loads`` uses for a piece holding 19 digits, refuses ~980
# levels that orjson reads, and a name must fail where the read fails. Such a piece goes to ``loads``.
_BRACKETS: Final = 254


def decode_for_name(piece: bytes) -> Any:
    """The entry ``piece`` holds, exact in its name (``loads``'s, for anything else orjson reads).
    Raises ``NotLines`` for a piece the full read refuses too."""
    if piece.count(b"[") + piece.count(b"{") < _BRACKETS:
        try:
            return orjson.loads(piece)
        except orjson.JSONDecodeError:
            pass
    return decode_entry(piece)


def _decode_entry(piece: bytes) -> Any:
    """``lines.decode_entry`` of a core before 0.3.7 (which lacks it): ``loads`` alone."""
    try:
        return loads(piece)
    except ValueError:  # not one whole value: the guess was wrong, or the file is damaged
        raise lines.NotLines("an entry that does not decode on its own") from None


decode_entry: Callable[[bytes], Any] = getattr(lines, "decode_entry", _decode_entry)


def entries_for_names(handle: Any) -> Iterator[Any]:
    """``lines.entries_of(handle)`` for a pass that keeps only names: raises ``NotLines`` as it does."""
    for piece in lines.pieces(handle, lines.Layout()):
        yield decode_for_name(piece)


def texts_for_names(handle: Any) -> Iterator[tuple[bytes, Any]]:
    """``entries_for_names``, each entry with its text: a split read's fetch (``read_split``)."""
    for piece in lines.pieces(handle, lines.Layout()):
        yield piece, decode_for_name(piece)
