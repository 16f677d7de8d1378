"""A set of session names in about 9 bytes a name, for the passes that see every name of a store.

A Python set of a million names holds a million string objects (~100 MB); this holds each
name's 64-bit hash (Python's own ``hash``: keyed per process, cached on the string) in 256
arrays, sorted once filled, and a one-byte mark per name. Two names may share a hash (about
one pair in 10^7 among a million names): ``freeze`` returns the hashes added more than once,
so the caller confirms those by name, and tells ``exact`` the hashes two names share, which
``FirstTimes`` then tells apart by name.
"""

from __future__ import annotations

import itertools
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable

_BUCKETS = 256


def name_hash(name: str) -> int:
    """The 64-bit hash a name is kept as (a test may replace it to make names collide)."""
    return hash(name)


_NAME_HASH = name_hash


def hasher() -> Callable[[str], int]:
    """``name_hash`` for a whole batch of names: the builtin itself unless a test replaced it."""
    return hash if name_hash is _NAME_HASH else name_hash


class NameHashes:
    def __init__(self) -> None:
        self._buckets = [array("q") for _ in range(_BUCKETS)]
        self._frozen = False
        self._exact_hashes: set[int] = set()  # hashes two names share: told apart by name
        self._extra: set[str] = set()  # added after freezing

    def hashed(self) -> int:
        """How many names were added before freezing (repeats counted)."""
        return sum(len(bucket) for bucket in self._buckets)

    def add(self, name: str) -> None:
        if self._frozen:
            self._extra.add(name)
            return
        h = name_hash(name)
        self._buckets[h & (_BUCKETS - 1)].append(h)

    def add_all(self, added: Iterable[str]) -> None:
        """``add`` of each (a names pass adds every name of the source: no call a name)."""
        if self._frozen:
            self._extra.update(added)
            return
        buckets, mask = self._buckets, _BUCKETS - 1
        for h in map(hasher(), added):
            buckets[h & mask].append(h)

    def freeze(self) -> set[int]:
        """Sort the arrays; the hashes that were added more than once (repeated names, or collisions)."""
        repeated: set[int] = set()
        for n, bucket in enumerate(self._buckets):
            ordered = sorted(bucket)
            if len(set(ordered)) != len(ordered):
                repeated.update(a for a, b in itertools.pairwise(ordered) if a == b)
            self._buckets[n] = array("q", ordered)
        self._frozen = True
        return repeated

    def exact(self, hashes: set[int]) -> None:
        """Names with these hashes are told apart by name in ``FirstTimes`` (hashes two names share)."""
        self._exact_hashes |= hashes

    def _find(self, h: int) -> tuple[int, int] | None:
        bucket = self._buckets[h & (_BUCKETS - 1)]
        i = bisect_left(bucket, h)
        return (h & (_BUCKETS - 1), i) if i < len(bucket) and bucket[i] == h else None

    def __contains__(self, name: object) -> bool:
        """Whether the name was added: exact for every name added, rarely true for another (a shared hash)."""
        if not isinstance(name, str):
            return False
        if name in self._extra:
            return True
        if not self._frozen:
            return (h := name_hash(name)) in self._buckets[h & (_BUCKETS - 1)]
        return self._find(name_hash(name)) is not None

    def first_times(self) -> FirstTimes:
        """After ``freeze``: a fresh record of which of these names were met."""
        return FirstTimes(self)


class FirstTimes:
    """``first_time(name)``: True the first time a name is passed, False after; one byte a name."""

    def __init__(self, names: NameHashes) -> None:
        self._names = names
        self._marks = [bytearray(len(b)) for b in names._buckets]
        self._exact: set[str] = set()  # names outside the arrays, or sharing a hash: by name

    def first_time(self, name: str) -> bool:
        # Once for every record a migration copies: ``_find`` written out, the builtin hash called
        # directly (together ~0.3 us of ~0.8).
        h = hash(name) if name_hash is _NAME_HASH else name_hash(name)
        names = self._names
        b = h & (_BUCKETS - 1)
        bucket = names._buckets[b]
        i = bisect_left(bucket, h)
        if i < len(bucket) and bucket[i] == h and h not in names._exact_hashes:
            marks = self._marks[b]
            if marks[i]:
                return False
            marks[i] = 1
            return True
        if name in self._exact:  # outside the arrays, or sharing a hash: by name
            return False
        self._exact.add(name)
        return True


class GrowingNameHashes:
    """Names added one at a time (a writer's "have I written this name?"), 8 bytes each in 4096
    sorted arrays. ``add`` is False when the name's hash was added before: the caller confirms
    by name (a real repeat, or two names sharing a hash: about one pair in 10^7 at 1M)."""

    _WAYS = 4096

    def __init__(self) -> None:
        self._buckets = [array("q") for _ in range(self._WAYS)]
        self._count = 0

    def add(self, name: str) -> bool:
        h = name_hash(name)
        bucket = self._buckets[h & (self._WAYS - 1)]
        i = bisect_left(bucket, h)
        if i < len(bucket) and bucket[i] == h:
            return False
        bucket.insert(i, h)
        self._count += 1
        return True

    def __len__(self) -> int:
        return self._count
