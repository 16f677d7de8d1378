"""What crosses from a child to the parent: each record in a form the parent rebuilds it from
exactly, with its row; and errors, as the parent raises them."""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Callable
from typing import Any, Final

import orjson

from minsky.codec import (
    UnrepresentableError,
    canonical,
    canonical_sha256,
    decoded_from_canonical,
    orjson_exact,
    record_to_dict,
)
from minsky.errors import MinskyError, StoreError
from minsky.model import SessionRecord


class Stopped(SystemExit):
    """SIGTERM or SIGHUP in a child: what it was doing unwinds (its source closed; psycopg
    cancels a running query on SystemExit, as on Ctrl-C)."""


ENDING: Final = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def fork() -> tuple[int, set[int | signal.Signals]]:
    """``os.fork()`` with the signals that end minsky held across it, and the mask to restore.
    Raised inside the fork's own hooks (filelock registers some), a signal's exception is printed
    as "Exception ignored" and lost (adversary helper-40). The parent gets its mask back at once
    (a signal held meanwhile is raised here); a child restores it once its handlers are set."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, ENDING)
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        raise
    if pid != 0:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    return pid, held


def stop(signum: int, _frame: object) -> None:
    for other in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, signal.SIG_IGN)
    raise Stopped(signum)


def stopped(exc: Stopped, location: str, who: str = "the process reading it") -> tuple[BaseException, str]:
    name = signal.Signals(exc.args[0]).name
    return StoreError(f"reading {location}: {who} was stopped ({name})"), ""


def crossing(
    record: SessionRecord, maker: Callable[[SessionRecord], object] | None, key_order: bool
) -> tuple[Any, object]:
    """What crosses to the parent for a record: its portable form and its row."""
    made = None
    if maker is not None:
        try:
            made = maker(record)
        except Exception:  # the writer makes it again, and fails there as it would have
            made = None
    return portable(record, key_order or made is None), made


def portable(record: SessionRecord, key_order: bool = True) -> Any:
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


def picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes, in memory
    except Exception:  # anything pickling an exception can raise
        if isinstance(exc, MinskyError):
            return StoreError(str(exc), hint=exc.hint)
        return StoreError(f"{type(exc).__name__}: {exc}")
    return exc
