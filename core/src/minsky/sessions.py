"""The session operations behind ``minsky session``: plain Python over a ``Store``."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs

from minsky import hooks
from minsky.atomic import ensure_private_dir
from minsky.backend import SessionFilter, Store
from minsky.codec import UnrepresentableError, check
from minsky.errors import MinskyError, StoreError, UsageError
from minsky.filters import normalize_task_id
from minsky.model import MISSING, SessionRecord
from minsky.paths import check_session_dir_name, check_text, session_dir, sessions_root
from minsky.repo import RepoInfo

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """The original's timestamp shape: ``2025-01-20T10:30:00.000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def session_name(name: str | None, task: str | None) -> str:
    if name:
        return name
    if task:
        return f"task-{normalize_task_id(task)}"
    raise UsageError("give a session NAME or --task ID")


def check_arguments(**arguments: str | None) -> None:
    """Every argument is checked as text before anything is created: a Latin-1 byte in a
    shell argument arrives as a lone surrogate, which no store can hold."""
    for key, value in arguments.items():
        if value is not None:
            check_text(value, "session name" if key == "name" else f"--{key}")


def start(
    store: Store,
    base_dir: Path,
    repo: RepoInfo,
    *,
    name: str | None,
    task: str | None,
    branch: str | None,
    clock: Clock = utc_now,
) -> tuple[SessionRecord, Path]:
    check_arguments(name=name, task=task, branch=branch)
    session = session_name(name, task)
    check_session_dir_name(session)
    workdir = session_dir(base_dir, session)
    record = SessionRecord(
        session=session,
        repo_name=repo.name,
        repo_url=repo.url,
        repo_path=repo.path if repo.path is not None else MISSING,
        created_at=iso(clock()),
        task_id=normalize_task_id(task) if task else MISSING,
        branch=branch or session,
        backend_type=repo.backend_type,
    )
    hooks.insert(store, check(record))
    try:
        ensure_private_dir(workdir.parent)
        workdir.mkdir(mode=0o700, exist_ok=True)
    except (OSError, StoreError) as exc:
        hooks.delete(store, session)
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise MinskyError(f"cannot create working directory {workdir}: {reason}") from None
    return record, workdir


def end(store: Store, name: str, *, clock: Clock = utc_now) -> tuple[SessionRecord, bool]:
    """End a session; returns the record and whether it was active until now."""
    was_active = False

    def change(record: SessionRecord) -> SessionRecord:
        nonlocal was_active
        was_active = record.active
        # A record no store can hold exactly is refused by name, never rewritten.
        return check(attrs.evolve(record, ended_at=iso(clock()))) if record.active else record

    return hooks.update(store, name, change), was_active


def end_all(
    store: Store, *, clock: Clock = utc_now, refused: list[UnrepresentableError] | None = None
) -> list[SessionRecord]:
    """End every active session; one that cannot be rewritten exactly is left as it is
    and added to ``refused`` (the rest still end)."""
    names = [r.session for r in hooks.read(store, SessionFilter(active=True))]
    ended = []
    for name in names:
        try:
            record, was_active = end(store, name, clock=clock)
        except UnrepresentableError as exc:
            if refused is None:
                raise
            refused.append(exc)
            continue
        if was_active:
            ended.append(record)
    return ended


@attrs.frozen
class CleanPlan:
    remove: list[SessionRecord]
    kept_active: int
    undated: int


def plan_clean(store: Store, older_than: timedelta, *, include_active: bool, clock: Clock = utc_now) -> CleanPlan:
    cutoff = clock() - older_than
    remove, kept_active, undated = [], 0, 0
    for record in hooks.read(store):
        created = parse_time(record.created_at) or parse_time(record.created)
        if created is None:
            undated += 1
        elif created < cutoff:
            if record.active and not include_active:
                kept_active += 1
            else:
                remove.append(record)
    return CleanPlan(remove, kept_active, undated)


def remove_workdir(base_dir: Path, name: str) -> Path | None:
    """Remove a session's working directory if it is a real directory of its own inside
    ``baseDir``. A symlink in its place (to another session's directory, or anywhere) is
    never followed: only the link itself is removed."""
    try:
        check_session_dir_name(name)
        workdir = sessions_root(base_dir) / name
    except (UsageError, OSError):
        return None
    if workdir.is_symlink():
        workdir.unlink()
        return workdir
    if workdir.is_dir():
        shutil.rmtree(workdir)
        return workdir
    return None


def delete(store: Store, base_dir: Path, name: str) -> bool:
    removed = hooks.delete(store, name)
    if removed:
        remove_workdir(base_dir, name)
    return removed
