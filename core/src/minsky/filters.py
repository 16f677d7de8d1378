"""Record filters every backend applies the same way (backends with an index
may push them down, but must agree with ``matches``)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator

from minsky.backend import SessionFilter
from minsky.model import SessionRecord

_BARE_TASK = re.compile(r"^#?(\d+)$")


def normalize_task_id(task: str) -> str:
    """``#123`` and ``123`` name the same task as ``md#123``."""
    text = task.strip()
    bare = _BARE_TASK.match(text)
    return f"md#{bare.group(1)}" if bare else text


def matches(record: SessionRecord, where: SessionFilter) -> bool:
    if where.task_id is not None:
        if not isinstance(record.task_id, str):
            return False
        if normalize_task_id(record.task_id) != normalize_task_id(where.task_id):
            return False
    if where.repo is not None and where.repo not in (record.repo_name, record.repo_url, record.repo_path):
        return False
    return where.active is None or record.active == where.active


def page(records: Iterable[SessionRecord], where: SessionFilter) -> Iterator[SessionRecord]:
    stop = None if where.limit is None else where.offset + where.limit
    return itertools.islice(records, where.offset, stop)
