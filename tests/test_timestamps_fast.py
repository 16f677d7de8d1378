"""``minsky.original.timestamps``' fast paths (``_ISO_COMMON``, ``_UTC_COMMON``) give exactly what
the checks they skip gave: the functions as of f4aaf4a, kept below as the reference, on
hand-picked and generated text (other scripts' digits, year 0000, the 29th to the 31st, leap
years, fractions, offsets)."""

from __future__ import annotations

import calendar
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from minsky.original import timestamps

_ISO = re.compile(r"(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z")
_UTC_TEXT = re.compile(
    r"(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]((?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d)"
    r"(?:\.(\d+))?(?:Z|\+00(?::?00)?)"
)


def ref_utc_iso(text: str) -> str | None:
    match = _UTC_TEXT.fullmatch(text)
    if match is None:
        return None
    year, day = int(match[1]), int(match[3])
    if year == 0 or (day > 28 and day > calendar.monthrange(year, int(match[2]))[1]):
        return None
    return f"{match[1]}-{match[2]}-{match[3]}T{match[4]}.{(match[5] or '')[:3].ljust(3, '0')}Z"


def ref_already_iso(text: str) -> bool:
    match = _ISO.fullmatch(text)
    if match is None:
        return False
    year, day = int(match[1]), int(match[3])
    return year > 0 and (day <= 28 or day <= calendar.monthrange(year, int(match[2]))[1])


def ref_to_iso(text: str) -> str | None:
    if ref_already_iso(text):
        return text
    fast = ref_utc_iso(text)
    if fast is not None:
        return fast
    ms = timestamps.epoch_ms(text)
    return None if ms is None else timestamps.iso_from_ms(ms)


def ref_storable(value: str) -> str | None:
    if value.isascii() and ref_already_iso(value):  # other scripts' digits: read, written in ASCII
        return value
    ms = timestamps.epoch_ms(value)
    if ms is None:
        return None
    iso = timestamps.iso_from_ms(ms)
    return iso if iso[:4].isdigit() and iso[:4] != "0000" else None


def same(text: str) -> None:
    assert timestamps._already_iso(text) == ref_already_iso(text), text
    assert timestamps._utc_iso(text) == ref_utc_iso(text), text
    assert timestamps.to_iso(text) == ref_to_iso(text), text
    assert timestamps.storable(text) == ref_storable(text), text


ARABIC_ZERO = "\u0660"  # ARABIC-INDIC DIGIT ZERO: ``\d`` matches it, ``int`` reads it as 0

SAMPLES = [
    "2025-01-20T10:30:00.000Z",
    "2025-01-20 10:30:00+00",
    "2025-01-20 10:30:00.5+00",
    "2025-01-20 10:30:00.123456+00:00",
    "2025-01-20T10:30:00Z",
    "2025-01-20 10:30:00+0000",
    "2025-01-20 10:30:00+01",
    "0000-01-01T00:00:00.000Z",
    "0000-01-01 00:00:00+00",
    "0001-01-01T00:00:00.000Z",
    "9999-12-31T23:59:59.999Z",
    "2024-02-29T00:00:00.000Z",
    "2023-02-29T00:00:00.000Z",
    "2023-02-29 00:00:00+00",
    "2025-04-31T00:00:00.000Z",
    "2025-04-30 00:00:00+00",
    "2025-01-28T24:00:00.000Z",
    "2025-01-28T10:30:00.000Z\n",
    f"{ARABIC_ZERO * 4}-01-01T00:00:00.000Z",
    f"{ARABIC_ZERO * 4}-01-01 00:00:00+00",
    f"2025-01-0{chr(0x0661)}T00:00:00.000Z",
    f"2025-01-01 00:00:00.{chr(0x0665)}+00",
    "+012025-01-01T00:00:00.000Z",
    "2025-1-01T00:00:00.000Z",
    "",
    "not a time",
]


def test_the_fast_paths_give_what_the_checks_gave() -> None:
    for text in SAMPLES:
        same(text)


digit = st.sampled_from("0123456789") | st.sampled_from([ARABIC_ZERO, "\u0661", "\u0665", "\u0669", "\uff10"])


def digits(n: int) -> st.SearchStrategy[str]:
    return st.lists(digit, min_size=n, max_size=n).map("".join)


@st.composite
def stamps(draw: st.DrawFn) -> str:
    year = draw(st.sampled_from(["0000", "0001", "1900", "2000", "2024", "2023", "9999"]) | digits(4))
    month = draw(st.sampled_from(["01", "02", "04", "12", "13", "00"]) | digits(2))
    day = draw(st.sampled_from(["01", "28", "29", "30", "31", "32", "00"]) | digits(2))
    sep = draw(st.sampled_from(["T", " ", "t"]))
    clock = draw(
        st.sampled_from(["00:00:00", "23:59:59", "24:00:00", "12:60:00"]) | digits(2).map(lambda d: f"{d}:00:00")
    )
    fraction = draw(st.sampled_from(["", ".", ".5", ".123", ".123456"]) | digits(3).map(lambda d: f".{d}"))
    zone = draw(st.sampled_from(["Z", "+00", "+00:00", "+0000", "+01", "-00", "", "z"]))
    return f"{year}-{month}-{day}{sep}{clock}{fraction}{zone}"


@settings(max_examples=2000, deadline=None)
@given(stamps() | st.text(max_size=30))
def test_any_text_reads_as_the_checks_read_it(text: str) -> None:
    same(text)


def test_a_timestamp_in_another_scripts_digits_is_stored_in_ascii() -> None:
    """Passed through as it was, such text made PostgreSQL refuse the whole migration (adversary
    helper-31); JavaScript's Date reads no such digits, Python's int does: the same instant."""
    assert timestamps.storable(f"2024-01-01T00:00:00.{ARABIC_ZERO * 3}Z") == "2024-01-01T00:00:00.000Z"
    assert timestamps.storable("\uff12\uff10\uff12\uff14-01-2\u0665T00:00:00.000Z") == "2024-01-25T00:00:00.000Z"
    assert timestamps.storable("2024-01-25T00:00:00.000Z") == "2024-01-25T00:00:00.000Z"
