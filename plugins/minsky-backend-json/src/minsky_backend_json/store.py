"""The JSON store: one document, replaced atomically, guarded by a lock file.

Two shapes are read and kept: the original Minsky's ``session-db.json`` is a bare
array of records (2-space indent, no trailing newline); minsky's own and the
original's later form is ``{"sessions": [...], "baseDir": "..."}``. A document is
written back in the shape (and final-newline style) it was read in, so a bare
array stays one the original can read, and other top-level keys are kept.

Readers need no lock: the file is only ever replaced whole (``os.replace``), so
a reader sees the old document or the new one. Writers hold ``<file>.lock``
across read-modify-write, so concurrent ``session start`` calls lose nothing.
A file that does not parse is never written over.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import filelock

from minsky import jsonlines as lines
from minsky.atomic import (
    atomic_writer,
    ensure_private_dir,
    file_token,
    os_error_to_store_error,
    refuse_foreign_json,
    remove_stale_temps,
)
from minsky.backend import MarkerFile, MovedMark, OnConflict, SessionFilter, VerifyReport, conflict_at_commit
from minsky.codec import (
    as_found_bytes,
    canonical,
    canonical_of_dict,
    check,
    compact_bytes,
    loads,
    record_from_dict,
    record_to_dict,
)
from minsky.errors import ConflictError, LockedError, NotFoundError, RecordError, StoreError
from minsky.filters import matches, page
from minsky.model import SessionRecord
from minsky.names import GrowingNameHashes
from minsky.quarantine import write_quarantine
from minsky_backend_json import keys, merge, rewrite, turn

_SPLIT_BATCH = 250  # entries a batch of ``read_split``: one message of a forked read
MIGRATION_PATIENCE = 4  # a migration's lock wait, in lock timeouts (writers queued before it go first)


class Document(dict[str, Any]):
    """A store's top-level object, plus how the file was laid out (written back the same way)."""

    bare: bool = False  # the original's bare array: written back as one
    newline: bool = True  # whether the file ended with a newline (the original wrote none)


class JsonStore:
    def __init__(self, path: Path, *, base_dir: str = "", lock_timeout: float = 30.0) -> None:
        self.path = path
        self.base_dir = base_dir
        self.lock_timeout = lock_timeout
        # The file a names pass (``keys``, ``count``) cut in lines to its end, every entry decoding
        # on its own and named: a split read of that very file need not decode entries to prove
        # its cut again (``read_split``). Its ``_identity``, or None.
        self._cut: tuple[int, ...] | None = None

    @property
    def location(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    # -- reading -------------------------------------------------------------

    def _load(self, *, strict: bool = True) -> Document:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return Document(sessions=[], baseDir=self.base_dir)
        except IsADirectoryError:
            raise StoreError(f"{self.path} is a directory, not a JSON store") from None
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror}") from None
        return parse_document(data, self.path, strict=strict)

    def _entries(self, *, strict: bool = True, names_only: bool = False, texts: bool = False) -> Iterator[Any]:
        """The store's entries one at a time, in flat memory when the file is laid out in lines
        (``lines``: every layout a writer of this format produces); else the document is read
        whole, as before. One open file throughout: a writer replacing it meanwhile is not seen.

        ``names_only``: each entry exact in its name alone (``keys``). ``texts``: that, as
        ``(text, entry)``, the text being what ``lines.decode_entry`` decodes exactly (None for an
        entry of a document read whole); the entry is None throughout for the file a names pass
        cut (``_cut``)."""
        try:
            handle = self.path.open("rb", buffering=lines.BUFFER)
        except FileNotFoundError:
            return
        except OSError:
            yield from self._load(strict=strict)["sessions"]  # raises the store's error for it
            return
        with handle:
            done = 0
            try:
                identity = _identity(handle)
                if texts and identity == self._cut:
                    for text in lines.pieces(handle, lines.Layout()):
                        yield text, None
                        done += 1
                    return
                if texts:
                    for text, item in keys.texts_for_names(handle):
                        if strict:
                            _require_name(item, done, self.path)
                        yield text, item
                        done += 1
                    return
                for item in keys.entries_for_names(handle) if names_only else lines.entries_of(handle):
                    if strict:
                        _require_name(item, done, self.path)
                    yield item
                    done += 1
                if names_only and strict and _identity(handle) == identity:  # not changed in place meanwhile
                    self._cut = identity
                return
            except lines.NotLines:
                handle.seek(0)
            except lines.TwoLists:
                raise StoreError(
                    f"{self.path} holds two 'sessions' lists; refusing to guess which one counts",
                    hint="keep one of them (a write would keep only the last)",
                ) from None
            except IsADirectoryError:
                raise StoreError(f"{self.path} is a directory, not a JSON store") from None
            except OSError as exc:
                raise StoreError(f"cannot read {self.path}: {exc.strerror}") from None
            # Not laid out in lines: read whole, as before (the entries handed out are its first ones).
            try:
                data = handle.read()
            except OSError as exc:
                raise StoreError(f"cannot read {self.path}: {exc.strerror}") from None
            sessions = parse_document(data, self.path, strict=strict)["sessions"]
            del data
            rest = itertools.islice(sessions, done, None)
            yield from ((None, item) for item in rest) if texts else rest

    def fork_reader(self) -> JsonStore:
        """A read opens its own handle on the file: ``self`` reads as well in a forked child."""
        return self

    def read(self) -> Iterator[SessionRecord]:
        for index, item in enumerate(self._entries()):
            yield record_from_dict(item, where=f"{self.path}: sessions[{index}]: ")

    def read_split(self) -> tuple[Callable[[Any], SessionRecord], Iterator[Sequence[Any]]] | None:
        """``read()`` as fetched entries and their decoder (``SplitReadStore``): a forked read
        decodes them on other cores too. The fetch cuts the file and decodes each entry for its
        name only (``keys``, as the names pass does), which proves the cut: a decoder is sent text
        that is one whole value, and decodes it as ``read()`` does. An entry of a document read
        whole (not laid out in lines) is sent decoded. None when a subclass changed ``read()``."""
        if type(self).read is not JsonStore.read:
            return None
        path = self.path

        def decode(row: tuple[int, bytes | None, Any]) -> SessionRecord:
            index, text, item = row
            if text is not None:
                try:
                    item = keys.decode_entry(text)
                except lines.NotLines:  # the fetch decoded it: only a damaged process gets here
                    raise StoreError(f"{path}: sessions[{index}] does not decode") from None
            return record_from_dict(item, where=f"{path}: sessions[{index}]: ")

        def batches() -> Iterator[Sequence[tuple[int, bytes | None, Any]]]:
            batch: list[tuple[int, bytes | None, Any]] = []
            try:
                for index, (text, item) in enumerate(self._entries(texts=True)):
                    batch.append((index, text, None) if text is not None else (index, None, item))
                    if len(batch) >= _SPLIT_BATCH:
                        yield batch
                        batch = []
            except Exception:
                if batch:  # the entries before the error first, as ``read()`` gives them
                    yield batch
                raise
            if batch:
                yield batch

        return decode, batches()

    def read_canonical(self) -> Iterator[bytes]:
        """Verification's form of every record, streamed: each entry's canonical form. (A store
        this plugin streamed holds exactly those bytes on each line, but so may look a file
        another writer laid out alike: every line is decoded, never taken on trust.)"""
        for index, item in enumerate(self._entries()):
            yield canonical_of_dict(item, where=f"{self.path}: sessions[{index}]: ")

    def count(self) -> int:
        return sum(1 for _ in self._entries(names_only=True))

    def keys(self) -> Iterator[str]:
        # A strict read has checked that every entry has a name: no records need building.
        return (item["session"] for item in self._entries(names_only=True))

    def get(self, name: str) -> SessionRecord | None:
        # Stops at the first match: the rest of the file is not read.
        for index, item in enumerate(self._entries()):
            if item["session"] == name:
                return record_from_dict(item, where=f"{self.path}: sessions[{index}]: ")
        return None

    def list(self, where: SessionFilter) -> Iterator[SessionRecord]:
        return page((r for r in self.read() if matches(r, where)), where)

    def change_token(self) -> tuple[int, ...] | None:
        """The file's identity, size and timestamps (``file_token``): every writer of this format
        replaces the file or rewrites it in place (the original Minsky), and either moves them."""
        return file_token(self.path)

    def size_bytes(self) -> int | None:
        try:
            return self.path.stat().st_size
        except OSError:
            return None

    def verify(self) -> VerifyReport:
        problems: list[str] = []
        seen: dict[str, int] = {}
        checked = 0
        for index, item in enumerate(self._entries(strict=False)):
            checked += 1
            try:
                name = check(record_from_dict(item, where=f"sessions[{index}]: ")).session
            except RecordError as exc:
                problems.append(str(exc))
                continue
            if name in seen:
                problems.append(
                    f"sessions[{index}]: duplicate session name {name!r} (first at sessions[{seen[name]}]; "
                    "--repair moves the later copy aside, a migration chooses with --on-duplicate)"
                )
            seen.setdefault(name, index)
        return VerifyReport(ok=not problems, checked=checked, problems=tuple(problems))

    def quarantine_unreadable(self, directory: Path) -> tuple[Path | None, Sequence[str]]:
        """Move entries without a usable name, repeated names and records no store can hold
        exactly into a quarantine file."""
        with self._locked():
            doc = self._load(strict=False)
            keep, moved, notes, seen = [], [], [], set()
            for index, item in enumerate(doc["sessions"]):
                name = _name(item)
                if not isinstance(item, dict) or not isinstance(name, str) or not name or name in seen:
                    moved.append(item)
                    notes.append(f"sessions[{index}]" + (f" ({name!r}, a repeated name)" if name in seen else ""))
                    continue
                try:
                    check(record_from_dict(item))
                except RecordError as exc:
                    moved.append(item)
                    notes.append(f"sessions[{index}] {exc}")
                    continue
                seen.add(name)
                keep.append(item)
            if not moved:
                return None, []
            path = write_quarantine(directory, backend="json", location=str(self.path), entries=moved)
            doc["sessions"] = keep
            self._save(doc)
            return path, notes

    # -- writing -------------------------------------------------------------

    def moved(self) -> MovedMark | None:
        return MarkerFile(self.path).read()

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[MarkerFile]:
        # Writers already queued go first, each holding the lock for a whole-document rewrite
        # (seconds on a large store): the migration may wait for several of them.
        with turn.claim(self._lock_path), self._locked(check_moved=False, claimed=True, patience=MIGRATION_PATIENCE):
            yield MarkerFile(self.path)

    @property
    def _lock_path(self) -> Path:
        return Path(f"{self.path}.lock")

    @contextlib.contextmanager
    def _locked(self, *, check_moved: bool = True, claimed: bool = False, patience: float = 1) -> Iterator[None]:
        """The lock file, held across read-modify-write. Checked after the wait: a writer that
        queued behind a migration must see the marker that migration left."""
        refuse_foreign_json(self.path)  # before the lock file, so nothing is left beside a foreign file
        ensure_private_dir(self.path.parent)
        if not claimed:  # as long as the migration may wait for the lock, and a step more
            turn.give_way(self._lock_path, self.lock_timeout * (MIGRATION_PATIENCE + 1))
        timeout = self.lock_timeout * patience
        lock = filelock.FileLock(self._lock_path, timeout=timeout, mode=0o600)
        while True:
            try:
                lock.acquire()
                break
            except filelock.Timeout:
                # A migration finishing (its claim live) holds the lock or is next: wait on.
                if claimed or not turn.active(self._lock_path):
                    raise LockedError(
                        f"{self.path} is locked by another minsky process (waited {timeout:g}s)",
                        hint=f"check with: lsof {self.path}.lock",
                    ) from None
            except OSError as exc:
                raise os_error_to_store_error(exc, Path(f"{self.path}.lock")) from None
        try:
            mark = self.moved() if check_moved else None
            if mark is not None:
                raise mark.refusal(str(self.path))
            remove_stale_temps(self.path)
            yield
        finally:
            lock.release()

    def _save(self, doc: Document) -> None:
        with atomic_writer(self.path) as handle:
            handle.write(dump_document(doc))

    def _mutate(self, change: Callable[[Document], Any], edit: Callable[[Iterator[Any]], Iterator[Any]]) -> None:
        """Apply a change under the lock: streamed entry by entry (``edit``, flat memory) when the
        file is laid out in lines, else to the whole document (``change``), as before."""
        with self._locked():
            if not self._rewrite(edit):
                doc = self._load()
                change(doc)
                self._save(doc)

    def _rewrite(self, edit: Callable[[Iterator[Any]], Iterator[Any]]) -> bool:
        try:
            source = self.path.open("rb", buffering=lines.BUFFER)
        except OSError:
            return False  # absent or unreadable: the whole-document path creates it or names the error
        with source:
            try:
                with atomic_writer(self.path) as target:
                    rewrite.rewrite(source, target, edit)
            except lines.NotLines:
                return False  # nothing was replaced
            except lines.TwoLists:
                raise StoreError(
                    f"{self.path} holds two 'sessions' lists; refusing to guess which one counts",
                    hint="keep one of them (a write would keep only the last)",
                ) from None
        return True

    @contextlib.contextmanager
    def bulk_writer(
        self, on_conflict: OnConflict = "overwrite"
    ) -> Iterator[_JsonBulkWriter | _StreamingWriter | merge.MergingWriter]:
        # A migration may write into a store marked as moved (moving back): no marker check.
        # The lock is held from the conflict check to the replace: the rule holds at commit time.
        with self._locked(check_moved=False):
            streamed = merge.scan(self.path)
            if streamed is not None:  # a store minsky streamed: merged line by line, never parsed whole
                merging = merge.MergingWriter(streamed, on_conflict)
                yield merging
                if merging.conflicts and on_conflict == "fail":
                    raise conflict_at_commit(str(self.path), merging.conflicts)
                if merging.changed:
                    with atomic_writer(self.path) as handle:
                        merging.commit(self.path, handle)
                return
            doc = self._load()
            # Merging into records already there, or keeping the original's bare array:
            # the document is written whole.
            if doc["sessions"] or doc.bare:
                writer = _JsonBulkWriter(doc, on_conflict)
                yield writer
                if writer.conflicts and on_conflict == "fail":
                    raise conflict_at_commit(str(self.path), writer.conflicts)
                if writer.changed:
                    self._save(doc)
                return
            # A new (or empty) store: stream records straight into the new file; memory stays flat.
            with atomic_writer(self.path) as handle:
                streaming = _StreamingWriter(handle)
                yield streaming
                streaming.finish({key: value for key, value in doc.items() if key != "sessions"})

    def insert(self, record: SessionRecord) -> None:
        def conflict() -> ConflictError:
            return ConflictError(f"session {record.session!r} already exists in {self.path}")

        def change(doc: Document) -> None:
            if any(_name(item) == record.session for item in doc["sessions"]):
                raise conflict()
            doc["sessions"].append(record_to_dict(record))

        def edit(entries: Iterator[Any]) -> Iterator[Any]:
            for index, item in enumerate(entries):
                _require_name(item, index, self.path)
                if item["session"] == record.session:
                    raise conflict()
                yield item
            yield record_to_dict(record)

        self._mutate(change, edit)

    def update(self, name: str, change: Callable[[SessionRecord], SessionRecord]) -> SessionRecord:
        result: list[SessionRecord] = []

        def apply(doc: Document) -> None:
            result.clear()  # from a streamed attempt that found the layout unprovable part-way
            for index, item in enumerate(doc["sessions"]):
                if _name(item) == name:
                    result.append(change(record_from_dict(item)))
                    doc["sessions"][index] = record_to_dict(result[0])
                    return
            raise NotFoundError(f"no session named {name!r} in {self.path}")

        def edit(entries: Iterator[Any]) -> Iterator[Any]:
            for index, item in enumerate(entries):
                _require_name(item, index, self.path)
                if not result and item["session"] == name:
                    result.append(change(record_from_dict(item)))
                    item = record_to_dict(result[0])
                yield item
            if not result:
                raise NotFoundError(f"no session named {name!r} in {self.path}")

        self._mutate(apply, edit)
        return result[0]

    def delete(self, name: str) -> bool:
        if not self.exists():
            return False
        removed: list[bool] = []

        def change(doc: Document) -> None:
            removed.clear()
            before = len(doc["sessions"])
            doc["sessions"] = [item for item in doc["sessions"] if _name(item) != name]
            removed.append(len(doc["sessions"]) != before)

        def edit(entries: Iterator[Any]) -> Iterator[Any]:
            found = False
            for index, item in enumerate(entries):
                _require_name(item, index, self.path)
                if item["session"] == name:
                    found = True
                    continue
                yield item
            removed.append(found)

        self._mutate(change, edit)
        return removed[-1]

    def close(self) -> None:
        pass


class _JsonBulkWriter:
    def __init__(self, doc: Document, on_conflict: OnConflict = "overwrite") -> None:
        self.doc = doc
        self.on_conflict = on_conflict
        self.index = {_name(item): i for i, item in enumerate(doc["sessions"])}
        self.before = len(doc["sessions"])
        self.conflicts: list[str] = []
        self.changed = False

    def write(self, batch: Sequence[SessionRecord], *, replace: bool = False) -> None:
        sessions = self.doc["sessions"]
        for record in batch:
            data = record_to_dict(record)
            position = self.index.get(record.session)
            # Held before this write began, or (but for overwrite, where the last copy wins) given
            # earlier in it.
            if not replace and position is not None and (position < self.before or self.on_conflict != "overwrite"):
                self.conflicts.append(record.session)
                if self.on_conflict != "overwrite":
                    continue
            if position is None:
                self.index[record.session] = len(sessions)
                sessions.append(data)
            else:
                sessions[position] = data
        self.changed = True

    def overwriting(self) -> _Overwriting:
        return _Overwriting(self)

    def delete(self, names: Sequence[str]) -> Sequence[str]:
        """Drop records from the document (a migration's last step); the names that were there."""
        there = [name for name in names if name in self.index]
        if there:
            drop = set(there)
            self.before -= sum(1 for name in drop if self.index[name] < self.before)
            self.doc["sessions"] = [item for item in self.doc["sessions"] if _name(item) not in drop]
            self.index = {_name(item): i for i, item in enumerate(self.doc["sessions"])}
            self.changed = True
        return there


class _Overwriting:
    """The same document, replacing whatever the conflict rule says (a migration's own records)."""

    def __init__(self, writer: _JsonBulkWriter) -> None:
        self.writer = writer

    def write(self, batch: Sequence[SessionRecord]) -> None:
        self.writer.write(batch, replace=True)


_STREAM_HEAD = merge.HEAD


class _StreamingWriter:
    """Writes ``{"sessions": [...], ...}`` as batches arrive, one record per line."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        # The names written, as hashes (8 bytes a name, not a set of a million strings); a hash
        # met again is confirmed by name against what was written.
        self.names = GrowingNameHashes()
        self.conflicts: list[str] = []  # an empty store under its lock: there are none
        handle.write(_STREAM_HEAD)

    def write(self, batch: Sequence[SessionRecord]) -> None:
        parts: list[bytes] = []
        for record in batch:
            first = not len(self.names)
            if not self.names.add(record.session) and self._written(record.session, parts):
                raise StoreError(f"session {record.session!r} appears twice in one write")
            # Each record's canonical form, a line of its own: verification can hash it as it is.
            parts.append((b"    " if first else b",\n    ") + canonical(record))
        self.handle.write(b"".join(parts))

    def _written(self, name: str, pending: list[bytes]) -> bool:
        """Whether a record of this name is in the file so far or in ``pending`` (read back
        without moving the write position; only when a name's hash was met before). Each
        record is one line (canonical JSON holds no raw newline)."""
        self.handle.flush()
        fd, offset, tail = self.handle.fileno(), 0, b""
        while chunk := os.pread(fd, 1 << 20, offset):  # a megabyte at a time: memory stays flat
            offset += len(chunk)
            *lines, tail = (tail + chunk).split(b"\n")
            if any(_names_record(line, name) for line in lines):
                return True
        return any(_names_record(line, name) for line in (tail + b"".join(pending)).split(b"\n"))

    def finish(self, rest: dict[str, Any]) -> None:
        self.handle.write(b"\n  ]")
        for key, value in rest.items():
            self.handle.write(b",\n  " + compact_bytes(key) + b": " + compact_bytes(value))
        self.handle.write(b"\n}\n")


def _names_record(line: bytes, name: str) -> bool:
    """Whether a line of a streamed store is a record named ``name`` (the head is not)."""
    text = line.strip().strip(b",").strip()
    if not text.startswith(b"{") or not text.endswith(b"}"):
        return False
    try:
        found = loads(text)
    except ValueError:
        return False
    return isinstance(found, dict) and found.get("session") == name


def _name(item: Any) -> Any:
    return item.get("session") if isinstance(item, dict) else None


# A key spelt with an escaped ASCII letter ("sess\u0069ons"): no encoder writes one, a forger might.
_ESCAPED_LETTER = re.compile(rb"\\u00[4-7][0-9a-fA-F]")


def _two_lists(data: bytes) -> bool:
    """Whether the top-level object names ``sessions`` twice. A decoder keeps the last one and a
    write would drop the first, so such a file is refused as the streamed read refuses it. The
    careful second decode runs only when the bytes allow a repeat (rare: the quoted word twice)."""
    if data.count(b'"sessions"') < 2 and not (b"\\u00" in data and _ESCAPED_LETTER.search(data)):
        return False
    outermost: list[list[tuple[str, Any]]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        outermost[:] = [items]  # objects close innermost first: the last one seen is the top level
        return dict(items)

    try:
        json.loads(data.decode("utf-8", "surrogateescape"), object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return False  # the first decode accepted it; nothing more to say here
    return bool(outermost) and [k for k, _ in outermost[0]].count("sessions") > 1


def parse_document(data: bytes, path: Path, *, strict: bool = True) -> Document:
    """Decode a store, or fail naming the file and the position of the problem."""
    if not data.strip():
        raise StoreError(f"{path} is empty: expected a JSON array of sessions or an object with a 'sessions' list")
    try:
        value = loads(data)  # a byte that is not UTF-8 spoils its record only (named), not the store
    except json.JSONDecodeError as exc:
        # Laid out in lines, an entry nested too deep to decode spoils only itself (refused by
        # name, kept as found, moved aside by `check --repair`): read entry by entry.
        doc = _document_from_lines(data, strict=strict, path=path)
        if doc is not None:
            return doc
        raise StoreError(
            # Some of the decoder's messages end in "at" ("Unterminated string starting at"): not twice.
            f"{path} is not valid JSON: {exc.msg.removesuffix(' at')} at line {exc.lineno}, column {exc.colno} "
            f"(char {exc.pos})"
        ) from None
    except RecursionError:
        raise StoreError(f"{path} is nested too deeply to be a session store") from None
    if isinstance(value, list):  # the original's session-db.json: a bare array of records
        doc = Document(sessions=value)
        doc.bare = True
    elif isinstance(value, dict):
        if value and "sessions" not in value:
            # Not a store (perhaps the original's backup wrapper): reading it as an empty one would
            # hide its sessions, and the first write would add a list beside them.
            raise StoreError(
                f"{path}: a JSON object without a 'sessions' list is not a session store",
                hint=f"a backup is restored with: minsky sessiondb restore --backup {path} --to json"
                if isinstance(value.get("data"), dict)
                else None,
            )
        if _two_lists(data):
            raise StoreError(
                f"{path} holds two 'sessions' lists; refusing to guess which one counts",
                hint="keep one of them (a write would keep only the last)",
            )
        doc = Document(value)
    else:
        raise StoreError(f"{path}: expected a JSON array or object at the top level, found {type(value).__name__}")
    doc.newline = data.endswith(b"\n")
    sessions = doc.setdefault("sessions", [])
    if not isinstance(sessions, list):
        raise StoreError(f"{path}: 'sessions' must be a list, found {type(sessions).__name__}")
    if strict:
        for index, item in enumerate(sessions):
            _require_name(item, index, path)
    return doc


def _document_from_lines(data: bytes, *, strict: bool, path: Path) -> Document | None:
    """The document read entry by entry (``lines``), or None when it is not laid out in lines."""
    layout = lines.Layout()
    try:
        sessions = list(lines.entries_of(io.BytesIO(data), layout))
    except lines.NotLines:
        return None
    except lines.TwoLists:
        raise StoreError(
            f"{path} holds two 'sessions' lists; refusing to guess which one counts",
            hint="keep one of them (a write would keep only the last)",
        ) from None
    doc = Document(sessions=sessions, **layout.rest)
    doc.bare, doc.newline = layout.bare, layout.newline
    if strict:
        for index, item in enumerate(sessions):
            _require_name(item, index, path)
    return doc


def _identity(handle: IO[bytes]) -> tuple[int, ...]:
    """An open file's identity: a writer of this store replaces the file (a new inode); one
    writing in place changes its size or times."""
    st = os.fstat(handle.fileno())
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _require_name(item: Any, index: int, path: Path) -> None:
    name = _name(item)
    if not isinstance(name, str) or not name:
        raise StoreError(f"{path}: sessions[{index}] has no 'session' name; run `minsky sessiondb verify`")


def dump_document(doc: Document) -> bytes:
    """The document in its own shape: the original wrote ``JSON.stringify(value, null, 2)``,
    which this reproduces byte for byte, so records a write did not touch keep their bytes."""
    value = doc["sessions"] if doc.bare else doc
    # An entry no store can hold exactly (kept until `check --repair` moves it) is written back as found.
    text = as_found_bytes(value, indent=2)
    return text + b"\n" if doc.newline else text
