"""What the operation hooks (``minsky.hookspecs``) pass and return.

A contract module: plugins, backends or not, may import it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import attrs

from minsky.backend import BulkWriter
from minsky.model import SessionRecord

WriteKind = Literal["insert", "update", "upsert", "delete"]


@attrs.frozen
class WriteBatch:
    """One change to a store, as the ``write`` hook receives it.

    ``insert`` adds ``records`` (a name taken is a ``ConflictError``); ``upsert`` stages
    ``records`` into ``writer`` (a migration's or restore's batch); ``update`` applies
    ``change`` to the session in ``names`` atomically; ``delete`` removes ``names`` (with a
    ``writer``: staged there, gone when a migration's last step commits).
    """

    kind: WriteKind
    records: Sequence[SessionRecord] = ()
    names: Sequence[str] = ()
    change: Callable[[SessionRecord], SessionRecord] | None = None
    writer: BulkWriter | None = None


@attrs.frozen
class Written:
    """What a ``write`` did: the records as stored, and the names actually deleted."""

    records: Sequence[SessionRecord] = ()
    deleted: Sequence[str] = ()


@attrs.frozen
class BackupResult:
    """A backup made by the ``backup`` hook: its file, record count, store digest and format."""

    path: Path
    count: int
    digest: str
    format: str = "json"


__all__ = ["BackupResult", "WriteBatch", "WriteKind", "Written"]
