"""Restoring: a backup is opened once, inspected in one streaming pass, then read
again from the same descriptor for the restore.

Every pass hashes the bytes it reads and must see exactly the bytes the
inspection saw: a file rewritten after its check makes the restore fail before
the target commits (a migration's target changes only when its read stream ends
cleanly), so what is restored is what was checked.

A restore may open a backup with a survey instead (``open_backup(survey=True)``): one pass
over the names at the head of each line, as ``write_backup`` puts them, without decoding a
record. Its read then does the inspection's work on each record it decodes anyway: the name
it holds must be the one the survey read, and at the end the count and digest must be the
metadata's, or the read raises before the target commits (``NotAsSurveyed``: the caller
inspects the file in full and starts again). One decoding pass instead of two.

A forked restore splits the read (``Backup.read_split``): the reader child cuts the lines and
hashes the bytes, decoders decode them, each checking its record's name; the count and digest
of them all are checked where the records meet, by the migration (``check_read``), before
the target commits.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Literal

from minsky import jsonlines
from minsky import names as names_module
from minsky.backup.files import check_symlinks, open_regular, shown
from minsky.backup.layout import Layout, sessions
from minsky.backup.scan import HashingBytes, Scanner
from minsky.codec import (
    StoreDigest,
    UnrepresentableError,
    as_found_bytes,
    canonical_bytes,
    canonical_of_dict,
    record_from_dict,
    with_sha256,
)
from minsky.errors import ConflictError, MinskyError, StoreError, VerificationError
from minsky.model import SessionRecord
from minsky.names import NameHashes

DUPLICATE_EXAMPLES = 10
SPLIT_BATCH: Final = 250  # lines a batch of ``read_split``: one message of a forked read
# A record's name in its line, as ``write_backup`` puts it: the first "session" key with a string
# value (first in a JSON store's order, after the keys that sort before it in a SQL store's).
# Trusted by the names pass only when the inspection found, on every line, exactly the name the
# whole record decodes to, or the read checks it (surveyed); a name with an escape, a nested or a
# second "session" key makes the names pass decode every record. (A JSON string holds no bare
# quote, so these bytes are always a key and its value, never text inside a string.)
_NAME = re.compile(rb'"session": "([^"\\]*)"')

# What a pass yields for each entry: the entry decoded ("items"), only its name from the head of
# its line ("names"), the entry with that name ("named_items"), or its line undecoded with that
# name ("named_texts", a split read's fetch).
_Mode = Literal["items", "names", "named_items", "named_texts"]


class NotAsSurveyed(StoreError):
    """A surveyed backup's read found what the survey could not see (a record whose name is not
    the one at the head of its line, a record that does not decode on its own line): nothing
    decided from the survey is kept. The caller inspects the backup (``Backup.prove``) and
    starts again."""


class _Unsurveyable(Exception):
    """The survey cannot stand in for the inspection (repeated names, a count that is not the
    metadata's): the inspection runs at once."""


class Backup:
    """An open backup file: a read-only migration source whose every pass reads the same bytes."""

    def __init__(self, fd: int, path: Path, *, survey: bool = False) -> None:
        self.fd = fd
        self.path = path
        info = os.fstat(fd)
        self.size = info.st_size
        self.identity = (info.st_dev, info.st_ino)
        self.owner = info.st_uid
        self.sha256 = ""
        self.layout = Layout()
        self.digest = StoreDigest()
        self.repeated: dict[str, int] = {}  # name -> copies, for names held more than once
        self.lines = True  # read line by line (``minsky.jsonlines``), proved by the inspection; else scanned
        self.named = True  # each line begins with its record's name (as written), proved by the inspection
        self.proven = True  # inspected in full; False: surveyed, the read checks what the inspection would
        self.surveyed = 0  # records the survey counted
        if survey:
            try:
                self._survey()
                return
            except (jsonlines.NotLines, jsonlines.TwoLists, _Unsurveyable):
                self.layout, self.named, self.sha256, self.proven = Layout(), True, "", True
        self._inspect()

    # -- ReadableStore ---------------------------------------------------------

    @property
    def location(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return True

    def read(self) -> Iterator[SessionRecord]:
        if not self.proven:
            return self._read_surveyed()
        return (self._record(index, item) for index, item in enumerate(self._pass(Layout())))

    def fork_reader(self) -> Backup:
        """Every pass reads with ``pread``, at offsets of its own: ``self`` reads as well in a fork."""
        return self

    def read_split(self) -> tuple[Callable[[Any], SessionRecord], Iterator[Sequence[Any]]] | None:
        """``read()`` as its lines' text and their decoder (``SplitReadStore``): a forked restore
        decodes on more cores than one. The fetch cuts the lines and hashes every byte (the
        inspection's bytes, or the "changed" error after the last batch); a decoder decodes a
        line as ``read()`` does and, for a surveyed backup, checks its name is the survey's. The
        count and digest of all the records are the migration's to check (``check_read``): they
        meet only there. None when the inspection did not find one record per line."""
        if not self.lines:
            return None
        surveyed = not self.proven

        def decode(row: tuple[int, str | None, bytes]) -> SessionRecord:
            index, name, text = row
            try:
                item = jsonlines.decode_entry(text)
            except jsonlines.NotLines:  # the survey did not decode it; the inspection did
                if surveyed:
                    raise NotAsSurveyed(f"backup {shown(self.path)}: record {index} does not decode") from None
                raise self._changed() from None
            return self._surveyed_record(index, name, item)[0] if surveyed else self._record(index, item)

        def batches() -> Iterator[Sequence[tuple[int, str | None, bytes]]]:
            batch: list[tuple[int, str | None, bytes]] = []
            try:
                for index, (name, text) in enumerate(self._pass(Layout(), "named_texts")):
                    batch.append((index, name, text))
                    if len(batch) >= SPLIT_BATCH:
                        yield batch
                        batch = []
            except (jsonlines.NotLines, jsonlines.TwoLists) as exc:  # only a surveyed backup's
                if batch:  # the records before the error first, as ``read()`` gives them
                    yield batch
                raise NotAsSurveyed(f"backup {shown(self.path)}: {exc}") from None
            except Exception:
                if batch:
                    yield batch
                raise
            if batch:
                yield batch

        return decode, batches()

    def check_read(self, count: int, hexdigest: str) -> None:
        """A read gave ``count`` records with this digest (``CheckedReadStore``): the damaged
        error unless the metadata says so; a surveyed backup's digest is then known."""
        found = StoreDigest(count=count, total=int(hexdigest, 16))
        self._against_meta(found)
        if not self.proven:
            self.digest = found

    def count(self) -> int:
        return self.digest.count if self.proven else self.surveyed

    def keys(self) -> Iterator[str]:
        # The inspection checked every entry is an object with a name (``canonical_of_dict``),
        # and this pass reads the bytes it read: the names ``read`` would give, without the records;
        # read from the head of each line when the inspection found every name there (surveyed:
        # where the survey found one on every line, and the read checks each against its record).
        if self.lines and self.named:
            return self._pass(Layout(), "names")
        return (item["session"] for item in self._pass(Layout()))

    # -- what the inspection found -----------------------------------------------

    @property
    def meta(self) -> dict[str, Any] | None:
        return self.layout.meta

    @property
    def description(self) -> str:
        return self.layout.describe(self.path.name)

    def check(self) -> None:
        """Raise unless the backup agrees with its own metadata (a surveyed one: its count, the
        digest being the read's to check)."""
        if self.proven:  # else the survey compared the counts
            self._against_meta(self.digest)

    def _against_meta(self, digest: StoreDigest) -> None:
        meta = self.meta
        if meta is not None and (meta.get("count"), meta.get("storeDigest")) != (digest.count, digest.hexdigest):
            raise VerificationError(
                f"backup {shown(self.path)} is damaged: it holds {digest.count} records with digest "
                f"{digest.hexdigest[:12]}…, its metadata says {meta.get('count')} and "
                f"{str(meta.get('storeDigest'))[:12]}…; nothing was restored"
            )

    def refuse_repeated(self) -> None:
        """Raise, naming them, if the backup holds a session name more than once."""
        if self.repeated:
            names = sorted(self.repeated)
            listed = ", ".join(f"{shown(repr(n))} ({self.repeated[n]} copies)" for n in names[:DUPLICATE_EXAMPLES])
            more = f" and {len(names) - DUPLICATE_EXAMPLES} more" if len(names) > DUPLICATE_EXAMPLES else ""
            raise ConflictError(
                f"backup {shown(self.path)} holds {len(names)} session name(s) more than once: {listed}{more}; "
                "a store keeps one record per name, so nothing was restored",
                hint="choose --on-duplicate first|last|rename, or restore a copy in which each name appears once",
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.layout.form,
            "description": self.description,
            "bytes": self.size,
            "sha256": self.sha256,
            "count": self.digest.count,
            "storeDigest": self.digest.hexdigest,
            "checkedAgainstMetadata": self.meta is not None,
        }

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Backup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prove(self) -> None:
        """Inspect a surveyed backup in full, as if it had been opened without a survey: the bytes
        the survey read, or the "changed" error (what is restored is what was opened)."""
        if self.proven:
            return
        surveyed = self.sha256
        self.layout, self.digest, self.repeated = Layout(), StoreDigest(), {}
        self.named, self.sha256, self.proven = True, "", True
        try:
            self._inspect()
        except MinskyError:
            if self._sha256_now() != surveyed:  # refused for bytes it was not opened with
                raise self._changed() from None
            raise
        if self.sha256 != surveyed:
            raise self._changed()

    def adopt_digest(self, count: int, hexdigest: str) -> None:
        """The digest a surveyed backup's read found in another process (a migration's forked
        reader), where it checked it: what ``to_json`` reports."""
        if not self.proven and self.digest.count == 0:
            self.digest = StoreDigest(count=count, total=int(hexdigest, 16))

    # -- passes --------------------------------------------------------------------

    def _changed(self) -> StoreError:
        return StoreError(f"backup {shown(self.path)} changed while it was being read; nothing was restored from it")

    def _sha256_now(self) -> str:
        raw = HashingBytes(self.fd, self.size)
        try:
            while raw.read(1 << 20):
                pass
        except OSError:
            return ""
        return raw.sha256.hexdigest() if raw.offset == self.size and not raw.grew() else ""

    def _survey(self) -> None:
        """The names at the head of each line (one pass, nothing decoded): count, layout and
        repeated names; ``_Unsurveyable`` when only the inspection can tell."""
        seen = NameHashes()
        count = 0
        for name in self._pass(self.layout, "names"):
            seen.add(name)
            count += 1
        meta = self.meta
        if seen.freeze() or (meta is not None and meta.get("count") != count):
            raise _Unsurveyable
        self.surveyed, self.proven = count, False

    def _read_surveyed(self) -> Iterator[SessionRecord]:
        """``read``, doing the inspection's work on each record as it goes: its name must be
        the survey's, and the count and digest of all of them the metadata's."""
        digest = StoreDigest()
        try:
            for index, (name, item) in enumerate(self._pass(Layout(), "named_items")):
                record, sha256 = self._surveyed_record(index, name, item)
                digest.add_bytes(sha256)
                yield record
        except (jsonlines.NotLines, jsonlines.TwoLists) as exc:
            raise NotAsSurveyed(f"backup {shown(self.path)}: {exc}") from None
        self._against_meta(digest)
        self.digest = digest

    @functools.cached_property
    def _where(self) -> str:
        return f"backup {shown(self.path)}: session "  # once: ``shown`` took 8 µs of a record's 21

    def _record(self, index: int, item: Any) -> SessionRecord:
        return record_from_dict(item, where=f"{self._where}{index}: ")

    def _surveyed_record(self, index: int, name: str | None, item: Any) -> tuple[SessionRecord, bytes]:
        """The record of a surveyed backup's entry, if it is named as its line begins, and the
        SHA-256 its digest adds (``digest_form``'s)."""
        if not isinstance(item, dict) or item.get("session") != name:
            raise NotAsSurveyed(f"backup {shown(self.path)}: record {index} is not named as its line begins")
        try:
            blob = canonical_bytes(item)
        except UnrepresentableError:  # refused by the migration, by name; counted as found
            return record_from_dict(item), hashlib.sha256(as_found_bytes(item, sort_keys=True)).digest()
        record = record_from_dict(item, where=f"{self._where}{index}: ", canonical_form=blob)
        return record, with_sha256(record, hashlib.sha256(blob).digest())

    def _inspect(self) -> None:
        try:
            self._inspect_pass()
        except (jsonlines.NotLines, jsonlines.TwoLists):
            # Not minsky's own layout (or not provably so): scan the document from the start.
            self.lines = False
            self.layout, self.digest, self.repeated = Layout(), StoreDigest(), {}
            self._inspect_pass()

    def _inspect_pass(self) -> None:
        seen = NameHashes()  # ~9 bytes a name: a set of a million names would hold ~100 MB
        where = f"backup {shown(self.path)}: session "
        for index, item in enumerate(self._pass(self.layout)):
            # The canonical form straight from the decoded dict: what the record's would be, at half the cost.
            self.digest.add_bytes(hashlib.sha256(canonical_of_dict(item, where=f"{where}{index}: ")).digest())
            seen.add(item["session"])
        repeated = seen.freeze()
        if repeated:  # names sharing a hash: counted by name in one more pass (only then)
            copies: dict[str, int] = {}
            for name in self.keys():
                if names_module.name_hash(name) in repeated:
                    copies[name] = copies.get(name, 0) + 1
            self.repeated = {name: n for name, n in copies.items() if n > 1}

    def _pass(self, layout: Layout, mode: _Mode = "items") -> Iterator[Any]:
        """The session entries, as ``mode`` says (``names`` only when the inspection proved that
        is where they are, or to survey them); raises at the end if the bytes were not the
        inspected (or surveyed) ones.

        Raises ``NotLines``/``TwoLists`` in the inspection or the survey when the file is not
        provably laid out one record per line (``Backup._inspect`` then scans it), and in a
        surveyed read (which did not prove it); another pass that finds so was not given the bytes
        the inspection read."""
        raw = HashingBytes(self.fd, self.size)
        buffered = io.BufferedReader(raw, 1 << 20)
        where = f"backup {shown(self.path)}"
        changed = self._changed()
        try:
            if self.lines:
                yield from self._lines(buffered, layout, mode)
                while buffered.read(1 << 20):
                    pass
            else:
                text = io.TextIOWrapper(buffered, encoding="utf-8", errors="surrogateescape", newline="")
                scanner = Scanner(text.read, where)
                yield from sessions(scanner, layout)
                while text.read(1 << 20):
                    pass
        except OSError as exc:
            raise StoreError(f"cannot read {where}: {exc.strerror}") from None
        except (StoreError, jsonlines.NotLines, jsonlines.TwoLists) as exc:
            # A surveyed read's: the survey did not read so far.
            unproven = mode in ("named_items", "named_texts") and not self.proven and not isinstance(exc, StoreError)
            if self.sha256 and not unproven:  # it read well before: what fails now is not what was checked
                raise changed from None
            raise
        digest = raw.sha256.hexdigest()
        if raw.offset != self.size or raw.grew() or (self.sha256 and digest != self.sha256):
            raise changed
        self.sha256 = digest

    def _lines(self, handle: io.BufferedReader[HashingBytes], layout: Layout, mode: _Mode) -> Iterator[Any]:
        """The entries of a backup laid out one per line, as ``sessions`` would give them, filling
        in ``layout`` as it does; ``NotLines`` for anything it would read otherwise."""
        found = jsonlines.Layout()
        inspecting = not self.sha256
        for piece in jsonlines.pieces(handle, found):
            if mode == "names":
                match = _NAME.search(piece)
                if match is None:  # the inspection found one on every line: not the bytes it read
                    raise jsonlines.NotLines("a record whose name is not where the inspection found it")
                yield match.group(1).decode("utf-8", "surrogateescape")
                continue
            if mode == "named_texts":  # decoded elsewhere (``read_split``)
                match = _NAME.search(piece)
                yield (None if match is None else match.group(1).decode("utf-8", "surrogateescape")), piece
                continue
            item = jsonlines.decode_entry(piece)  # NotLines: not laid out in lines, or damaged
            if mode == "named_items":
                match = _NAME.search(piece)
                yield (None if match is None else match.group(1).decode("utf-8", "surrogateescape")), item
                continue
            if inspecting and self.named:
                match = _NAME.search(piece)
                if (
                    match is None
                    or not isinstance(item, dict)
                    or match.group(1).decode("utf-8", "surrogateescape") != item.get("session")
                ):
                    self.named = False  # the names pass decodes every record, as before
            yield item
        rest = found.rest
        if "data" in rest:  # the scanner reads a "data" object's keys one by one (any copy of the key)
            raise jsonlines.NotLines("a 'data' key beside the list")
        layout.form = "array" if found.bare else "store"
        layout.fields = rest


def open_backup(path: Path, *, survey: bool = False) -> Backup:
    """Open and inspect a backup file of any shape (not yet checked: see ``Backup.check``); with
    ``survey``, only survey it when it can be (its read then checks it: ``NotAsSurveyed``)."""
    check_symlinks(path)
    fd = open_regular(path, follow=True)
    try:
        return Backup(fd, path, survey=survey)
    except BaseException:
        os.close(fd)
        raise
