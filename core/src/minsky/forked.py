"""Reading a migration's source in a forked child process.

One process runs Python code on one core at a time (the GIL), so a reader thread and a
writer thread share a core. A child forked just before the read decodes the source
(fetch, checks, canonical forms) on the other core while the parent writes the target:
the parent only rebuilds each record from bytes the child proved exact.

Decoding costs several times what fetching does, so a store whose read splits into the two
(``SplitReadStore``) is decoded by more processes than one: the reader child forks decoders
once its read is open, and the batches go round in turns (batch k to process k mod n), each
process writing its own pipe, which the parent reads in the same turns: the source's order,
with no reordering buffer.

Used only where nothing can tell the difference: the source says its reads may run in a
fork (``ForkableStore``), no plugin wraps the read hook (a wrapper's state would live in
the child), the platform forks (Linux), and the store is big enough for it to pay.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import pickle
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any, Final

import orjson

from minsky import hooks
from minsky.backend import ForkableStore, ReadableStore, SplitReadStore
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
# A batch (ends its turn), part of a batch (an error follows), an error, the end; rows to decode.
_BATCH, _PART, _ERROR, _DONE, _ROWS = b"B", b"P", b"E", b"D", b"R"
MAX_DECODERS: Final = 3  # beyond it the single fetching process is the bound
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


def decoders(store: ReadableStore) -> int:
    """How many processes besides the reader decode a read of ``store``: one a core, at most
    ``MAX_DECODERS``, none on one core or when its read does not split (``SplitReadStore``).
    ``MINSKY_READ_DECODERS=N`` overrides it (``0``: the reader decodes alone).

    As many as cores, not one fewer: the reader fetches every batch besides decoding its share,
    and was the process the others waited for. A million-record SQLite -> PostgreSQL migration
    on two cores took 32.1-32.3 s with two decoders, 34.5-36.8 s with one (raw: 31.3-32.5 s)."""
    if not isinstance(store, SplitReadStore):
        return 0
    cores = len(os.sched_getaffinity(0))
    setting = os.environ.get("MINSKY_READ_DECODERS", "").strip()
    try:
        count = int(setting) if setting else (cores if cores > 1 else 0)
    except ValueError:
        count = cores if cores > 1 else 0
    return max(0, min(count, MAX_DECODERS))


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
    pipes = _pipes(1 + decoders(reader))  # one a turn: the reader's, each decoder's
    if not pipes:
        log.debug("no pipe for a reader process (out of file descriptors): reading in this one")
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError as exc:  # EAGAIN: RLIMIT_NPROC, a cgroup's pids.max
        log.debug("no reader process (%s): reading in this one", exc)
        for fd in itertools.chain.from_iterable(pipes):
            os.close(fd)
        return None
    if pid == 0:  # the child: never returns
        status = 1
        try:
            for receive, _ in pipes:
                os.close(receive)
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C reaches the parent too, which ends us
            for signum in (signal.SIGTERM, signal.SIGHUP):  # unwound: the source closed, a query cancelled
                signal.signal(signum, _stop)
            _serve(reader, [send for _, send in pipes], maker, store.location, key_order)
            status = 0
        finally:
            os._exit(status)  # no atexit handlers, no finalizers of the parent's objects
    for _, send in pipes:
        os.close(send)
    return _FromChild(pid, [receive for receive, _ in pipes], store.location, maker)


def _pipes(count: int) -> list[tuple[int, int]]:
    """Up to ``count`` pipes, as many as the descriptors left allow (fewer turns, then)."""
    pipes: list[tuple[int, int]] = []
    for _ in range(count):
        try:
            pipes.append(_pipe())
        except OSError:  # EMFILE, ENFILE
            break
    return pipes


def _pipe() -> tuple[int, int]:
    receive, send = os.pipe()
    with contextlib.suppress(OSError):  # Linux; elsewhere the default pipe only makes it slower
        fcntl.fcntl(send, 1031, PIPE_BYTES)  # F_SETPIPE_SZ
    return receive, send


class _Stopped(SystemExit):
    """SIGTERM or SIGHUP in the child: what it was doing unwinds (its source closed; psycopg
    cancels a running query on SystemExit, as on Ctrl-C)."""


def _stop(signum: int, _frame: object) -> None:
    for other in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, signal.SIG_IGN)
    raise _Stopped(signum)


class _Turns:
    """Where the reader sends each turn's message: turn k's to ``outs[k % n]``, a pipe to the
    parent or (``relayed``) a decoder's rows pipe, which passes on what is not rows to decode."""

    def __init__(self, outs: list[tuple[int, bool]]) -> None:
        self.outs, self.turn = outs, 0

    def relayed(self) -> bool:
        return self.outs[self.turn % len(self.outs)][1]

    def send(self, kind: bytes, payload: Any) -> None:
        _send(self.outs[self.turn % len(self.outs)][0], kind, payload)
        if kind in (_BATCH, _ROWS):  # each ends a turn: a decoder answers rows with one batch
            self.turn += 1


def _serve(
    store: ReadableStore,
    fds: list[int],
    maker: Callable[[SessionRecord], object] | None,
    location: str,
    key_order: bool,
) -> None:
    """The child's work; the source is closed however it ends (an exception raised while telling
    the parent must not leave it open: ``os._exit`` runs no finalizer)."""
    split = store.read_split() if len(fds) > 1 and isinstance(store, SplitReadStore) else None
    records: Iterator[Any] = hooks.read(store) if split is None else split[1]
    try:
        if split is None:
            _stream(records, _Turns([(fd, False) for fd in fds]), maker, location, key_order)
        else:
            _stream_split(split[0], records, fds, maker, location, key_order)
    finally:
        close = getattr(records, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()


def _stream(
    records: Iterator[SessionRecord],
    turns: _Turns,
    maker: Callable[[SessionRecord], object] | None,
    location: str,
    key_order: bool,
) -> None:
    """Each record as the bytes the parent rebuilds it from, and its row, in batches."""
    batch: list[Any] = []
    try:
        for record in records:
            batch.append(_crossing(record, maker, key_order))
            if len(batch) >= BATCH:
                turns.send(_BATCH, batch)
                batch = []
        if batch:
            turns.send(_BATCH, batch)
        turns.send(_DONE, None)
    except BrokenPipeError:  # the parent stopped reading: nothing to tell it
        return
    except _Stopped as exc:
        turns.send(_ERROR, _stopped(exc, location))
    except BaseException as exc:  # what was read comes first, then the error, raised by the parent
        if batch:
            turns.send(_PART, batch)
        turns.send(_ERROR, (_picklable(exc), traceback.format_exc()))


def _stream_split(
    decode: Callable[[Any], SessionRecord],
    batches: Iterator[Sequence[Any]],
    fds: list[int],
    maker: Callable[[SessionRecord], object] | None,
    location: str,
    key_order: bool,
) -> None:
    """``_stream`` of a split read: once the first batch is fetched (the decoder then has what it
    needs), decoders are forked for the turns after the first; this process fetches every batch,
    decodes its own turns' and sends the others' rows on."""
    workers: list[tuple[int, int]] = []
    turns = _Turns([(fds[0], False)])
    batch: list[Any] = []
    done = False
    try:
        first = next(batches, None)
        if first is not None:
            outs = _fork_decoders(fds, decode, maker, key_order, location, workers)
            turns = _Turns(outs)
        for rows in itertools.chain(() if first is None else (first,), batches):
            if turns.relayed():
                turns.send(_ROWS, rows)
                continue
            batch = []
            for row in rows:
                batch.append(_crossing(decode(row), maker, key_order))
            turns.send(_BATCH, batch)
            batch = []
        turns.send(_DONE, None)
        done = True
    except BrokenPipeError:  # the parent (or a decoder, which the parent then finds gone) stopped
        return
    except _Stopped as exc:
        turns.send(_ERROR, _stopped(exc, location))
    except BaseException as exc:
        if batch:
            turns.send(_PART, batch)
        turns.send(_ERROR, (_picklable(exc), traceback.format_exc()))
    finally:
        # Our pipe first: a parent waiting on it for a turn we never sent learns now, stops, and
        # closes the decoders' pipes, which ends any decoder blocked writing to it.
        os.close(fds[0])
        for pid, rows_fd in workers:
            os.close(rows_fd)  # a decoder ends once it has passed on what it was sent
            if not done:  # stopped early: a decoder holds nothing to clean up, and would decode on
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for pid, _ in workers:
            _wait(pid, None)  # no deadline: its last batches wait for the parent, however slow its writes


def _fork_decoders(
    fds: list[int],
    decode: Callable[[Any], SessionRecord],
    maker: Callable[[SessionRecord], object] | None,
    key_order: bool,
    location: str,
    workers: list[tuple[int, int]],
) -> list[tuple[int, bool]]:
    """A decoder for each pipe to the parent after the first (appended to ``workers`` as its pid
    and its rows pipe); the turns' outputs. A turn no decoder could be forked for (a process
    limit) is this process's own, on that pipe."""
    outs = [(fds[0], False)]
    reader = os.getpid()
    for i in range(1, len(fds)):
        try:
            receive, send = _pipe()
        except OSError as exc:  # out of file descriptors
            log.debug("no pipe for a decoder (%s): the reader decodes its turns", exc)
            outs += [(fd, False) for fd in fds[i:]]
            return outs
        try:
            pid = os.fork()
        except OSError as exc:
            log.debug("no decoder process (%s): the reader decodes its turns", exc)
            os.close(receive)
            os.close(send)
            outs += [(fd, False) for fd in fds[i:]]
            return outs
        if pid == 0:  # the decoder: never returns
            status = 1
            try:
                _die_with(reader)
                # Only its rows pipe and its pipe to the parent: an end of another's kept open here
                # would hide the reader's end (or the parent's) from it. (The pipes of the decoders
                # forked before it are closed here already; their numbers may be reused.)
                for fd in [send, fds[0], *fds[i + 1 :], *(rows for _, rows in workers)]:
                    os.close(fd)
                _decode_turns(receive, fds[i], decode, maker, key_order, location)
                status = 0
            finally:
                os._exit(status)
        os.close(receive)
        os.close(fds[i])  # the decoder's alone: the parent finds it closed if the decoder dies
        workers.append((pid, send))
        outs.append((send, True))
    return outs


def _die_with(reader: int) -> None:
    """A decoder is killed when the reader dies (``PR_SET_PDEATHSIG``): killed outright, the
    reader could not stop it, and it would decode on, holding the command's stderr."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != reader:  # it died before that
        os._exit(1)


def _decode_turns(
    rows_fd: int,
    fd: int,
    decode: Callable[[Any], SessionRecord],
    maker: Callable[[SessionRecord], object] | None,
    key_order: bool,
    location: str,
) -> None:
    """A decoder's work: each batch of rows the reader sends, as one batch to the parent (or the
    records before a row's error, then the error); anything else the reader sends, passed on."""
    inbox = _Inbox(rows_fd)
    batch: list[Any] = []
    try:
        while (message := inbox.next()) is not None:
            kind, body = message
            if kind != _ROWS:
                _send_bytes(fd, kind, body)
                continue
            batch = []
            for row in pickle.loads(body):  # noqa: S301 - from the reader, our own process
                batch.append(_crossing(decode(row), maker, key_order))
            _send(fd, _BATCH, batch)
            batch = []
    except BrokenPipeError:
        return
    except _Stopped as exc:
        _send(fd, _ERROR, _stopped(exc, location))
    except BaseException as exc:
        if batch:
            _send(fd, _PART, batch)
        _send(fd, _ERROR, (_picklable(exc), traceback.format_exc()))


def _crossing(
    record: SessionRecord, maker: Callable[[SessionRecord], object] | None, key_order: bool
) -> tuple[Any, object]:
    """What crosses to the parent for a record: its portable form and its row."""
    made = None
    if maker is not None:
        try:
            made = maker(record)
        except Exception:  # the writer makes it again, and fails there as it would have
            made = None
    return _portable(record, key_order or made is None), made


def _stopped(exc: _Stopped, location: str) -> tuple[BaseException, str]:
    name = signal.Signals(exc.args[0]).name
    return StoreError(f"reading {location}: the process reading it was stopped ({name})"), ""


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
    _send_bytes(fd, kind, body)


def _send_bytes(fd: int, kind: bytes, body: bytes | memoryview) -> None:
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


class _Inbox:
    """The messages of one pipe, each read into one buffer grown as needed (never joined nor
    sliced); a message is valid until the next is read."""

    def __init__(self, fd: int) -> None:
        self.fd, self.head, self.buffer = fd, bytearray(_HEAD.size), bytearray()

    def next(self) -> tuple[bytes, memoryview] | None:
        """The next message's kind and body; None when the pipe ended before a whole one."""
        if not _read_into(self.fd, memoryview(self.head)):
            return None
        size = _HEAD.unpack(self.head)[0]
        if size > len(self.buffer):
            self.buffer = bytearray(size)
        message = memoryview(self.buffer)[:size]
        if not size or not _read_into(self.fd, message):
            return None
        return message[:1].tobytes(), message[1:]


class _FromChild:
    """The records the child (and its decoders) send, in order: turn k's batch from pipe k mod n.
    Closing it (whether or not it was started) closes the pipes, which stops a child still
    reading at its next write, and reaps the child."""

    def __init__(
        self, pid: int, fds: list[int], location: str, maker: Callable[[SessionRecord], object] | None
    ) -> None:
        self.pid, self.fds, self.location, self.maker = pid, fds, location, maker
        self.records: Generator[SessionRecord, None, None] = self._receive()

    def __iter__(self) -> Iterator[SessionRecord]:
        return self

    def __next__(self) -> SessionRecord:
        return next(self.records)

    def close(self) -> None:
        self.records.close()
        self._shut(patient=False)

    def _shut(self, *, patient: bool) -> str:
        fds, self.fds = self.fds, []
        if not fds:
            return "ended"
        for fd in fds:
            os.close(fd)  # a child still reading finds its pipe closed at its next write, and stops
        return _reap(self.pid, patient=patient)

    def _receive(self) -> Generator[SessionRecord, None, None]:
        finished = False
        inboxes = [_Inbox(fd) for fd in self.fds]
        turn = 0
        try:
            while True:
                message = inboxes[turn % len(inboxes)].next()
                if message is None:
                    finished = True
                    status = self._shut(patient=True)  # the reader's; a decoder is not ours to reap
                    who = "the process reading it" if turn % len(inboxes) == 0 else "a process decoding it"
                    raise StoreError(
                        f"reading {self.location}: {who} ended before the end"
                        + (f" ({status})" if turn % len(inboxes) == 0 else ""),
                        hint="run the command again; with MINSKY_FORKED_READ_MIN=off it reads in this process",
                    )
                kind, body = message
                payload = pickle.loads(body)  # noqa: S301 - from our own child
                if kind in (_BATCH, _PART):
                    turn += kind == _BATCH
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
