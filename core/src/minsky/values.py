"""What a representable value is, decided once: the rule every write path applies.

A record is stored only if every reader reads it back exactly. So a value is
representable when it is

- text made of Unicode scalar values (no lone surrogate: what a writer that cut an
  emoji in half leaves, or a non-UTF-8 byte read with ``surrogateescape``);
- a finite number (``NaN``, ``Infinity`` and ``1e400`` are refused: JSON readers turn
  them into ``null`` or into text that is not JSON);
- an integer of up to ``MAX_INT_DIGITS`` digits, kept digit for digit — except ``-0``, which
  every JSON reader (the original's ``JSON.parse`` included) reads as ``0``, so it cannot be
  kept exactly;
- ``true``, ``false``, ``null``, and objects with text keys and arrays, nested at most
  ``MAX_DEPTH`` levels (the record itself is level 1);
- and nowhere U+0000: PostgreSQL text cannot hold it, so it is refused on every backend
  alike rather than stripped on one.

Reading never fails over a value: ``loads`` keeps what cannot be represented as an
``Unrepresentable`` token (exactly as found), so one bad record is named and skipped
or quarantined instead of making the whole store unreadable. ``as_found_bytes``
writes such a value back unchanged (as valid UTF-8 JSON), for backups, quarantine
files and documents that must keep a bad entry they do not own.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import sys
from typing import Any, Final

import orjson

from minsky.errors import RecordError

MAX_DEPTH: Final = 254
"""Containers nested at most this deep (the record object counts as one). It is orjson's own
limit, so the fast encoder and the careful check agree, and far above any real record."""

MAX_INT_DIGITS: Final = 4300
"""Integers are kept digit for digit up to this many digits: CPython's own default limit for
converting text to int, set because both directions take quadratic time on 3.11 (one
1,000,000-digit token: 6.7 s to read, 16 s to write back). A longer token in a store stays
``Unrepresentable`` (kept as found, refused by name), so a planted file cannot stall a reader."""
_MAX_INT_BITS: Final = math.ceil(MAX_INT_DIGITS * math.log2(10))

# The bound above is minsky's, checked on the token before any conversion; the interpreter's
# own limit would raise mid-decode instead, and lose the record's name with it.
sys.set_int_max_str_digits(0)


class Unrepresentable:
    """A number token read from a store that minsky cannot carry exactly, kept as found."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def __repr__(self) -> str:
        return self.token

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unrepresentable) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)

    @property
    def reason(self) -> str:
        if self.token[:1] in ("[", "{"):  # a member too deep to decode, kept as its text (``minsky.deep``)
            return f"nested deeper than {MAX_DEPTH} levels (too deep to decode; kept as found)"
        if self.token == "-0":  # noqa: S105 (a JSON number token, not a secret)
            return "-0 cannot be kept exactly (JSON readers, the original's too, read it as 0); write 0"
        if self.token in ("NaN", "Infinity", "-Infinity"):
            return f"{self.token} is not a JSON number"
        digits = len(self.token.lstrip("-"))
        if self.token.lstrip("-").isdigit() and digits > MAX_INT_DIGITS:
            return f"an integer of {digits:,} digits is longer than minsky keeps ({MAX_INT_DIGITS:,} digits)"
        return f"{self.token} is not a finite number (readers turn it into Infinity or null)"


class UnrepresentableError(RecordError):
    """A record no store can hold exactly: refused by name, never changed."""

    exit_code = 11

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}{reason}")
        self.reason = reason


def _finite_float(text: str) -> float | Unrepresentable:
    value = float(text)
    return value if math.isfinite(value) else Unrepresentable(text)


def _kept_int(text: str) -> int | Unrepresentable:
    if text == "-0" or len(text) - text.startswith("-") > MAX_INT_DIGITS:
        return Unrepresentable(text)
    return int(text)


# Only the careful decoder below runs these hooks: orjson reads every document with no "-0" and
# no 19-digit run, so the hooks cost nothing on the common path.
DECODER: Final = json.JSONDecoder(parse_float=_finite_float, parse_constant=Unrepresentable, parse_int=_kept_int)
"""For a reader that decodes piece by piece (``raw_decode``): keeps every token as ``loads`` does."""

# What orjson would read wrongly rather than refuse: "-0" (it gives 0) and integers past 64 bits
# (it gives a float). "-0" here is not followed by a digit, "." or exponent, so dates ("-01")
# do not match; 19 digits in a row may be too big. A hit inside a string only costs the
# careful decoder, never a wrong value. One scan of the bytes: about 1% of a decode.
_SUSPECT_BYTES: Final = re.compile(rb"-0(?![0-9.eE])|[0-9]{19}")
_NEGATIVE_ZERO: Final = re.compile(r"-0(?![0-9.eE])")
_NEGATIVE_ZERO_BYTES: Final = re.compile(rb"-0(?![0-9.eE])")
_DIGITS_AS_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS: Final = b"0" * 19
_SCAN_CHUNK: Final = 1 << 20


def _suspect_bytes(data: bytes) -> bool:
    """``_SUSPECT_BYTES.search(data)``, about 8x faster: the regular expression tries a character
    class at every position, while a substring test and a ``translate`` run in C (measured on
    the benchmark's 1.1 KB records: 6 µs a record before, 0.6 µs after). A large document is
    scanned in overlapping chunks, so the translated copy stays small."""
    if b"-0" in data and _NEGATIVE_ZERO_BYTES.search(data) is not None:
        return True
    if len(data) <= _SCAN_CHUNK:
        return _NINETEEN_DIGITS in data.translate(_DIGITS_AS_ZERO)
    step = _SCAN_CHUNK - len(_NINETEEN_DIGITS)
    view = memoryview(data)
    return any(
        _NINETEEN_DIGITS in bytes(view[start : start + _SCAN_CHUNK]).translate(_DIGITS_AS_ZERO)
        for start in range(0, len(data), step)
    )


def orjson_exact(raw: bytes) -> bool:
    """Whether orjson reads the JSON ``raw`` as exactly the values it holds, if it reads it at
    all: it holds neither "-0" nor 19 digits in a row, the two things orjson reads wrongly
    (as 0, as a float) rather than refuses."""
    return not _suspect_bytes(raw)


# "\u0000" preceded by an even number of backslashes: an escaped NUL, not the text "\\u0000".
_NUL_ESCAPE: Final = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def loads(data: bytes | str) -> Any:
    """Decode JSON as a store holds it, never changing a value: orjson (fast) when nothing
    in ``data`` could mislead it and it accepts ``data``; else the standard library with
    hooks that keep what is not representable as ``Unrepresentable``. Bytes that are not
    UTF-8 become lone surrogates (refused later by name, not the whole store). Raises
    ``json.JSONDecodeError`` (a ``ValueError``) for what is not JSON, nesting past what
    can be decoded included."""
    # Text is scanned as its UTF-8 bytes: the same ASCII tokens, found at C speed (the regular
    # expression on text was 15.8% of a SQLite -> PostgreSQL migration's samples, py-spy, 50k).
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    if orjson_exact(raw):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # NaN, 1e400, a lone surrogate, a non-UTF-8 byte, or not JSON: the careful decoder decides
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    try:
        return DECODER.decode(text)
    except RecursionError:
        raise json.JSONDecodeError(
            f"nested too deeply to decode (minsky keeps at most {MAX_DEPTH} levels)", text, 0
        ) from None


def canonical_object(raw: bytes) -> dict[str, Any] | None:
    """The JSON object ``raw`` holds when ``raw`` is exactly its canonical form (what
    ``strict_bytes(value, sort_keys=True)`` gives: sorted keys, no whitespace, representable),
    else None. The proof is a re-encoding: orjson reads ``raw`` and must write the very same
    bytes back. Whatever orjson would read wrongly ("-0" as 0, an integer past 64 bits as a
    float), or what is not canonical (other key order or spacing, ``\\u`` escapes, ``1E5``,
    a repeated key), does not come back byte for byte, so it is None and the caller decodes
    with ``loads``; what it would refuse (NaN, 1e400, a lone surrogate, a non-UTF-8 byte,
    nesting past MAX_DEPTH) is None too. Costs one decode and one encode: a reader that has
    the stored text proves it canonical here instead of re-encoding the record later."""
    try:
        value = orjson.loads(raw)
    except ValueError:  # orjson.JSONDecodeError
        return None
    if type(value) is not dict:
        return None
    try:
        again = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    if again != raw or (b"\\" in raw and b"\\u0000" in raw and _NUL_ESCAPE.search(raw)):
        return None
    return value


def problem(value: Any, path: str = "", depth: int = 1) -> str | None:
    """Why ``value`` is not representable (naming where in it), or None."""
    kind = type(value)
    if kind is str:
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                code = ord(value[exc.start])
                return (
                    f"{_shown(path)}: U+{code:04X} is a lone surrogate, not Unicode text "
                    "(a character cut in half, or a byte that is not UTF-8)"
                )
        return None
    if kind is dict or kind is list:
        if depth > MAX_DEPTH:
            return f"{_shown(path)}: nested deeper than {MAX_DEPTH} levels"
        items = value.items() if kind is dict else enumerate(value)
        for key, item in items:
            if kind is dict:
                if type(key) is not str:
                    return f"{_shown(path)}: a key that is not text ({type(key).__name__})"
                where = f"{path}.{key}" if path else key
                found = problem(key, where, depth)
                if found:
                    return found
            else:
                where = f"{path}[{key}]"
            found = problem(item, where, depth + 1)
            if found:
                return found
        return None
    if kind is int:
        bits = value.bit_length()  # digits from bits, so that a huge value is never turned into text
        if bits < _MAX_INT_BITS - 4 or (bits <= _MAX_INT_BITS + 4 and len(str(abs(value))) <= MAX_INT_DIGITS):
            return None
        return f"{_shown(path)}: an integer longer than minsky keeps ({MAX_INT_DIGITS:,} digits)"
    if value is None or kind is bool:
        return None
    if kind is float:
        return None if math.isfinite(value) else f"{_shown(path)}: {value!r} is not a finite number"
    if kind is Unrepresentable:
        return f"{_shown(path)}: {value.reason}"
    return f"{_shown(path)}: a {kind.__name__} is not a JSON value"


def _shown(path: str) -> str:
    """Where in a value, for a one-line message: its head when long (a path is ~3 characters a
    level of nesting; a key may be any length)."""
    if not path:
        return "a value"
    return path if len(path) <= 80 else f"{path[:60]}…"


def strict_bytes(value: Any, *, where: str = "", sort_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON of a representable value, else ``UnrepresentableError``. orjson
    where it can (about 8x faster; it refuses lone surrogates, integers past 64 bits and
    nesting past MAX_DEPTH, which sends those to the check); the standard library for
    the integers it refuses. Non-finite floats never reach here as floats: ``loads``
    makes them ``Unrepresentable``, which orjson refuses."""
    try:
        blob = orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError:
        found = problem(value)
        if found is not None:
            raise UnrepresentableError(where, found) from None
        text = json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        blob = text.encode("utf-8")
    # A backslash first: one memchr, 0.1 us, where the 6-byte search takes 0.35-0.6 us a record.
    if b"\\" in blob and b"\\u0000" in blob and _NUL_ESCAPE.search(blob):
        raise UnrepresentableError(where, "contains the NUL character (U+0000), which not every backend can store")
    return blob


def as_found_bytes(value: Any, *, sort_keys: bool = False, indent: int | None = None) -> bytes:
    """JSON of any decoded value, never failing over one that is not representable:
    ``Unrepresentable`` tokens are written back as found and lone surrogates as
    ``\\uXXXX`` escapes, so the result is valid UTF-8 that ``loads`` reads back the same (but
    for a member too deep to decode, kept as its text: bytes that were not UTF-8 come back as
    they were, ``minsky.deep``).
    Values that are not JSON at all (a typed SQL cell in a quarantine file) become text."""
    # What a decoder accepted (orjson: 1,024 levels) the encoders write back: json.dumps recurses.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * 1024 + 100))
    try:
        return _as_found_bytes(value, sort_keys=sort_keys, indent=indent)
    finally:
        sys.setrecursionlimit(limit)


def _as_found_bytes(value: Any, *, sort_keys: bool, indent: int | None) -> bytes:
    if indent is None:
        try:
            return strict_bytes(value, sort_keys=sort_keys)
        except UnrepresentableError:
            pass
    else:
        try:
            return json.dumps(value, sort_keys=sort_keys, indent=indent, ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
            pass
    nonce = secrets.token_hex(8)
    tokens: dict[str, str] = {}

    def token(obj: object) -> str:
        if not isinstance(obj, Unrepresentable):
            return str(obj)  # a typed SQL cell (a date, bytes) in a quarantine file: its text
        placeholder = f"minsky-token-{nonce}-{len(tokens)}"
        tokens[json.dumps(placeholder)] = obj.token
        return placeholder

    separators = (",", ":") if indent is None else None
    text = json.dumps(value, sort_keys=sort_keys, indent=indent, separators=separators, default=token)
    for placeholder, found in tokens.items():
        text = text.replace(placeholder, found)
    # ASCII but for a member too deep to decode (``minsky.deep``): its bytes put back as they were.
    return text.encode("utf-8", "surrogateescape")
