"""Timestamps as the original Minsky read them back: ``Date.toISOString()``.

PostgreSQL hands a TIMESTAMPTZ to the original's driver, which builds a JavaScript ``Date``
(millisecond precision, fraction truncated) and prints it in UTC with an ``Z``. The
arithmetic here is on integers, not ``datetime``, so years outside 1..9999 (which
PostgreSQL stores and Python cannot hold) are converted as well.
"""

from __future__ import annotations

import calendar
import re

_STAMP = re.compile(
    r"^(?P<sign>[+-])?(?P<y>\d{4,6})-(?P<mo>\d\d)-(?P<d>\d\d)(?:[T ](?P<h>\d\d):(?P<mi>\d\d)(?::(?P<s>\d\d)"
    r"(?:[.,](?P<f>\d+))?)?)?\s*(?P<tz>Z|z|[+-]\d\d(?::?\d\d)?(?::\d\d)?)?(?P<bc> BC)?$"
)
MS_PER_DAY = 86_400_000
# Already what ``Date.toISOString()`` prints (every record minsky writes has such a createdAt):
# read back unchanged, so the integer arithmetic below is skipped. Day-of-month and year 0 are
# checked in ``_already_iso``; anything else takes the general path.
_ISO = re.compile(r"(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z")
# The same text in ASCII digits with a year other than 0000 and a day up to 28, which every month
# has: that it matches is the whole check (no groups, no arithmetic). Most timestamps are such
# text; any other (``\d`` also matches digits of other scripts, which ``int`` reads) takes ``_ISO``.
_ISO_COMMON = re.compile(
    r"(?!0000)[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z"
)


# How PostgreSQL prints a timestamptz in UTC (``2025-08-10 09:00:00.5+00``): rewritten directly.
_UTC_TEXT = re.compile(
    r"(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]((?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d)"
    r"(?:\.(\d+))?(?:Z|\+00(?::?00)?)"
)


# The same in ASCII digits with a year other than 0000 and a day up to 28 (see ``_ISO_COMMON``):
# the date and time are kept in place, only the fraction is rewritten.
_UTC_COMMON = re.compile(
    r"(?!0000)[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    r"[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.([0-9]+))?(?:Z|\+00(?::?00)?)"
)


def _utc_iso(text: str) -> str | None:
    common = _UTC_COMMON.fullmatch(text)
    if common is not None:
        fraction = common[1]
        return f"{text[:10]}T{text[11:19]}.{'000' if fraction is None else fraction[:3].ljust(3, '0')}Z"
    match = _UTC_TEXT.fullmatch(text)
    if match is None:
        return None
    year, day = int(match[1]), int(match[3])
    if year == 0 or (day > 28 and day > calendar.monthrange(year, int(match[2]))[1]):
        return None
    return f"{match[1]}-{match[2]}-{match[3]}T{match[4]}.{(match[5] or '')[:3].ljust(3, '0')}Z"


def _already_iso(text: str) -> bool:
    if _ISO_COMMON.fullmatch(text) is not None:
        return True
    match = _ISO.fullmatch(text)
    if match is None:
        return False
    year, day = int(match[1]), int(match[3])
    return year > 0 and (day <= 28 or day <= calendar.monthrange(year, int(match[2]))[1])


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


def epoch_ms(text: str) -> int | None:
    """Milliseconds since the epoch for an ISO-8601 (or PostgreSQL text) timestamp, else None.

    A timestamp without an offset is taken as UTC (what minsky's typed columns hold)."""
    match = _STAMP.match(text.strip())
    if match is None:
        return None
    g = match.groupdict()
    year = int(g["y"])
    if g["sign"] == "-":
        year = -year
    if g["bc"]:
        year = 1 - year  # 1 BC is year 0
    month, day = int(g["mo"]), int(g["d"])
    hour, minute, second = int(g["h"] or 0), int(g["mi"] or 0), int(g["s"] or 0)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 24 and minute < 60 and second < 61):
        return None
    millis = int((g["f"] or "0")[:3].ljust(3, "0"))
    offset = 0
    tz = g["tz"]
    if tz and tz not in "Zz":
        digits = tz[1:].replace(":", "")
        offset = int(digits[:2]) * 60 + int(digits[2:4] or 0)
        offset = -offset if tz[0] == "-" else offset
    days = _days_from_civil(year, month, day)
    return days * MS_PER_DAY + ((hour * 60 + minute - offset) * 60 + second) * 1000 + millis


def iso_from_ms(ms: int) -> str:
    """``Date.prototype.toISOString`` of an epoch time in milliseconds."""
    days, rest = divmod(ms, MS_PER_DAY)
    year, month, day = _civil_from_days(days)
    seconds, millis = divmod(rest, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    head = f"{year:04d}" if 0 <= year <= 9999 else f"{'+' if year > 0 else '-'}{abs(year):06d}"
    return f"{head}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


def to_iso(text: str) -> str | None:
    """The original's reading of a timestamp cell (``2025-08-10 09:00:00+00`` →
    ``2025-08-10T09:00:00.000Z``), or None when the text is no timestamp."""
    if _already_iso(text):
        return text
    fast = _utc_iso(text)
    if fast is not None:
        return fast
    ms = epoch_ms(text)
    return None if ms is None else iso_from_ms(ms)


def storable(value: str) -> str | None:
    """The UTC instant to put into a typed timestamp column, when ``value`` parses and its
    year is within 1..9999 (what every reader, JavaScript and Python alike, reads back), in
    ASCII digits: digits of another script (which ``\\d`` matches and ``int`` reads) are read as
    their instant and written as ``Date.toISOString()`` prints it, never passed through (a
    PostgreSQL column refused them, and with them the whole migration)."""
    if value.isascii() and _already_iso(value):
        return value
    ms = epoch_ms(value)
    if ms is None:
        return None
    iso = iso_from_ms(ms)
    return iso if iso[:4].isdigit() and iso[:4] != "0000" else None
