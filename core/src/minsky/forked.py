"""Reading a migration's source in a forked child process.

One process runs Python code on one core at a time (the GIL), so a reader thread and a
writer thread share a core. A child forked just before the read decodes the source
(fetch, checks, canonical forms) on the other core while the parent writes the target:
the parent only rebuilds each record from bytes the child proved exact.

Used only where nothing can tell the difference: the source says its reads may run in a
fork (``ForkableStore``), no plugin wraps the read hook (a wrapper's state would live in
the child), the platform forks (Linux), and the store is big enough for it to pay.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pickle
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable, Generator, Iterator
from typing import Any, Final

import orjson

from minsky import hooks
from minsky.backend import ForkableStore, ReadableStore
from minsky.codec import (
    UnrepresentableError,
    canonical,
    canonical_sha256,
    decoded_from_canonical,
    orjson_exact,
    record_from_canonical,
    record_from_dict,
    record_to_dict,
    with_premade,
)
from minsky.errors import MinskyError, StoreError
from minsky.model import SessionRecord

log = logging.getLogger(__name__)

MIN_RECORDS: Final = 5000
"""Below this many records a fork costs more than it saves. ``MINSKY_FORKED_READ_MIN``
overrides it (``0``: always; ``off``: never)."""
BATCH: Final = 250  # records a message carries
PIPE_BYTES: Final = 1 << 20  # the pipe holds ~1,000 records: the child reads on while the parent writes
_HEAD: Final = struct.Struct("<I")
_BATCH, _ERROR, _DONE = b"B", b"E", b"D"
GRACE_SECONDS: Final = 5.0  # for a child that finished, or was told to stop, to end by itself
RECURSION_LIMIT: Final = 20_000


def wanted(store: ReadableStore, records: int) -> bool:
    """Whether a migration of ``records`` records reads ``store`` in a child process."""
    setting = os.environ.get("MINSKY_FORKED_READ_MIN", "").strip().lower()
    if setting in ("off", "never", "no"):
        return False
    try:
        least = int(setting) if setting else MIN_RECORDS
    except ValueError:
        least = MIN_RECORDS
    if records < least or not hasattr(os, "fork") or not sys.platform.startswith("linux"):
        return False
    if not isinstance(store, ForkableStore):
        return False
    # Only core's own read: a plugin's wrapper, run in the child, would keep what it learns there.
    impls = hooks.relay().read.get_hookimpls()
    return all(impl.plugin_name == "minsky.builtin" for impl in impls)


def key_order_needed(renames: bool) -> bool:
    """Whether the parent may look at a record's dict (its key order included) although the
    writer was handed its row ready-made: when it may rename or skip a copy of a repeated name
    (``renames``: it then makes that copy's row itself), or a plugin's write hook sees the
    records. A writer given rows stores the canonical form, whose order is sorted anyway."""
    impls = hooks.relay().write.get_hookimpls()
    return renames or not all(impl.plugin_name == "minsky.builtin" for impl in impls)


def read_in_child(
    store: ForkableStore, maker: Callable[[SessionRecord], object] | None, *, key_order: bool = True
) -> Iterator[SessionRecord] | None:
    """``hooks.read(store)``, read by a child forked now; the records come back in order, each with
    what ``maker`` (the target writer's ``row_maker``) made of it there (``codec.premade``).

    ``key_order=False``: nothing here will look at a record whose row was made there but through
    its canonical form (``key_order_needed``), so such a record crosses as that form alone, not
    with its dict in its own key order as well (a JSON store's records: that second encoding and
    its bytes were a fifth of the child's work, JSON -> PostgreSQL).

    Whatever the child's read raises is raised here, after the records read before it. The
    child stops (and closes its source) when this iterator is closed, and ends when the parent
    does: its next write finds the pipe closed. None when no child can be forked (a process
    limit): the caller reads in this process."""
    reader = store.fork_reader()  # shares no connection or file offset with the parent's store
    receive, send = os.pipe()
    with contextlib.suppress(OSError):  # Linux; elsewhere the default pipe only makes it slower
        fcntl.fcntl(send, 1031, PIPE_BYTES)  # F_SETPIPE_SZ
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError as exc:  # EAGAIN: RLIMIT_NPROC, a cgroup's pids.max
        log.debug("no reader process (%s): reading in this one", exc)
        os.close(receive)
        os.close(send)
        return None
    if pid == 0:  # the child: never returns
        os.close(receive)
        status = 1
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C reaches the parent too, which ends us
            for signum in (signal.SIGTERM, signal.SIGHUP):  # unwound: the source closed, a query cancelled
                signal.signal(signum, _stop)
            _serve(reader, send, maker, store.location, key_order)
            status = 0
        finally:
            os._exit(status)  # no atexit handlers, no finalizers of the parent's objects
    os.close(send)
    return _FromChild(pid, receive, store.location, maker)


class _Stopped(SystemExit):
    """SIGTERM or SIGHUP in the child: what it was doing unwinds (its source closed; psycopg
    cancels a running query on SystemExit, as on Ctrl-C)."""


def _stop(signum: int, _frame: object) -> None:
    for other in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, signal.SIG_IGN)
    raise _Stopped(signum)


def _serve(
    store: ReadableStore, fd: int, maker: Callable[[SessionRecord], object] | None, location: str, key_order: bool
) -> None:
    """The child's work; the source is closed however it ends (an exception raised while telling
    the parent must not leave it open: ``os._exit`` runs no finalizer)."""
    records = hooks.read(store)
    try:
        _stream(records, fd, maker, location, key_order)
    finally:
        close = getattr(records, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()


def _stream(
    records: Iterator[SessionRecord],
    fd: int,
    maker: Callable[[SessionRecord], object] | None,
    location: str,
    key_order: bool,
) -> None:
    """Each record as the bytes the parent rebuilds it from, and its row, in batches."""
    batch: list[Any] = []
    try:
        for record in records:
            made = None
            if maker is not None:
                try:
                    made = maker(record)
                except Exception:  # the writer makes it again, and fails there as it would have
                    made = None
            batch.append((_portable(record, key_order or made is None), made))
            if len(batch) >= BATCH:
                _send(fd, _BATCH, batch)
                batch = []
        if batch:
            _send(fd, _BATCH, batch)
        _send(fd, _DONE, None)
    except BrokenPipeError:  # the parent stopped reading: nothing to tell it
        return
    except _Stopped as exc:
        name = signal.Signals(exc.args[0]).name
        _send(fd, _ERROR, (StoreError(f"reading {location}: the process reading it was stopped ({name})"), ""))
    except BaseException as exc:  # what was read comes first, then the error, raised by the parent
        if batch:
            _send(fd, _BATCH, batch)
        _send(fd, _ERROR, (_picklable(exc), traceback.format_exc()))


def _portable(record: SessionRecord, key_order: bool = True) -> Any:
    """A record as its name, canonical form and that form's SHA-256, plus (``key_order``) its dict
    as orjson writes it when that is not the canonical form (the parent decodes either only if
    asked: ``record_from_canonical``); or, what orjson cannot write or read exactly (an integer
    past 64 bits, a record with no canonical form), as its dict and canonical form, pickled."""
    memo = record._memo
    blob: bytes | None = memo.get("canonical")
    if blob is not None and "text" in memo:  # ``decoded_from_canonical``, as a reader proved it: most records
        return (record.session, blob, canonical_sha256(record))
    exact = decoded_from_canonical(record)  # checked before canonical() keeps a form of its own
    data = record_to_dict(record)
    try:
        blob = canonical(record)
    except UnrepresentableError:
        blob = None
    if blob is not None:
        sha256 = canonical_sha256(record)  # hashed here, on this core (or by the reader)
        if exact or (not key_order and orjson_exact(blob)):  # the parent decodes the form exactly
            return (record.session, blob, sha256)
        try:
            # The canonical form has passed the strict check: what orjson writes of the same
            # values, in the dict's own order, it reads back as the very same dict.
            ordered = orjson.dumps(data)
        except TypeError:
            pass
        else:
            return (record.session, blob, sha256) if ordered == blob else (record.session, blob, sha256, ordered)
    return (data, blob)


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes, in memory
    except Exception:  # anything pickling an exception can raise
        if isinstance(exc, MinskyError):
            return StoreError(str(exc), hint=exc.hint)
        return StoreError(f"{type(exc).__name__}: {exc}")
    return exc


def _send(fd: int, kind: bytes, payload: Any) -> None:
    # Pickling a record nests deeper than decoding it did: as deep as the reader accepts. Raised
    # for the pickling only: the child decodes within the limit this process reads with, so what
    # it reads or refuses is what a read in this process would (a record 2,000 deep included).
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, RECURSION_LIMIT))
    try:
        body = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        sys.setrecursionlimit(limit)
    head = _HEAD.pack(len(body) + 1) + kind
    sent = os.writev(fd, [head, body])  # no copy of the batch to put the head before it
    if sent < len(head):
        _write_all(fd, head[sent:])
        sent = len(head)
    _write_all(fd, memoryview(body)[sent - len(head) :])


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_into(fd: int, view: memoryview) -> bool:
    """Fill ``view`` from the pipe; False if it ended first."""
    done, size = 0, len(view)
    while done < size:
        got = os.readv(fd, [view[done:]])
        if not got:
            return False
        done += got
    return True


class _FromChild:
    """The records the child sends, in order. Closing it (whether or not it was started) closes
    the pipe, which stops a child still reading at its next write, and reaps the child."""

    def __init__(self, pid: int, fd: int, location: str, maker: Callable[[SessionRecord], object] | None) -> None:
        self.pid, self.fd, self.location, self.maker = pid, fd, location, maker
        self.records: Generator[SessionRecord, None, None] = self._receive()

    def __iter__(self) -> Iterator[SessionRecord]:
        return self

    def __next__(self) -> SessionRecord:
        return next(self.records)

    def close(self) -> None:
        self.records.close()
        self._shut(patient=False)

    def _shut(self, *, patient: bool) -> str:
        fd, self.fd = self.fd, -1
        if fd < 0:
            return "ended"
        os.close(fd)  # a child still reading finds its pipe closed at its next write, and stops
        return _reap(self.pid, patient=patient)

    def _receive(self) -> Generator[SessionRecord, None, None]:
        finished = False
        head = bytearray(_HEAD.size)
        buffer = bytearray()  # one for every message, grown as needed: read into, never joined nor sliced
        try:
            while True:
                size = _HEAD.unpack(head)[0] if _read_into(self.fd, memoryview(head)) else 0
                if size > len(buffer):
                    buffer = bytearray(size)
                with memoryview(buffer)[:size] as body:
                    if not size or not _read_into(self.fd, body):
                        finished = True
                        raise StoreError(
                            f"reading {self.location}: the process reading it ended before the end "
                            f"({self._shut(patient=True)})",
                            hint="run the command again; with MINSKY_FORKED_READ_MIN=off it reads in this process",
                        )
                    kind, payload = body[:1].tobytes(), pickle.loads(body[1:])  # noqa: S301 - from our own child
                if kind == _BATCH:
                    maker = self.maker
                    for item, made in payload:
                        if len(item) > 2:  # its dict decoded exactly, only when asked
                            record = record_from_canonical(*item)
                        else:
                            record = record_from_dict(item[0], canonical_form=item[1])
                        if made is not None:
                            with_premade(record, maker, made)
                        yield record
                elif kind == _ERROR:
                    finished = True
                    exc, trace = payload
                    log.debug("the source's reader process failed:\n%s", trace)
                    raise exc
                else:
                    finished = True
                    return
        finally:
            self._shut(patient=finished)


def _reap(pid: int, *, patient: bool) -> str:
    """Wait for the child; how it ended. One that has not ended in a moment (waiting on a lock
    or a slow server, it writes nothing that would stop it) gets SIGTERM, which unwinds it (its
    query cancelled, its source closed), and SIGKILL after the grace period."""
    ended, status = _wait(pid, GRACE_SECONDS if patient else 0.5)
    for signum in (signal.SIGTERM, signal.SIGKILL):
        if ended:
            break
        os.kill(pid, signum)  # not reaped yet: the pid is still our child's
        ended, status = _wait(pid, GRACE_SECONDS if signum == signal.SIGTERM else None)
    if status is None:
        return "ended"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _wait(pid: int, seconds: float | None) -> tuple[bool, int | None]:
    """Whether the child ended within ``seconds`` (None: however long), and its wait status
    (None when it was reaped before)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while True:
            done, status = os.waitpid(pid, 0 if deadline is None else os.WNOHANG)
            if done:
                return True, status
            if deadline is not None and time.monotonic() >= deadline:
                return False, None
            time.sleep(0.005)
    except ChildProcessError:  # reaped already
        return True, None
