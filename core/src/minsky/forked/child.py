"""The reader child's work: read the source, and send each turn's batch of records (or, to a
decoder, of rows to decode) on the turn's pipe."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from minsky import hooks
from minsky.backend import ReadableStore, SplitReadStore
from minsky.forked import wire
from minsky.forked.crossing import Stopped, crossing, picklable, stopped
from minsky.forked.decoders import fork_decoders
from minsky.forked.parent import wait
from minsky.model import SessionRecord


class _Turns:
    """Where the reader sends each turn's message: to the turn's output in ``wire.rounds``, a
    pipe to the parent or (``relayed``) a decoder's rows pipe, which passes on what is not rows
    to decode."""

    def __init__(self, outs: list[tuple[int, bool]]) -> None:
        self.order = [outs[i] for i in wire.rounds(len(outs))]
        self.turn = 0

    def relayed(self) -> bool:
        return self.order[self.turn % len(self.order)][1]

    def send(self, kind: bytes, payload: Any) -> None:
        wire.send(self.order[self.turn % len(self.order)][0], kind, payload)
        if kind in (wire.RECORDS, wire.ROWS):  # each ends a turn: a decoder answers rows with one batch
            self.turn += 1


def serve(
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
            batch.append(crossing(record, maker, key_order))
            if len(batch) >= wire.BATCH:
                turns.send(wire.RECORDS, batch)
                batch = []
        if batch:
            turns.send(wire.RECORDS, batch)
        turns.send(wire.DONE, None)
    except BrokenPipeError:  # the parent stopped reading: nothing to tell it
        return
    except Stopped as exc:
        turns.send(wire.ERROR, stopped(exc, location))
    except BaseException as exc:  # what was read comes first, then the error, raised by the parent
        if batch:
            turns.send(wire.PART, batch)
        turns.send(wire.ERROR, (picklable(exc), traceback.format_exc()))


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
    # Whether the decoders are killed at the end: only when nobody will read what they hold (the
    # parent stopped, or told us to). After our error, or a decoder's, the parent still reads
    # the turns before it, which the other decoders hold.
    kill = True
    try:
        first = next(batches, None)
        if first is not None:
            turns = _Turns(fork_decoders(fds, decode, maker, key_order, location, workers))
        for rows in itertools.chain(() if first is None else (first,), batches):
            if turns.relayed():
                turns.send(wire.ROWS, rows)
                continue
            batch = []
            for row in rows:
                batch.append(crossing(decode(row), maker, key_order))
            turns.send(wire.RECORDS, batch)
            batch = []
        turns.send(wire.DONE, None)
        kill = False
    except BrokenPipeError:  # our pipe: the parent stopped; a decoder's: it ended (its error sent, or killed)
        kill = not turns.relayed()
        return
    except Stopped as exc:  # sent in its turn, if the parent still reads (else BrokenPipeError: kill)
        turns.send(wire.ERROR, stopped(exc, location))
        kill = False
    except BaseException as exc:
        if batch:
            turns.send(wire.PART, batch)
        turns.send(wire.ERROR, (picklable(exc), traceback.format_exc()))
        kill = False
    finally:
        # Our pipe first: a parent waiting on it for a turn we never sent learns now, stops, and
        # closes the decoders' pipes, which ends any decoder blocked writing to it.
        os.close(fds[0])
        for pid, rows_fd in workers:
            os.close(rows_fd)  # a decoder ends once it has passed on what it was sent
            if kill:  # a decoder holds nothing to clean up, and would decode on
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for pid, _ in workers:
            wait(pid, None)  # no deadline: its last batches wait for the parent, however slow its writes
