"""Reading a migration's source in a forked child process.

One process runs Python code on one core at a time (the GIL), so a reader thread and a
writer thread share a core. A child forked just before the read decodes the source
(fetch, checks, canonical forms) on the other core while the parent writes the target:
the parent only rebuilds each record from bytes the child proved exact.

Decoding costs several times what fetching does, so a store whose read splits into the two
(``SplitReadStore``) is decoded by more processes than one: the reader child forks decoders
once its read is open, and the batches go round in turns (a round: the reader once, each decoder twice), each
process writing its own pipe, which the parent reads in the same turns: the source's order,
with no reordering buffer.

Here: when to fork and the fork itself. ``child``: the reader's work; ``decoders``: the
processes it forks; ``parent``: the records received, in order; ``crossing``: the form a record
and an error cross in; ``wire``: the messages and pipes.

Used only where nothing can tell the difference: the source says its reads may run in a
fork (``ForkableStore``), no plugin wraps the read hook (a wrapper's state would live in
the child), the platform forks (Linux), and the store is big enough for it to pay.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Final

from minsky import hooks
from minsky.backend import ForkableStore, ReadableStore
from minsky.forked import wire
from minsky.forked.child import serve
from minsky.forked.crossing import fork, stop
from minsky.forked.decoders import MAX_DECODERS, decoders
from minsky.forked.parent import GRACE_SECONDS, FromChild
from minsky.forked.wire import BATCH
from minsky.model import SessionRecord

log = logging.getLogger(__name__)

MIN_RECORDS: Final = 5000
"""Below this many records a fork costs more than it saves. ``MINSKY_FORKED_READ_MIN``
overrides it (``0``: always; ``off``: never)."""


BYTES_A_RECORD: Final = 1024
"""A typical record's size in a store, to estimate a store's records from its size (a copy
that reads names as it goes has not counted them): ``MIN_RECORDS`` of them are 5 MB."""


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
    return hooks.only_builtin("read")


def key_order_needed(renames: bool) -> bool:
    """Whether the parent may look at a record's dict (its key order included) although the
    writer was handed its row ready-made: when it may rename or skip a copy of a repeated name
    (``renames``: it then makes that copy's row itself), or a plugin's write hook sees the
    records. A writer given rows stores the canonical form, whose order is sorted anyway."""
    return renames or not hooks.only_builtin("write")


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
    pipes = wire.pipes(1 + decoders(reader))  # one a turn: the reader's, each decoder's
    if not pipes:
        log.debug("no pipe for a reader process (out of file descriptors): reading in this one")
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid, _ = fork()
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
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C reaches the parent too, which ends us
            for signum in (signal.SIGTERM, signal.SIGHUP):  # unwound: the source closed, a query cancelled
                signal.signal(signum, stop)
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            serve(reader, [send for _, send in pipes], maker, store.location, key_order)
            status = 0
        finally:
            os._exit(status)  # no atexit handlers, no finalizers of the parent's objects
    for _, send in pipes:
        os.close(send)
    return FromChild(pid, [receive for receive, _ in pipes], store.location, maker)


__all__ = [
    "BATCH",
    "BYTES_A_RECORD",
    "GRACE_SECONDS",
    "MAX_DECODERS",
    "MIN_RECORDS",
    "decoders",
    "key_order_needed",
    "read_in_child",
    "wanted",
]
