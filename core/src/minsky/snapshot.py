"""What a migration's bulk copy read, kept flat: name → short digest for every record.

A dict of a million names and their 8-byte digests is ~150 MB of objects (and the catch-up's
sets of digests as much again). Here the names are one UTF-8 buffer with their end offsets,
their hashes and the digests arrays of 64-bit integers: about 40 bytes a record. Lookups
by name and by digest go through indexes sorted once, on first use, in 256 buckets each.
Adding a name again replaces its digest, as a dict would.
"""

from __future__ import annotations

import itertools
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence

from minsky import names

_BUCKETS = 256


def _int(digest: bytes) -> int:
    return int.from_bytes(digest, "big", signed=True)


def _sorted_buckets(keys: array[int], entries: Iterable[int]) -> tuple[list[array[int]], list[array[int]]]:
    """Entries grouped by the low byte of their key and sorted by key: (keys, entry numbers)."""
    groups = [array("I") for _ in range(_BUCKETS)]  # entry numbers: 4 bytes each
    for i in entries:
        groups[keys[i] & (_BUCKETS - 1)].append(i)
    order = [array("I", sorted(group, key=keys.__getitem__)) for group in groups]
    return [array("q", map(keys.__getitem__, group)) for group in order], order


class ShortDigests:
    def __init__(self) -> None:
        self._names = bytearray()
        self._ends = array("I")  # 4 bytes an offset, widened should the names pass 4 GiB
        self._hashes = array("q")
        self._digests = array("q")
        self._width = 8
        self._by_name: tuple[list[array[int]], list[array[int]]] | None = None
        self._replaced: bytearray | None = None  # entries a later one of the same name replaced
        self._removed: set[int] = set()  # entries dropped by name (sessions a catch-up saw deleted)

    def __setitem__(self, name: str, digest: bytes) -> None:
        self._names += name.encode("utf-8", "surrogatepass")
        if len(self._names) >= 1 << 32 and self._ends.typecode == "I":
            self._ends = array("Q", self._ends)
        self._ends.append(len(self._names))
        self._hashes.append(names.name_hash(name))
        self._digests.append(_int(digest))
        self._width = len(digest)
        self._by_name, self._replaced = None, None

    def extend(self, added: Sequence[str], digests: Sequence[bytes]) -> None:
        """``self[name] = digest`` for each pair in order, in a few calls for the whole batch
        (a migration's copy adds one a record: ~1 us each, one by one)."""
        if not added:
            return
        encoded = [name.encode("utf-8", "surrogatepass") for name in added]
        start = len(self._names)
        self._names += b"".join(encoded)
        if len(self._names) >= 1 << 32 and self._ends.typecode == "I":
            self._ends = array("Q", self._ends)
        self._ends.extend(itertools.islice(itertools.accumulate(map(len, encoded), initial=start), 1, None))
        self._hashes.extend(map(names.hasher(), added))
        width = len(digests[0])
        if width == 8 and all(len(d) == 8 for d in digests):  # as _int reads them: big-endian, signed
            packed = array("q", b"".join(digests))
            if sys.byteorder == "little":
                packed.byteswap()
            self._digests.extend(packed)
        else:
            self._digests.extend(map(_int, digests))
        self._width = len(digests[-1])
        self._by_name, self._replaced = None, None

    def _name(self, i: int) -> str:
        start = self._ends[i - 1] if i else 0
        return self._names[start : self._ends[i]].decode("utf-8", "surrogatepass")

    def _digest(self, i: int) -> bytes:
        return self._digests[i].to_bytes(self._width, "big", signed=True)

    def _index(self, *, keep: bool = True) -> tuple[list[array[int]], list[array[int]]]:
        """The entries by name hash; finding them also finds the entries a later one replaced.
        Kept only for lookups by name (the count of late changes needs only ``_replaced``)."""
        if self._by_name is not None:
            return self._by_name
        keys, order = index = _sorted_buckets(self._hashes, range(len(self._hashes)))
        replaced = bytearray(len(self._hashes))
        for bucket_keys, bucket in zip(keys, order, strict=True):
            if len(set(bucket_keys)) == len(bucket_keys):
                continue
            for _, run in itertools.groupby(range(len(bucket)), key=bucket_keys.__getitem__):
                last: dict[str, int] = {}
                for i in sorted(bucket[p] for p in run):
                    name = self._name(i)
                    if name in last:
                        replaced[last[name]] = 1
                    last[name] = i
        for i in self._removed:
            replaced[i] = 1
        self._replaced = replaced
        if keep:
            self._by_name = index
        return index

    def forget_name_index(self) -> None:
        """Drop the index lookups by name built (kept: which entries were replaced)."""
        self._by_name = None

    def _replaced_entries(self) -> bytearray:
        if self._replaced is None:
            self._index(keep=False)
        assert self._replaced is not None
        return self._replaced

    def _entry(self, name: str) -> int | None:
        keys, order = self._index()
        h = names.name_hash(name)
        b = h & (_BUCKETS - 1)
        for p in range(bisect_left(keys[b], h), bisect_right(keys[b], h)):
            i = order[b][p]
            if not self._replaced_entries()[i] and self._name(i) == name:
                return i
        return None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._entry(name) is not None

    def get(self, name: str) -> bytes | None:
        i = self._entry(name)
        return None if i is None else self._digest(i)

    def pop(self, name: str, default: bytes | None = None) -> bytes | None:
        """Drop ``name`` (a session deleted since); its digest, or ``default``."""
        i = self._entry(name)
        if i is None:
            return default
        self._removed.add(i)
        self._replaced_entries()[i] = 1
        return self._digest(i)

    def _live(self) -> Iterator[int]:
        replaced = self._replaced_entries()
        return (i for i in range(len(self._digests)) if not replaced[i])

    def __len__(self) -> int:
        return len(self._digests) - sum(self._replaced_entries())

    def items(self) -> Iterator[tuple[str, bytes]]:
        return ((self._name(i), self._digest(i)) for i in self._live())

    def values(self) -> Iterator[bytes]:
        return (self._digest(i) for i in self._live())

    def seen(self) -> Seen:
        """A fresh record of which digests a re-read of the source met."""
        return Seen(self)


class Seen:
    """Marks the snapshot's entries whose digest a re-read meets; the others are gone or changed."""

    def __init__(self, digests: ShortDigests) -> None:
        self._of = digests
        self._keys, self._order = _sorted_buckets(digests._digests, digests._live())
        self._marks = [bytearray(len(k)) for k in self._keys]

    def meet(self, digest: bytes) -> bool:
        """Whether the snapshot holds this digest (marking it met)."""
        value = _int(digest)
        b = value & (_BUCKETS - 1)
        keys = self._keys[b]
        lo = bisect_left(keys, value)
        if lo == len(keys) or keys[lo] != value:
            return False
        hi = bisect_right(keys, value, lo)
        self._marks[b][lo:hi] = b"\x01" * (hi - lo)
        return True

    def unmet(self) -> list[str]:
        """Names of the entries no digest met, in the order they were read."""
        entries = sorted(
            self._order[b][p] for b, marks in enumerate(self._marks) for p, met in enumerate(marks) if not met
        )
        return [self._of._name(i) for i in entries]
