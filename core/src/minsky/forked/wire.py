"""Messages between the processes of a forked read: a length, a kind, a pickled body, over pipes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import struct
import sys
from typing import Any, Final

BATCH: Final = 250  # records a message carries
PIPE_BYTES: Final = 1 << 20  # the pipe holds ~1,000 records: the child reads on while the parent writes
RECURSION_LIMIT: Final = 20_000
_HEAD: Final = struct.Struct("<I")
# A batch (ends its turn), part of a batch (an error follows), an error, the end; rows to decode.
RECORDS, PART, ERROR, DONE, ROWS = b"B", b"P", b"E", b"D", b"R"


def rounds(count: int) -> list[int]:
    """The pipe of each turn in one round over ``count`` pipes, which the reader and the parent
    both follow: the reader's own (pipe 0) once, each decoder's twice. The reader fetches
    every batch as well as decoding its turns': with one turn in three it was the busiest
    process (12.5 s of CPU against 8.5 s for each decoder, a million records)."""
    return [0, *range(1, count), *range(1, count)]


def pipes(count: int) -> list[tuple[int, int]]:
    """Up to ``count`` pipes, as many as the descriptors left allow (fewer turns, then)."""
    made: list[tuple[int, int]] = []
    for _ in range(count):
        try:
            made.append(pipe())
        except OSError:  # EMFILE, ENFILE
            break
    return made


def pipe() -> tuple[int, int]:
    receive, send = os.pipe()
    with contextlib.suppress(OSError):  # Linux; elsewhere the default pipe only makes it slower
        fcntl.fcntl(send, 1031, PIPE_BYTES)  # F_SETPIPE_SZ
    return receive, send


def send(fd: int, kind: bytes, payload: Any) -> None:
    # Pickling a record nests deeper than decoding it did: as deep as the reader accepts. Raised
    # for the pickling only: the child decodes within the limit this process reads with, so what
    # it reads or refuses is what a read in this process would (a record 2,000 deep included).
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, RECURSION_LIMIT))
    try:
        body = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        sys.setrecursionlimit(limit)
    send_bytes(fd, kind, body)


def send_bytes(fd: int, kind: bytes, body: bytes | memoryview) -> None:
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


class Inbox:
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
