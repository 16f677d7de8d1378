"""The parent's side of a forked read: the records, in order, from the pipes of the reader child
and its decoders; and ending the child, however the read ends."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import time
from collections.abc import Callable, Generator, Iterator
from typing import Final

from minsky.codec import record_from_canonical, record_from_dict, with_premade
from minsky.errors import StoreError
from minsky.forked import wire
from minsky.model import SessionRecord

log = logging.getLogger(__name__)

GRACE_SECONDS: Final = 5.0  # for a child that finished, or was told to stop, to end by itself


class FromChild:
    """The records the child (and its decoders) send, in order: each turn's batch from its pipe
    in ``wire.rounds``.
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
        inboxes = [wire.Inbox(fd) for fd in self.fds]
        order = wire.rounds(len(inboxes))
        turn = 0
        try:
            while True:
                pipe = order[turn % len(order)]
                message = inboxes[pipe].next()
                if message is None:
                    finished = True
                    status = self._shut(patient=True)  # the reader's; a decoder is not ours to reap
                    # A reader killed outright takes its decoders with it: their pipes may end first.
                    reader = pipe == 0 or status.startswith("killed")
                    who = "the process reading it" if reader else "a process decoding it"
                    raise StoreError(
                        f"reading {self.location}: {who} ended before the end" + (f" ({status})" if reader else ""),
                        hint="run the command again; with MINSKY_FORKED_READ_MIN=off it reads in this process",
                    )
                kind, body = message
                payload = pickle.loads(body)  # noqa: S301 - from our own child
                if kind in (wire.RECORDS, wire.PART):
                    turn += kind == wire.RECORDS
                    maker = self.maker
                    for item, made in payload:
                        if len(item) > 2:  # its dict decoded exactly, only when asked
                            record = record_from_canonical(*item)
                        else:
                            record = record_from_dict(item[0], canonical_form=item[1])
                        if made is not None:
                            with_premade(record, maker, made)
                        yield record
                elif kind == wire.ERROR:
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
    ended, status = wait(pid, GRACE_SECONDS if patient else 0.5)
    for signum in (signal.SIGTERM, signal.SIGKILL):
        if ended:
            break
        os.kill(pid, signum)  # not reaped yet: the pid is still our child's
        ended, status = wait(pid, GRACE_SECONDS if signum == signal.SIGTERM else None)
    if status is None:
        return "ended"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def wait(pid: int, seconds: float | None) -> tuple[bool, int | None]:
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
