"""Property tests: arbitrary JSON values (lone surrogates, huge and non-finite numbers, ``-0``,
deep nesting, NUL, names that differ only in case) either come back exactly or are rejected by
name — and never leave a store that the next read refuses.

The oracle (``representable``) is written here from the documented rule, not taken from
minsky; values are compared with their types (``1`` vs ``1.0`` vs ``true``, ``-0.0`` vs ``0.0``).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minsky.codec import UnrepresentableError, canonical, loads, record_from_dict

sys.set_int_max_str_digits(0)
LIMIT = 254  # the documented nesting limit (the record is level 1)


class Token:
    """A number as a foreign writer may leave it, written into the text as is."""

    def __init__(self, text: str) -> None:
        self.text = text


TOKENS = [Token(t) for t in ("1e400", "-1e400", "1E+999", "-0", "NaN", "Infinity", "-Infinity")]

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**80), max_value=10**80),
    # Around the 4,300-digit bound, both signs: 4,299 to 4,301 digits.
    st.builds(
        lambda n, negative: -n if negative else n,
        st.integers(min_value=10**4299 - 3, max_value=10**4300 + 3),
        st.booleans(),
    ),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(blacklist_categories=()), max_size=8),  # surrogates included
    st.sampled_from(TOKENS),
)
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def deep(draw: st.DrawFn) -> Any:
    value: Any = draw(leaves)
    for _ in range(draw(st.integers(min_value=LIMIT - 4, max_value=LIMIT + 4))):
        value = [value] if draw(st.booleans()) else {"k": value}
    return value


def representable(value: Any, depth: int) -> bool:
    if isinstance(value, Token):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return len(str(abs(value))) <= 4300
    if isinstance(value, str):
        return "\x00" not in value and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return depth <= LIMIT and all(representable(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return depth <= LIMIT and all(representable(k, depth) and representable(v, depth + 1) for k, v in value.items())
    return True


def as_text(value: Any) -> bytes:
    """The JSON text a foreign writer would leave: surrogates as escapes, tokens as they are."""
    tokens: dict[str, str] = {}

    def placeholder(obj: object) -> str:
        assert isinstance(obj, Token)
        key = f"@@token{len(tokens)}@@"
        tokens[json.dumps(key)] = obj.text
        return key

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)
    try:
        text = json.dumps(value, default=placeholder)
    finally:
        sys.setrecursionlimit(limit)
    for key, token in tokens.items():
        text = text.replace(key, token)
    return text.encode("ascii")


def typed(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.one_of(values, deep()))
def test_a_value_round_trips_exactly_or_is_refused_by_name(value: Any) -> None:
    data = loads(b'{"session": "p", "v": ' + as_text(value) + b"}")
    record = record_from_dict(data)
    if representable(value, 2):
        blob = canonical(record)
        assert typed(loads(blob)["v"]) == typed(value)
        assert loads(blob) == json.loads(blob)  # what minsky writes, any JSON reader reads the same
    else:
        with pytest.raises(UnrepresentableError, match="session 'p'"):
            canonical(record)


NAMES = ["alpha", "Alpha", "ALPHA", "beta", "Beta", "bEtA", "gamma", "ǅungla", "ǆungla"]


@st.composite
def stores(draw: st.DrawFn) -> list[tuple[str, Any]]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True))
    return [(name, draw(st.one_of(values, st.just(1)))) for name in names]


@pytest.mark.parametrize("backend", ["json", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_through_the_cli_the_target_is_always_readable_and_complete(
    minsky, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:  # type: ignore[no-untyped-def]
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else ""
    counter = iter(range(10**6))

    @settings(max_examples=12 if backend == "postgres" else 20, deadline=None)
    @given(store=stores())
    def run(store: list[tuple[str, Any]]) -> None:
        n = next(counter)
        source = tmp_path / f"source-{n}.json"
        body = b", ".join(
            b'{"session": ' + json.dumps(name).encode() + b', "v": ' + as_text(v) + b"}" for name, v in store
        )
        source.write_bytes(b'{"sessions": [' + body + b"]}")
        flags = {
            "json": ["--json-path", str(tmp_path / f"t-{n}.json")],
            "sqlite": ["--sqlite-path", str(tmp_path / f"t-{n}.db")],
            "postgres": ["--connection-string", url],
        }[backend]
        if backend == "postgres":
            minsky("sessiondb", "init", "--backend", "postgres", *flags)
        result = minsky(
            "sessiondb",
            "restore",
            "--backup",
            str(source),
            "--to",
            backend,
            *flags,
            "--verify",
            "--json",
            "--on-conflict",
            "overwrite",
        )
        good = {name: v for name, v in store if representable(v, 2)}
        bad = sorted(name for name, v in store if not representable(v, 2))
        assert result.exit_code == (11 if bad else 0), result.output
        report = json.loads(result.stdout)
        assert sorted(r["session"] for r in report["rejected"]) == bad
        assert report["counts"]["written"] == len(good) and report["verificationResult"]["ok"]
        listed = _list_target(minsky, backend, flags)
        assert {r["session"]: typed(r["v"]) for r in listed} == {k: typed(v) for k, v in good.items()}
        if backend == "postgres":
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("DELETE FROM sessions")

    run()


def _list_target(minsky, backend: str, flags: list[str]) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    import os

    key = "MINSKY_SESSIONDB_CONNECTION_STRING" if backend == "postgres" else "MINSKY_SESSIONDB_DB_PATH"
    saved = {k: os.environ.get(k) for k in ("MINSKY_SESSIONDB_BACKEND", key)}
    os.environ["MINSKY_SESSIONDB_BACKEND"] = backend
    os.environ[key] = flags[1]
    try:
        listed = minsky("session", "list", "--json")
        assert listed.exit_code == 0 and "warning" not in listed.stderr, listed.output
        assert minsky("sessiondb", "check").exit_code == 0
        records: list[dict[str, Any]] = json.loads(listed.stdout)["sessions"]
        return records
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
