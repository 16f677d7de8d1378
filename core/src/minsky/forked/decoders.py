"""Decoders: processes the reader child forks to decode a split read's rows (``SplitReadStore``)
on more cores than one. Each is sent the rows of its turns and sends their records to the
parent on its own pipe."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import signal
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from minsky.backend import ReadableStore, SplitReadStore
from minsky.forked import wire
from minsky.forked.crossing import Stopped, crossing, fork, picklable, stopped
from minsky.model import SessionRecord

log = logging.getLogger(__name__)

MAX_DECODERS: Final = 3  # beyond it the single fetching process is the bound


def decoders(store: ReadableStore) -> int:
    """How many processes besides the reader decode a read of ``store``: one a core, at most
    ``MAX_DECODERS``, none on one core or when its read does not split (``SplitReadStore``).
    ``MINSKY_READ_DECODERS=N`` overrides it (``0``: the reader decodes alone).

    As many as cores, not one fewer: the reader fetches every batch besides decoding its share,
    and was the process the others waited for. A million-record SQLite -> PostgreSQL migration
    on two cores took 32.1-32.3 s with two decoders, 34.5-36.8 s with one (raw: 31.3-32.5 s)."""
    if not isinstance(store, SplitReadStore):
        return 0
    cores = usable_cores()
    setting = os.environ.get("MINSKY_READ_DECODERS", "").strip()
    try:
        count = int(setting) if setting else (cores if cores > 1 else 0)
    except ValueError:
        count = cores if cores > 1 else 0
    return max(0, min(count, MAX_DECODERS))


CGROUP_ROOT: Final = Path("/sys/fs/cgroup")  # cgroup v2, unified: a container's own root


def usable_cores() -> int:
    """The cores this process may run on (its affinity), or fewer when its cgroup's CPU quota
    allows less (a container run with ``--cpus 1`` on a 64-core host): processes beyond the
    quota only take turns on it."""
    cores = len(os.sched_getaffinity(0))
    for limits in _cpu_max_files():
        try:
            quota, period = limits.read_text().split()[:2]
        except (OSError, ValueError):  # absent, or not as documented ("<quota> <period>")
            continue
        if quota != "max":
            with contextlib.suppress(ValueError, ZeroDivisionError):
                cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
        break
    return cores


def _cpu_max_files() -> list[Path]:
    """``cpu.max`` of this process's own cgroup, then of the root (inside a container, its own)."""
    files = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::/") and line != "0::/":
                files.append(CGROUP_ROOT / line[4:] / "cpu.max")
    return [*files, CGROUP_ROOT / "cpu.max"]


def fork_decoders(
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
            receive, send = wire.pipe()
        except OSError as exc:  # out of file descriptors
            log.debug("no pipe for a decoder (%s): the reader decodes its turns", exc)
            outs += [(fd, False) for fd in fds[i:]]
            return outs
        try:
            pid, held = fork()
        except OSError as exc:
            log.debug("no decoder process (%s): the reader decodes its turns", exc)
            os.close(receive)
            os.close(send)
            outs += [(fd, False) for fd in fds[i:]]
            return outs
        if pid == 0:  # the decoder: never returns
            status = 1
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)  # the reader's handlers, its mask
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
    inbox = wire.Inbox(rows_fd)
    batch: list[Any] = []
    try:
        while (message := inbox.next()) is not None:
            kind, body = message
            if kind != wire.ROWS:
                wire.send_bytes(fd, kind, body)
                continue
            batch = []
            for row in pickle.loads(body):  # noqa: S301 - from the reader, our own process
                batch.append(crossing(decode(row), maker, key_order))
            wire.send(fd, wire.RECORDS, batch)
            batch = []
    except BrokenPipeError:
        return
    except Stopped as exc:
        wire.send(fd, wire.ERROR, stopped(exc, location, "a process decoding it"))
    except BaseException as exc:
        if batch:
            wire.send(fd, wire.PART, batch)
        wire.send(fd, wire.ERROR, (picklable(exc), traceback.format_exc()))
