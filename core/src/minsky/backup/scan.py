"""Reading a backup in one streaming pass, in bounded memory, hashing its bytes.

Records are decoded one at a time with the standard library's own decoder
(``JSONDecoder.raw_decode``), so a backup's values come out exactly as
``minsky.codec.loads`` gives them when a JSON store is read — numbers, ``NaN``, escapes
and all. ijson was considered: it decodes numbers and non-finite values
differently, and a backup must read like the store it came from.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from minsky.codec import DECODER, Unrepresentable
from minsky.errors import StoreError

T = TypeVar("T")
CHUNK = 1 << 20
_WS = re.compile(r"[ \t\n\r]*")
# The codec's decoder: what no store can hold exactly (NaN, 1e400, -0) is kept as found, to be
# named and rejected with its record rather than changed.
_DECODER = DECODER
# How close to the end of the buffer a decoding error may be and still mean "read more".
_TAIL = 128


class HashingBytes(io.RawIOBase):
    """Reads ``limit`` bytes of an open file from offset 0 with ``pread`` (its own offset,
    so passes do not disturb each other), feeding a SHA-256 of exactly what was read."""

    def __init__(self, fd: int, limit: int) -> None:
        self.fd = fd
        self.limit = limit
        self.offset = 0
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.limit - self.offset)
        data = os.pread(self.fd, want, self.offset) if want > 0 else b""
        buffer[: len(data)] = data
        self.offset += len(data)
        self.sha256.update(data)
        return len(data)

    def grew(self) -> bool:
        """Whether the file holds more than ``limit`` bytes now."""
        return bool(os.pread(self.fd, 1, self.limit))


class Scanner:
    """A JSON document walked value by value: containers are entered one level at a
    time (``array``, ``members``), anything else is decoded whole (``value``)."""

    def __init__(self, read: Callable[[int], str], where: str) -> None:
        self._read = read
        self.where = where
        self.buf = ""
        self.pos = 0
        self.base = 0  # characters dropped from the front of ``buf``
        self.eof = False

    def _fill(self) -> bool:
        try:
            chunk = self._read(CHUNK)
        except UnicodeDecodeError as exc:
            raise StoreError(f"{self.where} is not UTF-8: {exc.reason}") from None
        if not chunk:
            self.eof = True
            return False
        if self.pos > len(self.buf) // 2:
            self.base += self.pos
            self.buf = self.buf[self.pos :]
            self.pos = 0
        self.buf += chunk
        return True

    def error(self, what: str, at: int | None = None) -> StoreError:
        offset = self.base + (self.pos if at is None else at)
        return StoreError(f"{self.where} is not valid JSON: {what} at character {offset}")

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end)."""
        while True:
            match = _WS.match(self.buf, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.error(f"expected {char!r}")
        self.pos += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                incomplete = exc.msg.startswith("Unterminated string") or exc.pos >= len(self.buf) - _TAIL
                if incomplete and not self.eof and self._fill():
                    continue
                raise self.error(exc.msg, exc.pos) from None
            except RecursionError:
                raise StoreError(f"{self.where} is nested too deeply to be a session store") from None
            if (
                end == len(self.buf)
                and isinstance(value, int | float | Unrepresentable)
                and not self.eof
                and self._fill()
            ):
                continue  # a number at the end of the buffer may go on in the next chunk
            self.pos = end
            return value

    def array(self) -> Iterator[Any]:
        """The items of an array, each decoded whole."""
        return self._sequence("[", "]", self.value)

    def members(self) -> Iterator[str]:
        """The keys of an object; the caller consumes each key's value before the next."""
        return self._sequence("{", "}", self._key)

    def _key(self) -> str:
        if self.peek() != '"':
            raise self.error("expected a property name")
        key: str = self.value()
        self.expect(":")
        return key

    def _sequence(self, opening: str, closing: str, item: Callable[[], T]) -> Iterator[T]:
        self.expect(opening)
        if self.peek() == closing:
            self.pos += 1
            return
        while True:
            yield item()
            char = self.peek()
            self.pos += 1
            if char == closing:
                return
            if char != ",":
                raise self.error(f"expected ',' or {closing!r}", self.pos - 1)

    def end(self) -> None:
        if self.peek() != "":
            raise self.error("unexpected data after the document")
