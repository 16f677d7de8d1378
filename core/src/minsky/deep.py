"""An entry nested past what the decoders read: its record refused by name, not the store.

orjson reads 1,024 levels and the standard library (``loads``'s careful decoder) about 1,000,
both by recursion. A store entry with a member nested deeper (planted, or written by another
tool) made the whole document undecodable, so one entry made the store unreadable, unwritable
and unrepairable. ``decode_deep_object`` reads such an entry without recursing: its top-level
members decoded by ``loads``, and a member nested deeper than MAX_DEPTH that ``loads`` cannot
decode kept as its text, ``Unrepresentable``: the record is refused by name wherever it is
read, written back as found (its insignificant whitespace dropped, so it stays on one line),
and moved into a quarantine file by `sessiondb check --repair`.

The member must be JSON as the careful decoder reads it (checked token by token with a stack,
not trusted for its brackets): what is damaged rather than deep stays the error it was.
"""

from __future__ import annotations

import re
from typing import Any, Final

from minsky.values import MAX_DEPTH, Unrepresentable, loads

_SPACE: Final = re.compile(rb"[ \t\r\n]*")
# What the careful decoder reads: strict strings (no raw control character; any other byte,
# UTF-8 or not, as ``loads`` takes it), numbers, literals and the constants it keeps as found.
_STRING: Final = rb'"(?:[^"\\\x00-\x1f]++|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*+"'
_TOKEN: Final = re.compile(
    rb"[ \t\r\n]*(?:"
    rb"(?P<open>\[+\{?|\{)"  # a run of openers: an object opener can only end one
    rb"|(?P<close>[\]}]+)"
    rb"|(?P<string>" + _STRING + rb")"
    rb"|(?P<scalar>-?Infinity|NaN|true|false|null|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
    rb"|(?P<colon>:)|(?P<comma>,))"
)
_STRING_ALONE: Final = re.compile(_STRING)
_SCALAR_END: Final = re.compile(rb"[^,} \t\r\n]*")
_STRING_ONLY: Final = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)  # possessive: no frame a character
_CLOSER: Final = bytes.maketrans(b"[{", b"]}")

# What the tokenizer expects next.
_VALUE, _VALUE_OR_CLOSE, _KEY, _KEY_OR_CLOSE, _COLON, _AFTER = range(6)


def decode_deep_object(raw: bytes) -> dict[str, Any] | None:
    """The JSON object ``raw`` when a member nests too deep to decode (see the module); None for
    anything else (not one object, damage, or nothing too deep): the caller's error stands."""
    i = _skip(raw, 0)
    if raw[i : i + 1] != b"{":
        return None
    found: dict[str, Any] = {}
    deep = False
    i = _skip(raw, i + 1)
    while True:  # a member, then a comma and another, or the end
        key = _STRING_ALONE.match(raw, i)
        if key is None:
            return None
        i = _skip(raw, key.end())
        if raw[i : i + 1] != b":":
            return None
        i = _skip(raw, i + 1)
        if raw[i : i + 1] in (b"[", b"{"):
            ends = _value_end(raw, i)
            if ends is None:
                return None
            end, depth = ends
        else:
            scalar = _STRING_ALONE.match(raw, i) if raw[i : i + 1] == b'"' else _SCALAR_END.match(raw, i)
            if scalar is None:
                return None
            end, depth = scalar.end(), 0
        text = raw[i:end]
        if depth + 1 > MAX_DEPTH:  # validated by _value_end; past what any store keeps, decoded or not
            value, deep = Unrepresentable(_compact(text).decode("utf-8", "surrogateescape")), True
        else:
            try:
                value = loads(text)
            except ValueError:
                return None
        try:
            found[loads(key.group())] = value
        except ValueError:
            return None
        i = _skip(raw, end)
        if raw[i : i + 1] != b",":
            break
        i = _skip(raw, i + 1)
    if raw[i : i + 1] != b"}" or _skip(raw, i + 1) != len(raw):
        return None
    return found if deep else None


def _skip(raw: bytes, at: int) -> int:
    space = _SPACE.match(raw, at)
    return space.end() if space else at


def _value_end(raw: bytes, start: int) -> tuple[int, int] | None:
    """Where the array or object opening at ``start`` ends and how deep it nests, if it is one
    JSON value as the careful decoder reads it; None otherwise. No recursion: a stack of the
    closers expected, runs of brackets taken at once (a planted member of millions of them
    costs a few calls, not millions)."""
    expected = bytearray()
    deepest, state, at = 0, _VALUE, start
    while True:
        token = _TOKEN.match(raw, at)
        if token is None:
            return None
        at, kind = token.end(), token.lastgroup
        if kind == "open":
            if state not in (_VALUE, _VALUE_OR_CLOSE):
                return None
            run = token.group(kind)
            expected += run.translate(_CLOSER)
            deepest = max(deepest, len(expected))
            state = _KEY_OR_CLOSE if run.endswith(b"{") else _VALUE_OR_CLOSE
        elif kind == "close":
            run = token.group(kind)[: len(expected)]  # what follows the value's own closers is not its
            at = token.start(kind) + len(run)
            first = run[0]
            if not (
                state == _AFTER
                or (state == _VALUE_OR_CLOSE and first == 0x5D)
                or (state == _KEY_OR_CLOSE and first == 0x7D)
            ):
                return None
            if expected[len(expected) - len(run) :][::-1] != run:
                return None
            del expected[len(expected) - len(run) :]
            if not expected:
                return at, deepest
            state = _AFTER
        elif kind == "string":
            if state in (_VALUE, _VALUE_OR_CLOSE):
                state = _AFTER
            elif state in (_KEY, _KEY_OR_CLOSE):
                state = _COLON
            else:
                return None
        elif kind == "scalar":
            if state not in (_VALUE, _VALUE_OR_CLOSE) or _glued(raw, at):
                return None
            state = _AFTER
        elif kind == "colon":
            if state != _COLON:
                return None
            state = _VALUE
        else:  # comma
            if state != _AFTER:
                return None
            state = _VALUE if expected[-1] == 0x5D else _KEY


def _glued(raw: bytes, at: int) -> bool:
    """Whether a scalar runs on into letters or digits (``truex``, ``1.5.2``): not one token."""
    return raw[at : at + 1].isalnum() or raw[at : at + 1] in (b".", b"-", b"+")


def _compact(text: bytes) -> bytes:
    """The member without its insignificant whitespace: one line, the same values."""
    out = bytearray()
    last = 0
    for found in _STRING_ONLY.finditer(text):
        out += text[last : found.start()].translate(None, b" \t\r\n")
        out += found.group()
        last = found.end()
    out += text[last:].translate(None, b" \t\r\n")
    return bytes(out)
