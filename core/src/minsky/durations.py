"""Durations such as ``12h``, ``30d``, ``2w`` (and combinations like ``1w2d``)."""

from __future__ import annotations

import re
from datetime import timedelta

from minsky.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)([smhdw])")
MAX_DAYS = 36_525  # 100 years: older than anything a session store holds, and far from datetime's limits


def parse_duration(text: str) -> timedelta:
    cleaned = text.strip().lower()
    if not cleaned or _PART.sub("", cleaned) != "":
        raise UsageError(f"bad duration {text!r}: use a number and a unit (s, m, h, d, w), e.g. 12h, 30d, 2w")
    parts = _PART.findall(cleaned)
    if any(len(n) > 12 for n, _ in parts):  # before int(): a number that long is absurd anyway
        raise UsageError(f"bad duration {text!r}: at most {MAX_DAYS}d (100 years)")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in parts)
    if seconds <= 0:
        raise UsageError(f"bad duration {text!r}: it must be longer than zero")
    if seconds > MAX_DAYS * 86400:
        raise UsageError(f"bad duration {text!r}: at most {MAX_DAYS}d (100 years)")
    return timedelta(seconds=seconds)
