"""Verification against the source's own content, not only against what was written.

Comparing the target with what was written passes a reader that drops a column: both
sides lack it. A store that can hand over its raw rows (``source_rows()``, which the SQL
backends implement with ``minsky.original``) is checked cell by cell instead: every
non-NULL cell of every row must be accounted for in the record its reader yielded.
"""

from __future__ import annotations

import logging
from typing import Any

from minsky.errors import StoreError
from minsky.original import store_coverage

log = logging.getLogger(__name__)

LIMIT = 20


def source_gaps(store: Any, limit: int = LIMIT) -> list[str]:
    """What the source holds and its records do not, one line each naming record and column."""
    if not callable(getattr(store, "source_rows", None)):
        return []
    try:
        return store_coverage(store, limit)
    except StoreError as exc:  # the copy read it a moment ago: a transient failure, not a gap
        log.warning("the source's cells were not checked: %s", exc)
        return []
