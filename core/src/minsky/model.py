"""The session record: every field the original Minsky stores, and nothing lost.

Records are immutable (change one with ``attrs.evolve``). Values are carried
exactly as they were read. A field that was absent stays ``MISSING`` (distinct
from ``None``, ``""`` and ``False``), and keys no schema knows yet land in
``extra``, so that a store written by a newer writer survives a round trip.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Final

import attrs


class _Missing(enum.Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing.MISSING
"""An absent key: not written back, unlike ``None`` which is written as ``null``."""

Missing = _Missing


def _field() -> Any:
    return attrs.field(default=MISSING, kw_only=True)


def _extra() -> Any:
    return attrs.field(factory=dict, kw_only=True, repr=False)


@attrs.frozen
class PrState:
    branch_name: str | Missing | None = _field()
    exists: bool | Missing | None = _field()
    commit_hash: str | Missing | None = _field()
    last_checked: str | Missing | None = _field()
    created_at: str | Missing | None = _field()
    merged_at: str | Missing | None = _field()
    extra: dict[str, Any] = _extra()


@attrs.frozen
class PullRequestGithub:
    id: int | Missing | None = _field()
    node_id: str | Missing | None = _field()
    html_url: str | Missing | None = _field()
    author: str | Missing | None = _field()
    assignees: list[Any] | Missing | None = _field()
    reviewers: list[Any] | Missing | None = _field()
    labels: list[Any] | Missing | None = _field()
    milestone: Any = _field()
    extra: dict[str, Any] = _extra()


@attrs.frozen
class PullRequest:
    number: int | Missing | None = _field()
    url: str | Missing | None = _field()
    state: str | Missing | None = _field()  # open | closed | merged | draft
    created_at: str | Missing | None = _field()
    merged_at: str | Missing | None = _field()
    head_branch: str | Missing | None = _field()
    base_branch: str | Missing | None = _field()
    last_synced: str | Missing | None = _field()
    github: PullRequestGithub | Missing | None = _field()
    extra: dict[str, Any] = _extra()


@attrs.frozen
class GithubRepo:
    owner: str | Missing | None = _field()
    repo: str | Missing | None = _field()
    token: str | Missing | None = _field()  # a secret: never printed
    extra: dict[str, Any] = _extra()


@attrs.frozen
class SessionRecord:
    session: str
    repo_name: str | Missing | None = _field()
    repo_url: str | Missing | None = _field()
    repo_path: str | Missing | None = _field()
    created_at: str | Missing | None = _field()
    task_id: str | Missing | None = _field()
    branch: str | Missing | None = _field()
    backend_type: str | Missing | None = _field()  # local | remote | github
    pr_state: PrState | Missing | None = _field()
    pull_request: PullRequest | Missing | None = _field()
    pr_branch: str | Missing | None = _field()
    pr_approved: bool | Missing | None = _field()
    # Legacy fields, still found in older stores.
    name: str | Missing | None = _field()
    workspace_path: str | Missing | None = _field()
    session_path: str | Missing | None = _field()
    created: str | Missing | None = _field()
    github: GithubRepo | Missing | None = _field()
    # minsky's own: when the session was ended (absent while it is active).
    ended_at: str | Missing | None = _field()
    extra: dict[str, Any] = _extra()
    # The codec's memo of this (immutable) record's dict and canonical form: a
    # migration needs both several times per record, and computing them dominates.
    _memo: dict[str, Any] = attrs.field(factory=dict, init=False, eq=False, repr=False, hash=False)

    @property
    def active(self) -> bool:
        return not self.ended_at

    if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any attribute name

        def __getattr__(self, name: str) -> Any:
            # Only reached for a slot that is unset. A record read from a store
            # (``codec.record_from_dict``) starts with ``session`` and its memo alone: a
            # migration needs nothing else, and structuring every field costs more than
            # reading the record. Its first read of any other field structures them all
            # from the memoised dict, exactly as the eager path would have.
            if name in _LAZY_FIELDS:
                from minsky.codec import fill_record, memo_dict  # here: codec imports this module

                try:
                    data = memo_dict(object.__getattribute__(self, "_memo"))
                except AttributeError:
                    data = None
                if data is not None:
                    fill_record(self, data)
                    return object.__getattribute__(self, name)
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}", name=name, obj=self)


_LAZY_FIELDS: Final = frozenset(f.name for f in attrs.fields(SessionRecord)) - {"session", "_memo"}

MODEL_CLASSES: Final = (SessionRecord, PrState, PullRequest, PullRequestGithub, GithubRepo)
