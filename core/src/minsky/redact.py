"""Masking secrets before anything is printed, logged or written.

Passwords reach minsky in URIs (``user:pw@`` or ``?password=``), libpq
key=value strings (``password=pw``), PGPASSWORD and ``${VAR}`` expansions. Every
secret seen is also remembered, so that it is masked wherever it turns up later
(in a driver's error text, say), plain or percent-encoded.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote, unquote

MASK = "****"

_known: set[str] = set()

# Each pattern starts at a literal, so that a search through a large output stays linear.
_URI_USERINFO = re.compile(r"://(?P<user>[^:/@\s]*):(?P<pw>[^\s]*)@(?=[^@\s]*(?:\s|$))")
_QUERY_PW = re.compile(r"(?:password|secret|token)=(?P<pw>[^&\s#]*)", re.IGNORECASE)  # after ? or &
# A libpq key=value pair: a quoted value runs to the closing quote, ``\`` escaping any
# character; an unquoted one runs to whitespace, ``\`` escaping too. Any key ending in
# password, secret or token is masked the same way (``-o x.api_token=…``, ``GITHUB_TOKEN=…``).
# libpq gives ``"`` no meaning, but a double-quoted value is masked whole all the same.
_KV_VALUE = r"'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"|(?:\\.|[^\s\\])+"
_SECRET_WORDS = ("password", "secret", "token")
_KV_AT = re.compile(rf"(?:password|secret|token)\s*=\s*(?P<pw>{_KV_VALUE})", re.IGNORECASE)
_KEY_CHAR = re.compile(r"[\w.-]")
_KV_PAIR = re.compile(rf"\s*(?P<key>[A-Za-z_]\w*)\s*=\s*(?:{_KV_VALUE})\s*")
_LIBPQ_KEYS = frozenset(
    {"host", "hostaddr", "port", "dbname", "user", "password", "passfile", "sslmode", "service", "options"}
)
_VAR_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_PG_URI = re.compile(r"^\s*postgres(?:ql)?://", re.IGNORECASE)


def _unquote_kv(value: str) -> str:
    if value[:1] in ("'", '"'):
        value = value[1:-1] if value.endswith(value[0]) and len(value) > 1 else value[1:]
    return re.sub(r"\\(.)", r"\1", value)


def looks_like_conninfo(text: str) -> bool:
    """Whether ``text`` parses as a PostgreSQL connection string (URI or libpq key=value)."""
    if _PG_URI.match(text):
        return True
    pos, keys = 0, set()
    while pos < len(text):
        match = _KV_PAIR.match(text, pos)
        if match is None or match.end() == pos:
            return False
        keys.add(match["key"].lower())
        pos = match.end()
    return bool(keys & _LIBPQ_KEYS)


def remember_secret(secret: str | None) -> None:
    """Mask this exact value (and its encodings) in every later redaction."""
    if secret and len(secret) >= 3:
        _known.add(secret)
        _known.add(unquote(secret))
        _known.add(quote(secret, safe=""))


def _word_positions(text: str) -> list[int]:
    """Where a secret word starts, found with str.find (fast) on the lowered text."""
    low = text.lower()
    if len(low) != len(text):  # a character whose lower case is longer: search the slow way
        return [m.start() for m in re.finditer("|".join(_SECRET_WORDS), text, re.IGNORECASE)]
    positions = []
    for word in _SECRET_WORDS:
        at = low.find(word)
        while at != -1:
            positions.append(at)
            at = low.find(word, at + 1)
    return positions


def _in_query(text: str, at: int) -> bool:
    """Whether the key ending at the secret word ``at`` is a URI query parameter (``?password=``)."""
    while at > 0 and _KEY_CHAR.match(text, at - 1):
        at -= 1
    return at > 0 and text[at - 1] in "?&"


def _secret_spans(text: str) -> list[tuple[int, int]]:
    """Where the passwords are: URI userinfo, ``?password=``, and key=value pairs."""
    spans = [m.span("pw") for m in _URI_USERINFO.finditer(text)]
    for at in _word_positions(text):
        match = (_QUERY_PW if _in_query(text, at) else _KV_AT).match(text, at)
        if match is not None:
            spans.append(match.span("pw"))
    kept: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        value = text[start:end]
        # A bare ${VAR} is a name, not a secret: showing it tells the user where the value comes from.
        if value in (MASK, "") or _VAR_REF.fullmatch(value) or (kept and start < kept[-1][1]):
            continue
        kept.append((start, end))
    return kept


def _replace(text: str, spans: list[tuple[int, int]], replacement: str) -> str:
    parts, last = [], 0
    for start, end in spans:
        parts += [text[last:start], replacement]
        last = end
    return "".join([*parts, text[last:]])


def redact_text(text: str) -> str:
    if not text:
        return text
    remember_secret(os.environ.get("PGPASSWORD"))
    spans = _secret_spans(text)
    for start, end in spans:
        remember_secret(text[start:end])
        remember_secret(_unquote_kv(text[start:end]))
    text = _replace(text, spans, MASK)
    for secret in sorted(_known, key=len, reverse=True):
        if secret and secret != MASK:
            text = text.replace(secret, MASK)
    return text


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in ("password", "token", "secret", "connectionstring"))


def replace_password(text: str, replacement: str) -> tuple[str, str | None]:
    """``text`` with the password of a URI or key=value connection string replaced (the
    replacement is inserted as is, inside the quotes if the password was quoted), and the
    password as it was written (None if none)."""
    spans = _secret_spans(text)
    if not spans:
        return text, None
    start, end = spans[0]
    written = text[start:end]
    quoted = f"'{replacement}'" if written.startswith("'") else replacement
    return text[:start] + quoted + text[end:], written.strip("'")


def replace_passwords(text: str, replacement: str) -> str:
    """``text`` with its password (URI userinfo, ``?password=``, ``password=``) replaced by
    ``replacement`` (``config import`` puts a ``${VAR}`` reference there)."""
    return replace_password(text, replacement)[0]
