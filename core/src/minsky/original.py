"""The original Minsky's relational layout, shared by the SQL backends.

Its ``sessions`` table keeps some record keys in columns of their own (text, or
JSON text for objects and booleans). minsky fills those columns so that a client
of the original can still read what minsky writes, and rebuilds records from them
for rows the original wrote; the lossless copy lives in minsky's ``record`` column.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from minsky.codec import compact_bytes, loads, record_to_dict
from minsky.model import SessionRecord

# Columns in the original's order (after ``session``), with the record key each holds.
TEXT_COLUMNS: Final = {
    "repo_name": "repoName",
    "repo_url": "repoUrl",
    "created_at": "createdAt",
    "task_id": "taskId",
    "branch": "branch",
    "pr_branch": "prBranch",
}
JSON_COLUMNS: Final = {
    "pr_approved": "prApproved",
    "pr_state": "prState",
    "github": "github",
    "remote": "remote",
    "pull_request": "pullRequest",
}
COLUMNS: Final = (
    "repo_name",
    "repo_url",
    "created_at",
    "task_id",
    "branch",
    "pr_branch",
    "pr_approved",
    "pr_state",
    "backend_type",
    "github",
    "remote",
    "pull_request",
)
NOT_NULL: Final = frozenset({"repo_name", "repo_url", "created_at"})  # "" when the record has none


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _json(value: Any) -> str | None:
    return None if value is None else compact_bytes(value).decode("utf-8", "surrogatepass")


def project(record: SessionRecord) -> dict[str, Any]:
    """The original's column values for ``record`` (a projection: ``record`` keeps it all)."""
    data = record_to_dict(record)
    values: dict[str, Any] = {}
    for column in COLUMNS:
        if column == "backend_type":
            values[column] = _text(data.get("backendType"))
        elif column in TEXT_COLUMNS:
            text = _text(data.get(TEXT_COLUMNS[column]))
            values[column] = text or ("" if column in NOT_NULL else text)
        else:
            values[column] = _json(data.get(JSON_COLUMNS[column]))
    return values


def rebuild(session: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """A record's JSON object from a row the original wrote (NULL means the key was absent)."""
    data: dict[str, Any] = {"session": session}
    for column, key in (*TEXT_COLUMNS.items(), ("backend_type", "backendType")):
        if values.get(column) is not None:
            data[key] = values[column]
    for column, key in JSON_COLUMNS.items():
        if values.get(column) is not None:
            data[key] = loads(values[column])  # keeps 1e400, -0, NaN as found: the record is then named
    return data
