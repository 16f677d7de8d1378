"""Records to and from the on-disk camelCase JSON, exactly; canonical form and digests.

Two records are the same when their canonical forms are byte-identical: UTF-8
JSON with sorted keys and no insignificant whitespace. Every verification in
minsky compares SHA-256 digests of that form.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import attrs
import cattrs
import orjson

from minsky.errors import RecordError
from minsky.model import MISSING, MODEL_CLASSES, SessionRecord
from minsky.values import DECODER as DECODER
from minsky.values import Unrepresentable as Unrepresentable
from minsky.values import UnrepresentableError as UnrepresentableError
from minsky.values import as_found_bytes as as_found_bytes
from minsky.values import canonical_object as canonical_object
from minsky.values import loads as loads
from minsky.values import orjson_exact as orjson_exact
from minsky.values import strict_bytes


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _nested_class(field: attrs.Attribute[Any]) -> type | None:
    # The annotation as written ("PrState | Missing | None"), or once cattrs has resolved it
    # ("minsky.model.PrState | minsky.model._Missing | None").
    names = {part.strip().rpartition(".")[2] for part in str(field.type).split("|")}
    return next((cls for cls in MODEL_CLASSES if cls.__name__ in names), None)


converter: Final = cattrs.Converter()


_NOT_DATA = ("extra", "_memo")


def _structure_lines(cls: type, skip: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """The body of a structuring function for ``cls``: one ``dict.get`` per field into a local
    of the field's name (a nested object structured only when it is a JSON object; anything
    else is kept as is), then ``extra``; and the names assigned (``skip`` left out)."""
    names = [f.name for f in attrs.fields(cls) if f.name not in _NOT_DATA and f.name not in skip]
    lines = ["    get = data.get"]
    for name in names:
        nested = _nested_class(attrs.fields_dict(cls)[name])
        lines.append(f"    {name} = get({camel(name)!r}, MISSING)")
        if nested is not None:
            lines += [f"    if type({name}) is dict:", f"        {name} = STRUCTURE[{nested.__name__}]({name})"]
    lines.append("    extra = {} if KNOWN.issuperset(data) else {k: v for k, v in data.items() if k not in KNOWN}")
    return lines, [*names, "extra"]


def _compile(cls: type, lines: list[str], kind: str) -> Any:
    fields = [f for f in attrs.fields(cls) if f.name not in _NOT_DATA]
    namespace: dict[str, Any] = {
        "MISSING": MISSING,
        "KNOWN": frozenset(camel(f.name) for f in fields),
        "CLS": cls,
        "STRUCTURE": _STRUCTURE,
        "SET": object.__setattr__,
        **{c.__name__: c for c in MODEL_CLASSES},
    }
    exec(compile("\n".join(lines), f"<minsky {kind} {cls.__name__}>", "exec"), namespace)  # noqa: S102
    return namespace[kind]


def _make_structure(cls: type) -> Callable[[Mapping[str, Any], type], Any]:
    """Generate a straight-line structuring function for ``cls`` (as cattrs' own code
    generation does): one ``dict.get`` per field and no per-key loop, about 5x faster
    than a generic loop."""
    body, names = _structure_lines(cls)
    args = ", ".join(f"{name}={name}" for name in names)
    structure: Callable[[Mapping[str, Any], type], Any] = _compile(
        cls, ["def structure(data, _=None):", *body, f"    return CLS({args})"], "structure"
    )
    return structure


def _make_fill() -> Callable[[SessionRecord, Mapping[str, Any]], None]:
    """Generate the function that gives a lazy record (``record_from_dict``) every field
    ``_make_structure`` would have given it: the same lines, set on the record in place."""
    body, names = _structure_lines(SessionRecord, skip=("session",))
    sets = [f"    SET(record, {name!r}, {name})" for name in names]
    fill: Callable[[SessionRecord, Mapping[str, Any]], None] = _compile(
        SessionRecord, ["def fill(record, data):", *body, *sets], "fill"
    )
    return fill


def _make_unstructure(cls: type) -> Callable[[Any], dict[str, Any]]:
    # Hot path of every migration: plain attribute reads, no per-value dispatch.
    plan = [(f.name, camel(f.name), _nested_class(f) is not None) for f in attrs.fields(cls) if f.name not in _NOT_DATA]

    def unstructure(obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for attr, key, nested in plan:
            value = getattr(obj, attr)
            if value is MISSING:
                continue
            if nested:
                encode = _UNSTRUCTURE.get(type(value))
                if encode is not None:
                    value = encode(value)
            out[key] = value
        if obj.extra:
            out.update(obj.extra)
        return out

    return unstructure


_STRUCTURE: dict[type, Callable[[Mapping[str, Any], type], Any]] = {}
_STRUCTURE.update({c: _make_structure(c) for c in MODEL_CLASSES})
_UNSTRUCTURE: dict[type, Callable[[Any], dict[str, Any]]] = {c: _make_unstructure(c) for c in MODEL_CLASSES}
for _cls in MODEL_CLASSES:
    converter.register_structure_hook(_cls, _STRUCTURE[_cls])
    converter.register_unstructure_hook(_cls, _UNSTRUCTURE[_cls])

fill_record: Final = _make_fill()
"""Set every field but ``session`` of a lazy record from its dict (``SessionRecord.__getattr__``)."""

_new_record: Final = SessionRecord.__new__
_set: Final = object.__setattr__


def record_from_dict(data: Any, *, where: str = "", canonical_form: bytes | None = None) -> SessionRecord:
    """Build a record from one decoded JSON object; reject what has no usable key.

    The record keeps ``data`` as its dict, and its fields are structured from it only when
    one is first read (a migration reads none): do not change ``data`` afterwards.

    ``canonical_form``: the bytes ``data`` was decoded from, given only when they are proven
    to be exactly ``canonical_bytes(data)`` (``canonical_object`` proves it): the record keeps
    them as its canonical form, which then is never encoded again. Never stored text unproven.
    """
    if not isinstance(data, dict):
        raise RecordError(f"{where}a session record must be a JSON object, got {type(data).__name__}")
    name = data.get("session")
    if not isinstance(name, str) or not name:
        raise RecordError(f"{where}record has no 'session' name (the key every store needs)")
    # The record came from exactly this dict (the round trip is lossless), so keep it as
    # the record's dict: writing it back needs no re-encoding and keeps the key order.
    # Only ``session`` and the memo are set; ``SessionRecord.__getattr__`` does the rest.
    if canonical_form is None:
        record: SessionRecord = _new_record(SessionRecord)
        _set(record, "session", name)
        _set(record, "_memo", {"dict": data})
        return record
    return proven_record(data, name, canonical_form)


def proven_record(data: dict[str, Any], name: str, canonical_form: bytes, text: str | None = None) -> SessionRecord:
    """``record_from_dict(data, canonical_form=canonical_form)`` for a caller that has checked
    what it checks: ``name`` is ``data["session"]``, a non-empty string. ``text``: the stored
    text ``canonical_form`` was encoded from, if the caller has it (``canonical_text``)."""
    record: SessionRecord = _new_record(SessionRecord)
    _set(record, "session", name)
    memo = {"dict": data, "canonical": canonical_form}
    if text is not None:
        memo["text"] = text
    _set(record, "_memo", memo)
    return record


def with_premade(record: SessionRecord, maker: object, made: object) -> None:
    """Keep ``made``, what ``maker`` (a ``RowMakingWriter.row_maker``) gave for ``record``
    elsewhere, for the writer to take (``premade``) rather than make again."""
    record._memo["premade"] = (maker, made)


def with_sha256(record: SessionRecord, sha256: bytes) -> bytes:
    """Keep ``sha256``, the SHA-256 of the record's canonical form its reader computed (for
    ``canonical_sha256``); returns it."""
    record._memo["sha256"] = sha256
    return sha256


def premade(record: SessionRecord, maker: object) -> Any:
    """What ``maker`` gave for ``record`` (``with_premade``), or None: made by another maker, or not made."""
    kept = record._memo.get("premade")
    return kept[1] if kept is not None and kept[0] is maker else None


def record_from_canonical(
    name: str, blob: bytes, sha256: bytes | None = None, ordered: bytes | None = None
) -> SessionRecord:
    """A record whose canonical form is ``blob`` and whose dict is ``orjson.loads(ordered)``,
    or of ``blob`` when ``ordered`` is None, exactly (key order included: the caller proved
    ``orjson.dumps(dict)`` is that text, e.g. ``minsky.forked``). The dict is decoded only when
    something asks for it (a writer handed its rows ready-made never does)."""
    record: SessionRecord = _new_record(SessionRecord)
    _set(record, "session", name)
    memo = {"canonical": blob, "undecoded": blob if ordered is None else ordered}
    if sha256 is not None:  # computed where the record was read, of these very bytes
        memo["sha256"] = sha256
    _set(record, "_memo", memo)
    return record


def memo_dict(memo: dict[str, Any]) -> dict[str, Any] | None:
    """The dict a record's memo holds, decoding it first for ``record_from_canonical``'s; None if none."""
    data: dict[str, Any] | None = memo.get("dict")
    if data is None and "undecoded" in memo:
        data = memo["dict"] = orjson.loads(memo.pop("undecoded"))
    return data


def canonical_of_dict(data: Any, *, where: str = "") -> bytes:
    """The form a decoded record's digest is taken of (``digest_bytes``), as ``record_digest``
    would hash it, without building the record: what verification needs, at half the cost."""
    if not isinstance(data, dict):
        raise RecordError(f"{where}a session record must be a JSON object, got {type(data).__name__}")
    name = data.get("session")
    if not isinstance(name, str) or not name:
        raise RecordError(f"{where}record has no 'session' name (the key every store needs)")
    return digest_bytes(data)


def canonical_stream(store: Any) -> Iterator[bytes]:
    """The canonical form of every record of a store: the store's own fast path (optional
    ``read_canonical()``, which may hand back the canonical bytes it stored) when it has
    one, else built from ``read()``."""
    fast = getattr(store, "read_canonical", None)
    if callable(fast):
        stream: Iterator[bytes] = fast()
        return stream
    return (canonical(record) for record in store.read())


def record_to_dict(record: SessionRecord) -> dict[str, Any]:
    """The record as its on-disk JSON object. Shared and memoised: copy it before changing it."""
    memo = record._memo
    data = memo.get("dict")
    if data is None:
        data = memo_dict(memo)
    if data is None:
        data = memo["dict"] = _UNSTRUCTURE[SessionRecord](record)
    result: dict[str, Any] = data
    return result


def canonical_bytes(data: Mapping[str, Any], *, where: str = "") -> bytes:
    """Sorted keys, no whitespace, UTF-8; ``UnrepresentableError`` for what no store can
    hold exactly (``minsky.values``): checked in this same encoding pass, at no extra cost."""
    return strict_bytes(data, where=where, sort_keys=True)


def compact_bytes(value: Any) -> bytes:
    """Compact JSON in the order given (refusing what ``canonical_bytes`` refuses)."""
    return strict_bytes(value)


def digest_bytes(data: Mapping[str, Any]) -> bytes:
    """What a digest is taken of: the canonical form, or for a record that has none (it holds
    a value no store can hold exactly) its sorted form as found, so that backups and
    verification can still count and compare it."""
    try:
        return canonical_bytes(data)
    except UnrepresentableError:
        return as_found_bytes(data, sort_keys=True)


def check(record: SessionRecord) -> SessionRecord:
    """The record, if a store can hold it exactly; else ``UnrepresentableError`` naming it."""
    canonical(record)
    return record


def record_problem(record: SessionRecord) -> str | None:
    """Why the record cannot be stored exactly, or None."""
    try:
        canonical(record)
    except UnrepresentableError as exc:
        return exc.reason
    return None


def canonical(record: SessionRecord) -> bytes:
    memo = record._memo
    blob = memo.get("canonical")
    if blob is None:
        blob = memo["canonical"] = canonical_bytes(record_to_dict(record), where=f"session {record.session!r}: ")
    result: bytes = blob
    return result


def decoded_from_canonical(record: SessionRecord) -> bool:
    """Whether the record's dict was decoded from its canonical form, as read (a reader proved
    the stored text canonical and kept it, ``proven_record``): ``orjson.loads`` of that form
    gives the very dict, key order included."""
    return "text" in record._memo


def canonical_text(record: SessionRecord) -> str:
    """``canonical(record)`` as text (what an SQL writer binds): the text a reader proved
    canonical when it kept it (``proven_record``), else the canonical form decoded."""
    text = record._memo.get("text")
    if text is None:
        return canonical(record).decode("utf-8", "surrogatepass")
    result: str = text
    return result


def canonical_sha256(record: SessionRecord) -> bytes:
    """The SHA-256 of the record's canonical form (``UnrepresentableError`` when it has none), kept."""
    memo = record._memo
    raw: bytes | None = memo.get("sha256")
    if raw is None:
        raw = memo["sha256"] = hashlib.sha256(canonical(record)).digest()
    return raw


def digest_form(record: SessionRecord) -> bytes:
    """What the record's digest is taken of (``digest_bytes``): its canonical form when it has one."""
    try:
        return canonical(record)
    except UnrepresentableError:
        return digest_bytes(record_to_dict(record))


def record_digest(record: SessionRecord) -> str:
    return hashlib.sha256(digest_form(record)).hexdigest()


_MOD: Final = 1 << 256


@attrs.define
class StoreDigest:
    """Order-independent digest of a whole store, built while streaming.

    The sum of per-record digests modulo 2**256 does not depend on order and
    needs constant memory; the count is kept beside it so that duplicates show.
    """

    count: int = 0
    total: int = 0

    def add(self, digest_hex: str) -> None:
        self.count += 1
        self.total = (self.total + int(digest_hex, 16)) % _MOD

    def add_bytes(self, digest: bytes) -> None:
        """A SHA-256 digest as bytes: the same as ``add(digest.hex())``, without the round trip
        through text (a migration adds two digests per record)."""
        self.count += 1
        self.total = (self.total + int.from_bytes(digest)) % _MOD

    def add_many(self, digests: Sequence[bytes]) -> None:
        """``add_bytes`` of each, in one sum."""
        self.count += len(digests)
        self.total = (self.total + sum(map(int.from_bytes, digests))) % _MOD

    def add_record(self, record: SessionRecord) -> str:
        digest = record_digest(record)
        self.add(digest)
        return digest

    @property
    def hexdigest(self) -> str:
        return f"{self.total:064x}"

    @classmethod
    def of(cls, records: Iterable[SessionRecord]) -> StoreDigest:
        acc = cls()
        for record in records:
            acc.add_record(record)
        return acc
