"""An audit trail for a shared store: one JSON line per session written or deleted.

Not a backend: it registers no store, it wraps the ``write`` hook
(``@hookimpl(wrapper=True)``), so it sees every write whatever made it — ``session
start``/``end``/``delete``/``clean``, a migration, a restore — on every backend.
A line is appended only after the write succeeded (a refused or failed write
raises through the wrapper and logs nothing).

Each line: ``{"at", "who", "store", "kind", "session", "digest"}`` — when (UTC),
the OS user and host, the store's location (secrets already masked by the
backend), the kind of write (insert, update, upsert, delete), the session, and
the SHA-256 of the record's canonical form (for a delete, of the record removed).
A migration's or restore's batch is staged: its lines are written when the batch
is staged, and the migration's report says whether it committed.

The log is ``$MINSKY_AUDIT_LOG``, by default ``audit.log`` in minsky's state
directory, created 0600; a lock file beside it keeps lines of concurrent
processes whole.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Generator, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from minsky import hookimpl
from minsky.backend import Store
from minsky.codec import record_digest
from minsky.errors import StoreError
from minsky.operations import WriteBatch, Written

ENV = "MINSKY_AUDIT_LOG"


def log_path() -> Path:
    from minsky.paths import state_dir

    configured = os.environ.get(ENV)
    return Path(configured).expanduser() if configured else state_dir() / "audit.log"


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


@hookimpl(wrapper=True)
def write(store: Store, batch: WriteBatch) -> Generator[None, Written, Written]:
    # What a delete removes is gone afterwards: take its digest first (one read per deleted session).
    before: dict[str, str] = {}
    if batch.kind == "delete":
        for name in batch.names:
            record = store.get(name)
            if record is not None:
                before[name] = record_digest(record)
    written = yield
    entries: list[tuple[str, str | None]] = [(r.session, record_digest(r)) for r in written.records]
    entries += [(name, before.get(name)) for name in written.deleted]
    if entries:
        try:
            append(store.location, batch.kind, entries)
        except OSError as exc:  # a full disk, a read-only log: one line, never a traceback
            done = "nothing of it was committed" if batch.kind == "upsert" else "the change itself was made"
            raise StoreError(f"cannot append to the audit log {log_path()}: {exc.strerror}; {done}") from None
    return written


def append(location: str, kind: str, entries: Iterable[tuple[str, str | None]]) -> None:
    from filelock import FileLock

    base: dict[str, Any] = {"at": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "who": _who()}
    base.update(store=location, kind=kind)
    text = "".join(
        json.dumps({**base, "session": name, "digest": digest}, ensure_ascii=False) + "\n" for name, digest in entries
    )
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with FileLock(f"{path}.lock"):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            data = text.encode("utf-8", "surrogatepass")
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)


__all__ = ["ENV", "append", "log_path", "write"]
