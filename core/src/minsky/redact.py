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

_URI_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")
_QUERY_PW = re.compile(r"(?P<key>[?&](?:password|sslpassword)=)(?P<pw>[^&\s#]*)", re.IGNORECASE)
_KV_PW = re.compile(r"(?P<key>\b(?:password|sslpassword)\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.IGNORECASE)


def remember_secret(secret: str | None) -> None:
    """Mask this exact value (and its encodings) in every later redaction."""
    if secret and len(secret) >= 3:
        _known.add(secret)
        _known.add(unquote(secret))
        _known.add(quote(secret, safe=""))


def _remember_from(text: str) -> None:
    for pattern in (_URI_USERINFO, _QUERY_PW, _KV_PW):
        for match in pattern.finditer(text):
            pw = match.group("pw").strip("'")
            remember_secret(pw)


def redact_text(text: str) -> str:
    if not text:
        return text
    remember_secret(os.environ.get("PGPASSWORD"))
    _remember_from(text)
    text = _URI_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _QUERY_PW.sub(lambda m: f"{m['key']}{MASK}", text)
    text = _KV_PW.sub(lambda m: f"{m['key']}{MASK}", text)
    for secret in sorted(_known, key=len, reverse=True):
        if secret and secret != MASK:
            text = text.replace(secret, MASK)
    return text


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in ("password", "token", "secret", "connectionstring"))


def replace_password(text: str, replacement: str) -> tuple[str, str | None]:
    """``text`` with the password of a URI or key=value connection string replaced (the
    replacement is inserted as is), and the password as it was written (None if none)."""
    found: list[str] = []

    def sub(match: re.Match[str]) -> str:
        written = match.group("pw")
        found.append(written.strip("'"))
        quoted = f"'{replacement}'" if written.startswith("'") else replacement
        whole = match.group(0)
        return whole[: match.start("pw") - match.start(0)] + quoted + whole[match.end("pw") - match.start(0) :]

    for pattern in (_URI_USERINFO, _QUERY_PW, _KV_PW):
        text = pattern.sub(sub, text)
        if found:  # one form per string: a later pattern must not re-match the replacement
            break
    return text, (found[0] if found else None)


def replace_passwords(text: str, replacement: str) -> str:
    """``text`` with its password (URI userinfo, ``?password=``, ``password=``) replaced by
    ``replacement`` (``config import`` puts a ``${VAR}`` reference there)."""
    return replace_password(text, replacement)[0]
