"""Writing into a store that minsky streamed, without parsing it.

A store written by a migration holds each record's canonical form on a line of its own
(``HEAD``, then ``    {...},`` lines, then ``  ]`` and the other top-level keys). Writing a
few records into it — a migration's last step while the source's writers wait — copies
those lines as they are and replaces, drops or appends only the records written: one pass
over the bytes, no whole-document parse and no re-indenting (seconds at 1M records instead
of a minute). The result has the same layout, so it is read the fast way again.

A line's name is taken from its one ``"session":"`` key (canonical JSON has no spaces);
a line with several (a nested ``session`` key) or with escapes in the name is decoded.
Any line not in that layout makes ``scan`` answer None: the caller rewrites the document.
Records the write does not touch are copied as their bytes stand, unread: a record damaged
on disk stays as damaged as it was (``sessiondb verify`` names it), and nothing else changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from minsky.backend import OnConflict
from minsky.codec import canonical, loads
from minsky.model import SessionRecord

HEAD = b'{"sessions": [\n'
_KEY = b'"session":"'
_RECORD = b"    {"
_CLOSE = (b"  ]\n", b"  ],\n")


class Streamed:
    """A streamed store as scanned: each record line's name, in order, and the bytes after them."""

    def __init__(self, names: list[str], tail: bytes) -> None:
        self.names = names
        self.present = set(names)
        self.tail = tail


def scan(path: Path) -> Streamed | None:
    """The names of a store in the streamed layout, or None if it is in any other (or empty)."""
    try:
        with path.open("rb") as handle:
            if handle.readline() != HEAD:
                return None
            names: list[str] = []
            more = True  # the previous record line ended with a comma
            for line in handle:
                if line in _CLOSE:
                    tail = line + handle.read()
                    return Streamed(names, tail) if names and not more and _tail_ok(tail) else None
                name = _record_line_name(line) if more else None
                if name is None:
                    return None
                names.append(name)
                more = line.endswith(b",\n")
    except (OSError, ValueError):
        return None
    return None  # no closing bracket: a damaged file, left to the whole-document path to name


def _tail_ok(tail: bytes) -> bool:
    """The other top-level keys are whole JSON (they are few: decoded to be sure)."""
    value = loads(b'{"sessions": []' + tail.removeprefix(b"  ]"))
    return isinstance(value, dict)


def _record_line_name(line: bytes) -> str | None:
    if not line.startswith(_RECORD) or not line.endswith((b"},\n", b"}\n")):
        return None
    text = line[4:].rstrip(b",\n")
    first = text.find(_KEY)
    if first < 0:
        return None
    start = first + len(_KEY)
    end = text.find(b'"', start)
    raw = text[start:end]
    if end > start and b"\\" not in raw and text.find(_KEY, start) < 0:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    item: Any = loads(text)  # a name with escapes, or a nested "session" key: decode the line
    name = item.get("session") if isinstance(item, dict) else None
    return name if isinstance(name, str) and name else None


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.readline()
        for line in handle:
            if line in _CLOSE:
                return
            yield line[4:].rstrip(b",\n")


class MergingWriter:
    """A bulk writer into a streamed store: records staged in memory, merged on ``commit``."""

    def __init__(self, store: Streamed, on_conflict: OnConflict) -> None:
        self.store = store
        self.on_conflict = on_conflict
        self.staged: dict[str, bytes] = {}
        self.gone: set[str] = set()
        self.conflicts: list[str] = []

    def write(self, batch: Sequence[SessionRecord]) -> None:
        keep_first = self.on_conflict != "overwrite"
        for record in batch:
            name = record.session
            # Present before, or (but for overwrite, where the last copy wins) given earlier in this write.
            if (name in self.store.present and name not in self.gone) or (keep_first and name in self.staged):
                self.conflicts.append(name)
                if keep_first:
                    continue
            self._put(record)

    def _put(self, record: SessionRecord) -> None:
        self.staged[record.session] = canonical(record)
        self.gone.discard(record.session)

    def overwriting(self) -> _Overwriting:
        return _Overwriting(self)

    def delete(self, names: Sequence[str]) -> Sequence[str]:
        there = [name for name in names if name in self.store.present and name not in self.gone]
        for name in names:
            self.staged.pop(name, None)
        self.gone.update(there)
        return there

    @property
    def changed(self) -> bool:
        return bool(self.staged or self.gone)

    def commit(self, path: Path, handle: IO[bytes]) -> None:
        """Write the merged store into ``handle`` (the temp file that replaces ``path``)."""
        handle.write(HEAD)
        first = True
        staged = dict(self.staged)
        for name, line in zip(self.store.names, _lines(path), strict=True):
            if name in self.gone:
                continue
            handle.write((b"    " if first else b",\n    ") + staged.pop(name, line))
            first = False
        for blob in staged.values():  # sessions new to the store, at its end
            handle.write((b"    " if first else b",\n    ") + blob)
            first = False
        handle.write(b"\n" + self.store.tail)


class _Overwriting:
    """The same staging area, replacing whatever the conflict rule says (a migration's own records)."""

    def __init__(self, writer: MergingWriter) -> None:
        self.writer = writer

    def write(self, batch: Sequence[SessionRecord]) -> None:
        for record in batch:
            self.writer._put(record)
