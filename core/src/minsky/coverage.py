"""Verification against the source's own content, not only against what was written.

Comparing the target with what was written passes a reader that drops a column: both
sides lack it. A store that can hand over its raw rows (``source_rows()``, which the SQL
backends implement with ``minsky.original``) is checked cell by cell instead: every
non-NULL cell of every row must be accounted for in the record its reader yielded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from minsky.errors import StoreError
from minsky.original import store_coverage

log = logging.getLogger(__name__)

LIMIT = 20


def source_gaps(store: Any, limit: int = LIMIT, read_digest: Callable[[str], bytes | None] | None = None) -> list[str]:
    """What the source holds and its records do not, one line each naming record and column.

    ``read_digest`` (a migration's snapshot: name → short digest of the record it read) makes
    it one pass over the source's rows instead of two (``minsky.original.store_coverage``)."""
    if not callable(getattr(store, "source_rows", None)):
        return []
    try:
        return store_coverage(store, limit, read_digest)
    except StoreError as exc:  # the copy read it a moment ago: a transient failure, not a gap
        log.warning("the source's cells were not checked: %s", exc)
        return []
