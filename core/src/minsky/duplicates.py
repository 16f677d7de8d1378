"""Session names a source holds more than once, and what a migration does with them.

Every built-in target is keyed: it holds one record per session name. A JSON store
or a backup may hold a name twice (the original Minsky's stores did). Nothing is
dropped silently; the user chooses (``--on-duplicate``):

- ``fail`` (default): stop before anything is written (or backed up), naming them;
- ``first`` / ``last``: keep the first (what the original's ``session get`` showed) or
  the last copy in source order; the others are counted as skipped and named, with
  their digests, in the report;
- ``rename``: keep every copy; the second is written as ``<name>~2``, the third as
  ``<name>~3`` (a number further on if that name is taken in the source or target).

A target may say that two names are one key (``normalize_key(name)``, e.g. a
case-insensitive table): duplicates are then found by that key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

import attrs

from minsky import names as names_module
from minsky.codec import record_digest
from minsky.errors import ConflictError
from minsky.model import SessionRecord
from minsky.names import FirstTimes, NameHashes

OnDuplicate = Literal["fail", "first", "last", "rename"]
POLICIES: tuple[OnDuplicate, ...] = ("fail", "first", "last", "rename")
EXAMPLES = 10


class DuplicateError(ConflictError):
    """The source holds a name more than once and no policy was chosen; nothing was written."""

    def __init__(self, message: str, *, hint: str | None = None, report: Any = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report  # the migration report so far, for --json


def _same(name: str) -> str:
    return name


def key_function(target_store: Any) -> Callable[[str], str]:
    """The target's notion of "the same name" (its optional ``normalize_key``), else identity."""
    normalize = getattr(target_store, "normalize_key", None)
    return normalize if callable(normalize) else _same


class NamesRepeated(Exception):
    """A copy made without a names pass (``KeyScan.deferred``) met a name twice, or two names
    sharing a hash: raised before its writer commits, so nothing is written, and the migration
    starts again with a names pass, which decides."""


class Taken:
    """Every key of the source and the target, as renames see it: the source's as hashes (a
    shared hash only makes a rename skip a number), the target's and the renames' as names."""

    def __init__(self, source: NameHashes, target: set[str]) -> None:
        self.source, self.target, self.added = source, target, set[str]()

    def __contains__(self, key: object) -> bool:
        return key in self.added or key in self.target or key in self.source

    def add(self, key: str) -> None:
        self.added.add(key)


@attrs.define
class KeyScan:
    """One pass over the source's names: the repeated ones, and those the target already holds.

    Flat in memory: the names are kept as hashes (``minsky.names``), about 9 bytes a name; a
    hash seen twice is confirmed by name in a second read of the names, which only a source
    that repeats a name (or, once in ~10^7 million-name stores, two names sharing a hash) costs.
    """

    copies: dict[str, int]  # key -> copies in the source, for keys seen more than once
    spelled: dict[str, list[str]]  # key -> the names as the source spells them
    conflicts: list[str]  # source names (in order) the target already holds
    taken: Taken  # every key of the source and the target: renames avoid them
    seen: NameHashes = attrs.field(factory=NameHashes)  # every key of the source
    deferred: bool = False  # no names pass: ``seen`` is filled as the copy reads (``deferred``)

    @classmethod
    def deferred_scan(cls) -> KeyScan:
        """No pass over the names before the copy: the copy adds each name to ``seen`` as it
        reads it, and ``DuplicatePlan.check_deferred`` looks for a repeat before the writer
        commits. For ``fail`` into an empty target, where no name changes a decision: a repeat
        only stops the copy, and the names pass, run then, names it."""
        seen = NameHashes()
        return cls({}, {}, [], Taken(seen, set()), seen, deferred=True)

    @classmethod
    def of(
        cls,
        names: Iterable[str] | Callable[[], Iterable[str]],
        existing: set[str],
        key: Callable[[str], str] = _same,
    ) -> KeyScan:
        """``names``: a callable reading the source's names afresh (called again only to confirm a
        repeated hash), or a collection that can be iterated twice."""
        read: Callable[[], Iterable[str]] = names if callable(names) else lambda: names
        existing_keys = {key(name) for name in existing} if key is not _same else existing
        seen = NameHashes()
        conflicts: list[str] = []
        if key is _same and not existing_keys:  # an empty target, names as spelled: the common case
            seen.add_all(read())
        else:
            held: set[str] = set()  # keys found in the target: a repeated name is one conflict
            for name in read():
                k = key(name)
                if k in existing_keys and k not in held:
                    held.add(k)
                    conflicts.append(name)
                seen.add(k)
        repeated = seen.freeze()
        copies: dict[str, int] = {}
        spelled: dict[str, list[str]] = {}
        if repeated:
            keys_of: dict[int, set[str]] = {}
            for name in read():
                k = key(name)
                if (h := names_module.name_hash(k)) in repeated:
                    keys_of.setdefault(h, set()).add(k)
                    copies[k] = copies.get(k, 0) + 1
                    spelling = spelled.setdefault(k, [])
                    if name not in spelling:
                        spelling.append(name)
            copies = {k: n for k, n in copies.items() if n > 1}
            spelled = {k: v for k, v in spelled.items() if k in copies}
            seen.exact({h for h, ks in keys_of.items() if len(ks) > 1})  # hashes two names share
        return cls(copies, spelled, conflicts, Taken(seen, existing_keys), seen)

    def describe(self, limit: int = EXAMPLES) -> str:
        shown = [
            "/".join(repr(n) for n in self.spelled[k]) + f" ({self.copies[k]} copies)" for k in sorted(self.copies)
        ]
        more = len(shown) - limit
        return ", ".join(shown[:limit]) + (f" and {more} more" if more > 0 else "")


@attrs.define
class DuplicatePlan:
    """Applies the policy to each record in source order, and remembers what it did.

    ``cursor()`` replays exactly the same decisions (verification reads the source again).
    """

    policy: OnDuplicate
    scan: KeyScan
    key: Callable[[str], str] = _same
    decisions: dict[tuple[str, int], str | None] = attrs.field(factory=dict)  # (key, copy) -> new name | skip
    skipped: list[dict[str, Any]] = attrs.field(factory=list)
    renamed: list[dict[str, Any]] = attrs.field(factory=list)
    written: dict[str, list[bytes]] = attrs.field(factory=dict)  # name -> digests written, when names repeat
    _seen: dict[str, int] = attrs.field(factory=dict)
    _streamed: FirstTimes | None = None  # which names streamed so far (kept flat: minsky.names)

    def cursor(self) -> DuplicatePlan:
        return DuplicatePlan(self.policy, self.scan, self.key, self.decisions)

    def check_deferred(self) -> None:
        """The copy of a ``deferred`` scan has read every record: ``NamesRepeated`` if a name's
        hash came twice. Called before the writer commits."""
        if self.repeated_so_far():
            raise NamesRepeated

    def repeated_so_far(self) -> bool:
        """Whether a name's hash came twice among the names a ``deferred`` scan's copy has read
        (once: the hashes are then frozen)."""
        if not self.scan.deferred:
            return False
        self.scan.deferred = False
        return bool(self.scan.seen.freeze())

    def read_all(self) -> None:
        """The copy has read every record: let go of the names' hashes and marks (~9 bytes a
        name) before the catch-up re-reads the source. Decisions already made are kept."""
        self._streamed = None
        self.scan.seen = self.scan.taken.source = NameHashes()
        self.scan.seen.freeze()

    def snapshot_name(self, record: SessionRecord, kept: SessionRecord | None) -> str:
        """The name a copy's source digest is remembered under for the catch-up: the name it was
        written as, or for a skipped copy a key no session has (NUL is refused in names)."""
        if kept is None:
            return f"{record.session}\x00copy {self._seen.get(self.key(record.session), 0)}"
        return kept.session

    def remember(self, name: str, digest: bytes) -> None:
        """What was written under ``name``, for verification, when the source repeats names."""
        if self.scan.copies:
            self.written.setdefault(name, []).append(digest)

    def rejected(self, record: SessionRecord) -> str:
        """A copy refused as unrepresentable (never written): still one of its name's copies, so
        that the rule numbers the others as the source orders them; the name its digest is
        remembered under (``snapshot_name``)."""
        k = self.key(record.session)
        if k not in self.scan.copies:
            if self.scan.deferred:
                self.scan.seen.add(k)
            return record.session
        self._seen[k] = self._seen.get(k, 0) + 1
        return self.snapshot_name(record, None)

    def decide(self, record: SessionRecord) -> SessionRecord | None:
        """The record to write for this copy (perhaps renamed), or None to skip it."""
        k = self.key(record.session)
        total = self.scan.copies.get(k)
        if total is None:
            if self.scan.deferred:
                self.scan.seen.add(k)
                return record
            if self._streamed is None:
                self._streamed = self.scan.seen.first_times()
            if not self._streamed.first_time(k):  # repeated, yet not when the names were scanned
                raise ConflictError(
                    f"session {record.session!r} appeared a second time while the source was being read; "
                    "nothing was written",
                    hint="the source changed during the migration: run it again",
                )
            return record
        copy = self._seen[k] = self._seen.get(k, 0) + 1
        if (k, copy) not in self.decisions:
            self.decisions[k, copy] = self._new_decision(record, k, copy, total)
            outcome = self.decisions[k, copy]
            if outcome is None:
                self.skipped.append({"session": record.session, "copy": copy, "digest": record_digest(record)})
            elif outcome != record.session:
                self.renamed.append({"session": record.session, "copy": copy, "as": outcome})
        outcome = self.decisions[k, copy]
        if outcome is None:
            return None
        return record if outcome == record.session else attrs.evolve(record, session=outcome)

    def _new_decision(self, record: SessionRecord, k: str, copy: int, total: int) -> str | None:
        if self.policy == "first":
            return record.session if copy == 1 else None
        if self.policy == "last":
            return record.session if copy == total else None
        if self.policy == "rename" and copy > 1:
            number = copy
            while self.key(f"{record.session}~{number}") in self.scan.taken:
                number += 1
            new = f"{record.session}~{number}"
            self.scan.taken.add(self.key(new))
            return new
        return record.session

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "names": [name for k in sorted(self.scan.copies) for name in self.scan.spelled[k]],
            "copies": sum(self.scan.copies.values()),
            "skipped": self.skipped,
            "renamed": self.renamed,
        }


def stop(scan: KeyScan, report: Any, *, dry_run: bool) -> DuplicateError:
    """The error that stops a migration under ``--on-duplicate fail``."""
    names = len(scan.copies)
    verb = "would stop" if dry_run else "stopped"
    return DuplicateError(
        f"the source holds {names} session name{'s' if names != 1 else ''} more than once: {scan.describe()}; "
        f"the target keeps one record per name, so the migration {verb} before writing anything",
        hint="choose --on-duplicate first|last|rename, or first move the later copies out of a configured "
        "JSON store with `minsky sessiondb verify --repair`",
        report=report,
    )
