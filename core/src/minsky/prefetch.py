"""Reading ahead on a thread, so that a migration reads batch N+1 while the target
writes batch N (drivers release the GIL while they wait on disk or server)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)
_DONE = object()

JOIN_SECONDS = 5.0
"""How long a consumer that stops waits for the thread to stop and close the source. No longer:
a signal raised in the consumer inside the queue's lock leaves the lock held, and the thread
then waits on it for ever (adversary helper-39: minsky hung after SIGTERM, both threads waiting
on a lock); so may a source stuck in a read. The thread is a daemon: the process ends without it."""


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetched(items: Iterable[T], batch_size: int, depth: int = 2) -> Iterator[T]:
    """Yield ``items`` in order, produced up to ``depth`` batches ahead on a thread.

    Memory stays bounded (``depth`` batches). Whatever the producer raises is raised
    here; when the consumer stops early, the producer stops and closes the source.
    """
    channel: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                channel.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        source = iter(items)
        batch: list[T] = []
        try:
            for item in source:
                batch.append(item)
                if len(batch) >= batch_size:
                    if not put(batch):
                        return
                    batch = []
            if batch:
                put(batch)
        except BaseException as exc:  # what was read comes first, then the error, raised by the consumer
            if batch:
                put(batch)
            put(_Failure(exc))
        finally:
            close = getattr(source, "close", None)
            if callable(close):
                close()
            put(_DONE)

    thread = threading.Thread(target=produce, name="minsky-read-ahead", daemon=True)
    try:
        thread.start()
    except RuntimeError as exc:  # "can't start new thread": RLIMIT_NPROC, a cgroup's pids.max
        log.debug("no read-ahead thread (%s): reading in this one", exc)
        yield from items
        return
    try:
        while (item := channel.get()) is not _DONE:
            if isinstance(item, _Failure):
                raise item.exc
            yield from item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(JOIN_SECONDS)
        if thread.is_alive():
            log.debug("the read-ahead thread did not stop within %.0f s: left behind", JOIN_SECONDS)
