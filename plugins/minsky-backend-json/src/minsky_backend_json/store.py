"""The JSON store: one document, replaced atomically, guarded by a lock file.

Readers need no lock: the file is only ever replaced whole (``os.replace``), so
a reader sees the old document or the new one. Writers hold ``<file>.lock``
across read-modify-write, so concurrent ``session start`` calls lose nothing.
A file that does not parse is never written over.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import filelock

from minsky.atomic import (
    atomic_writer,
    ensure_private_dir,
    os_error_to_store_error,
    remove_stale_temps,
)
from minsky.backend import MarkerFile, MovedMark, OnConflict, SessionFilter, VerifyReport, conflict_at_commit
from minsky.codec import canonical, canonical_of_dict, compact_bytes, record_from_dict, record_to_dict
from minsky.errors import ConflictError, LockedError, NotFoundError, RecordError, StoreError
from minsky.filters import matches, page
from minsky.model import SessionRecord
from minsky.quarantine import write_quarantine
from minsky_backend_json import turn

Document = dict[str, Any]
MIGRATION_PATIENCE = 4  # a migration's lock wait, in lock timeouts (writers queued before it go first)


class JsonStore:
    def __init__(self, path: Path, *, base_dir: str = "", lock_timeout: float = 30.0) -> None:
        self.path = path
        self.base_dir = base_dir
        self.lock_timeout = lock_timeout

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
            return {"sessions": [], "baseDir": self.base_dir}
        except IsADirectoryError:
            raise StoreError(f"{self.path} is a directory, not a JSON store") from None
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror}") from None
        return parse_document(data, self.path, strict=strict)

    def _records(self, doc: Document) -> Iterator[SessionRecord]:
        for index, item in enumerate(doc["sessions"]):
            yield record_from_dict(item, where=f"{self.path}: sessions[{index}]: ")

    def read(self) -> Iterator[SessionRecord]:
        return self._records(self._load())

    def read_canonical(self) -> Iterator[bytes]:
        """Verification's fast path. A file this store streamed holds each record's canonical
        form on a line of its own: those bytes are handed back as they are, in flat memory.
        Any other layout is parsed whole."""
        try:
            with self.path.open("rb") as handle:
                streamed = handle.readline() == _STREAM_HEAD
        except OSError:
            streamed = False
        if not streamed:
            for index, item in enumerate(self._load()["sessions"]):
                yield canonical_of_dict(item, where=f"{self.path}: sessions[{index}]: ")
            return
        with self.path.open("rb") as handle:
            handle.readline()
            for line in handle:
                text = line.strip().removesuffix(b",")
                if text in (b"]", b""):
                    break
                yield text

    def count(self) -> int:
        return len(self._load()["sessions"])

    def keys(self) -> Iterator[str]:
        return (r.session for r in self.read())

    def get(self, name: str) -> SessionRecord | None:
        return next((r for r in self.read() if r.session == name), None)

    def list(self, where: SessionFilter) -> Iterator[SessionRecord]:
        return page((r for r in self.read() if matches(r, where)), where)

    def size_bytes(self) -> int | None:
        try:
            return self.path.stat().st_size
        except OSError:
            return None

    def verify(self) -> VerifyReport:
        problems: list[str] = []
        doc = self._load(strict=False)
        seen: set[str] = set()
        for index, item in enumerate(doc["sessions"]):
            try:
                name = record_from_dict(item, where=f"sessions[{index}]: ").session
            except RecordError as exc:
                problems.append(str(exc))
                continue
            if name in seen:
                problems.append(f"sessions[{index}]: duplicate session name {name!r}")
            seen.add(name)
        return VerifyReport(ok=not problems, checked=len(doc["sessions"]), problems=tuple(problems))

    def quarantine_unreadable(self, directory: Path) -> tuple[Path | None, Sequence[str]]:
        """Move entries without a usable name, and repeated names, into a quarantine file."""
        with self._locked():
            doc = self._load(strict=False)
            keep, moved, notes, seen = [], [], [], set()
            for index, item in enumerate(doc["sessions"]):
                name = _name(item)
                if not isinstance(item, dict) or not isinstance(name, str) or not name or name in seen:
                    moved.append(item)
                    notes.append(f"sessions[{index}]" + (f" ({name!r}, a repeated name)" if name in seen else ""))
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
        ensure_private_dir(self.path.parent)
        if not claimed:  # as long as the migration may wait for the lock, and a step more
            turn.give_way(self._lock_path, self.lock_timeout * (MIGRATION_PATIENCE + 1))
        timeout = self.lock_timeout * patience
        lock = filelock.FileLock(self._lock_path, timeout=timeout, mode=0o600)
        try:
            lock.acquire()
        except filelock.Timeout:
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

    def _mutate(self, change: Callable[[Document], Any]) -> Any:
        with self._locked():
            doc = self._load()
            result = change(doc)
            self._save(doc)
            return result

    @contextlib.contextmanager
    def bulk_writer(self, on_conflict: OnConflict = "overwrite") -> Iterator[_JsonBulkWriter | _StreamingWriter]:
        # A migration may write into a store marked as moved (moving back): no marker check.
        # The lock is held from the conflict check to the replace: the rule holds at commit time.
        with self._locked(check_moved=False):
            doc = self._load()
            if doc["sessions"]:  # merging into records already there: the document is needed whole
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
        def change(doc: Document) -> None:
            if any(_name(item) == record.session for item in doc["sessions"]):
                raise ConflictError(f"session {record.session!r} already exists in {self.path}")
            doc["sessions"].append(record_to_dict(record))

        self._mutate(change)

    def update(self, name: str, change: Callable[[SessionRecord], SessionRecord]) -> SessionRecord:
        def apply(doc: Document) -> SessionRecord:
            for index, item in enumerate(doc["sessions"]):
                if _name(item) == name:
                    updated = change(record_from_dict(item))
                    doc["sessions"][index] = record_to_dict(updated)
                    return updated
            raise NotFoundError(f"no session named {name!r} in {self.path}")

        result: SessionRecord = self._mutate(apply)
        return result

    def delete(self, name: str) -> bool:
        if not self.exists():
            return False

        def change(doc: Document) -> bool:
            before = len(doc["sessions"])
            doc["sessions"] = [item for item in doc["sessions"] if _name(item) != name]
            return len(doc["sessions"]) != before

        removed: bool = self._mutate(change)
        return removed

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

    def write(self, batch: Sequence[SessionRecord]) -> None:
        sessions = self.doc["sessions"]
        for record in batch:
            data = record_to_dict(record)
            position = self.index.get(record.session)
            if position is not None and position < self.before:  # held before this write began
                self.conflicts.append(record.session)
                if self.on_conflict != "overwrite":
                    continue
            if position is None:
                self.index[record.session] = len(sessions)
                sessions.append(data)
            else:
                sessions[position] = data
        self.changed = True


_STREAM_HEAD = b'{"sessions": [\n'


class _StreamingWriter:
    """Writes ``{"sessions": [...], ...}`` as batches arrive, one record per line."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.names: set[str] = set()
        self.conflicts: list[str] = []  # an empty store under its lock: there are none
        handle.write(_STREAM_HEAD)

    def write(self, batch: Sequence[SessionRecord]) -> None:
        parts = []
        for record in batch:
            if record.session in self.names:
                raise StoreError(f"session {record.session!r} appears twice in one write")
            # Each record's canonical form, a line of its own: verification can hash it as it is.
            parts.append((b"    " if not self.names else b",\n    ") + canonical(record))
            self.names.add(record.session)
        self.handle.write(b"".join(parts))

    def finish(self, rest: Document) -> None:
        self.handle.write(b"\n  ]")
        for key, value in rest.items():
            self.handle.write(b",\n  " + compact_bytes(key) + b": " + compact_bytes(value))
        self.handle.write(b"\n}\n")


def _name(item: Any) -> Any:
    return item.get("session") if isinstance(item, dict) else None


def parse_document(data: bytes, path: Path, *, strict: bool = True) -> Document:
    """Decode a store, or fail naming the file and the position of the problem."""
    if not data.strip():
        raise StoreError(f"{path} is empty: expected a JSON object with a 'sessions' list")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StoreError(f"{path} is not UTF-8: invalid byte at offset {exc.start}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno} (char {exc.pos})"
        ) from None
    except RecursionError:
        raise StoreError(f"{path} is nested too deeply to be a session store") from None
    if not isinstance(doc, dict):
        raise StoreError(f"{path}: expected a JSON object at the top level, found {type(doc).__name__}")
    sessions = doc.get("sessions", [])
    if not isinstance(sessions, list):
        raise StoreError(f"{path}: 'sessions' must be a list, found {type(sessions).__name__}")
    if strict:
        for index, item in enumerate(sessions):
            name = _name(item)
            if not isinstance(name, str) or not name:
                raise StoreError(f"{path}: sessions[{index}] has no 'session' name; run `minsky sessiondb verify`")
    doc["sessions"] = sessions
    return doc


def dump_document(doc: Document) -> bytes:
    return json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8", "surrogatepass") + b"\n"
