"""The JSON Lines store.

Reads stream line by line. Every write builds a new file beside the old one and
replaces it in one step (``os.replace``), under a lock file, so readers see the
old file or the new one and concurrent writers queue.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import filelock

from minsky.atomic import ensure_private_dir, file_token, fsync_dir
from minsky.backend import MarkerFile, MovedMark, OnConflict, SessionFilter, VerifyReport, conflict_at_commit
from minsky.codec import as_found_bytes, loads, record_from_dict, record_to_dict
from minsky.errors import ConflictError, LockedError, NotFoundError, StoreError
from minsky.filters import matches, page
from minsky.model import SessionRecord


def _line(record: SessionRecord) -> bytes:
    # The engine hands over only records the codec accepts; one kept from the file is written back as found.
    return as_found_bytes(record_to_dict(record)) + b"\n"


class JsonlStore:
    def __init__(self, path: Path, lock_timeout: float = 30.0) -> None:
        self.path = path
        self.lock_timeout = lock_timeout

    @property
    def location(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    # -- reading: one line at a time ------------------------------------------

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror}") from None
        with handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, line

    def read(self) -> Iterator[SessionRecord]:
        for number, line in self._lines():
            try:
                data = loads(line)
            except (ValueError, UnicodeDecodeError) as exc:
                raise StoreError(f"{self.path}: line {number} is not valid JSON ({exc})") from None
            yield record_from_dict(data, where=f"{self.path}: line {number}: ")

    def count(self) -> int:
        return sum(1 for _ in self._lines())

    def keys(self) -> Iterator[str]:
        return (record.session for record in self.read())

    def get(self, name: str) -> SessionRecord | None:
        return next((r for r in self.read() if r.session == name), None)

    def list(self, where: SessionFilter) -> Iterator[SessionRecord]:
        return page((r for r in self.read() if matches(r, where)), where)

    def verify(self) -> VerifyReport:
        problems: list[str] = []
        seen: set[str] = set()
        checked = 0
        for number, line in self._lines():
            checked += 1
            try:
                name = record_from_dict(loads(line), where=f"line {number}: ").session
            except (ValueError, UnicodeDecodeError, StoreError) as exc:
                problems.append(f"line {number}: {exc}")
                continue
            if name in seen:
                problems.append(f"line {number}: duplicate session name {name!r}")
            seen.add(name)
        return VerifyReport(ok=not problems, checked=checked, problems=tuple(problems))

    def change_token(self) -> tuple[int, ...] | None:
        """The file's stat (``minsky.atomic.file_token``): every write replaces the file whole, so
        a migration from this store need not read it a second time to know nothing changed."""
        return file_token(self.path)

    def size_bytes(self) -> int | None:
        return self.path.stat().st_size if self.path.exists() else None

    # -- writing: rewrite into a temp file, then replace ------------------------

    # -- the moved marker (a file beside the store) and the write lock ----------

    def moved(self) -> MovedMark | None:
        return MarkerFile(self.path).read()

    @contextlib.contextmanager
    def _lock(self, *, check_moved: bool) -> Iterator[None]:
        ensure_private_dir(self.path.parent)
        lock = filelock.FileLock(f"{self.path}.lock", timeout=self.lock_timeout, mode=0o600)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise LockedError(f"{self.path} is locked by another process") from None
        try:
            mark = self.moved() if check_moved else None
            if mark is not None:  # read after the wait: a migration may have left it meanwhile
                raise mark.refusal(str(self.path))
            yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[MarkerFile]:
        with self._lock(check_moved=False):
            yield MarkerFile(self.path)

    # -- writing: rewrite into a temp file, then replace ------------------------

    @contextlib.contextmanager
    def _rewrite(self, *, check_moved: bool = True) -> Iterator[IO[bytes]]:
        """Hold the lock and yield a temp file; on success it replaces the store."""
        with self._lock(check_moved=check_moved):
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
                try:
                    with os.fdopen(fd, "wb") as out:
                        yield out
                        out.flush()
                        os.fsync(out.fileno())
                    os.replace(tmp, self.path)
                    fsync_dir(self.path.parent)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
            except OSError as exc:
                raise StoreError(f"cannot write {self.path}: {exc.strerror}") from None

    def _copy_except(self, out: IO[bytes], names: set[str]) -> None:
        for record in self.read():
            if record.session not in names:
                out.write(_line(record))

    @contextlib.contextmanager
    def bulk_writer(self, on_conflict: OnConflict = "overwrite") -> Iterator[_Staging]:
        # Staged lines wait in their own temp file; only the names stay in memory. The conflict
        # rule is applied under the lock, as the file is rewritten: it holds at commit time.
        # A migration may write into a store marked as moved (moving back): no marker check.
        with tempfile.TemporaryFile() as staged:
            staging = _Staging(staged)
            yield staging
            with self._rewrite(check_moved=False) as out:
                present: set[str] = set()
                for record in self.read():
                    if record.session in staging.names:
                        present.add(record.session)
                        staging.conflicts.append(record.session)
                        if on_conflict == "overwrite":
                            continue
                    out.write(_line(record))
                if on_conflict != "overwrite":  # a name staged twice: its later copies are conflicts too
                    staging.conflicts += [name for name, n in staging.names.items() for _ in range(n - 1)]
                if staging.conflicts and on_conflict == "fail":
                    raise conflict_at_commit(str(self.path), staging.conflicts)
                staged.seek(0)
                for line in staged:
                    name = loads(line)["session"]
                    staging.names[name] -= 1
                    if on_conflict == "overwrite":
                        if staging.names[name] == 0:  # a name staged twice: its last copy wins, as in an upsert
                            out.write(line)
                    elif name not in present:  # skip: what is there stays, and a name's first copy wins
                        present.add(name)
                        out.write(line)

    def insert(self, record: SessionRecord) -> None:
        with self._rewrite() as out:
            for existing in self.read():
                if existing.session == record.session:
                    raise ConflictError(f"session {record.session!r} already exists in {self.path}")
                out.write(_line(existing))
            out.write(_line(record))

    def update(self, name: str, change: Callable[[SessionRecord], SessionRecord]) -> SessionRecord:
        updated: SessionRecord | None = None
        with self._rewrite() as out:
            for existing in self.read():
                if existing.session == name:
                    existing = updated = change(existing)
                out.write(_line(existing))
            if updated is None:
                raise NotFoundError(f"no session named {name!r} in {self.path}")
        return updated

    def delete(self, name: str) -> bool:
        if self.get(name) is None:
            return False
        with self._rewrite() as out:
            self._copy_except(out, {name})
        return True

    def close(self) -> None:
        pass


class _Staging:
    def __init__(self, staged: IO[bytes]) -> None:
        self.staged = staged
        self.names: dict[str, int] = {}
        self.conflicts: list[str] = []

    def write(self, batch: Sequence[SessionRecord]) -> None:
        for record in batch:
            self.names[record.session] = self.names.get(record.session, 0) + 1
            self.staged.write(_line(record))


__all__ = ["JsonlStore"]
