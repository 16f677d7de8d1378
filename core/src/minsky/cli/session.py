"""``minsky session …``: everyday work on the configured store."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator

import click

from minsky import hooks, sessions
from minsky import repo as repo_mod
from minsky.backend import SessionFilter
from minsky.cli.app import get_app
from minsky.cli.output import echo, emit_json, names, printable, public_record, record_detail, record_line, warn
from minsky.codec import UnrepresentableError, check, record_problem
from minsky.durations import parse_duration
from minsky.errors import NotFoundError, UsageError
from minsky.model import SessionRecord

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
ENDED_SHOWN = 20  # names `session end --all` prints


@click.group()
def session() -> None:
    """Start, list, end and clean sessions."""


@session.command("start")
@click.argument("name", required=False)
@click.option("--task", "task", help="Task ID, e.g. md#123 (#123 and 123 mean the same).")
@click.option("--repo", "repo", help="Repository path or URL (default: the current git repository).")
@click.option("--branch", help="Branch name (default: the session name).")
@json_option
def start(name: str | None, task: str | None, repo: str | None, branch: str | None, as_json: bool) -> None:
    """Start a session NAME (default: task-<ID>) and create its working directory."""
    app = get_app()
    if not name and not task:
        raise UsageError("give a session NAME or --task ID")
    sessions.check_arguments(name=name, task=task, branch=branch, repo=repo)
    info = repo_mod.describe(repo, app.cwd)
    handle = app.store()
    record, workdir = sessions.start(handle.store, app.config.base_dir, info, name=name, task=task, branch=branch)
    if as_json:
        emit_json({"session": public_record(record), "workdir": str(workdir)})
    else:
        echo(f"Started session {printable(record.session)} in {printable(str(workdir))}")


@session.command("list")
@click.option("--active", is_flag=True, help="Only sessions not yet ended.")
@click.option("--ended", is_flag=True, help="Only ended sessions.")
@click.option("--task", help="Only sessions of this task.")
@click.option("--repo", help="Only sessions of this repository (name, URL or path).")
@click.option("--limit", type=click.IntRange(min=0), help="At most this many sessions.")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip this many first.")
@click.option("--detailed", is_flag=True, help="Every field of every session.")
@json_option
def list_(
    active: bool,
    ended: bool,
    task: str | None,
    repo: str | None,
    limit: int | None,
    offset: int,
    detailed: bool,
    as_json: bool,
) -> None:
    """List sessions."""
    if active and ended:
        raise UsageError("--active and --ended exclude each other")
    where = SessionFilter(
        task_id=task,
        repo=repo,
        active=True if active else (False if ended else None),
        limit=limit,
        offset=offset,
    )
    records = readable(hooks.read(get_app().store().store, where))
    if as_json:
        emit_json({"sessions": [public_record(r) for r in records]})
        return
    shown = 0
    if detailed:
        for record in records:
            echo(record_detail(record) + "\n")
            shown += 1
    else:
        from minsky.cli.table import echo_rows

        shown = echo_rows((record_line(r) for r in records), terminal=sys.stdout.isatty())
    if shown == 0:
        echo("No sessions.", err=True)


def readable(records: Iterable[SessionRecord]) -> Iterator[SessionRecord]:
    """The records a store can hold exactly; any other is named on stderr and skipped,
    so one bad record does not hide the rest (`sessiondb check --repair` moves it aside)."""
    for record in records:
        reason = record_problem(record)
        if reason is None:
            yield record
        else:
            warn(f"skipped session {record.session!r}: {reason}; `minsky sessiondb check --repair` moves it aside")


@session.command("get")
@click.argument("name")
@json_option
def get(name: str, as_json: bool) -> None:
    """Show one session."""
    record = hooks.get(get_app().store().store, name)
    if record is None:
        raise NotFoundError(f"no session named {name!r}")
    check(record)
    if as_json:
        emit_json(public_record(record))
    else:
        echo(record_detail(record))


@session.command("end")
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="End every active session.")
@json_option
def end(name: str | None, all_: bool, as_json: bool) -> None:
    """Mark a session (or --all) as ended; its record and directory stay."""
    if bool(name) == all_:
        raise UsageError("give a session NAME or --all (not both)")
    store = get_app().store().store
    refused: list[UnrepresentableError] = []
    if all_:
        ended = sessions.end_all(store, refused=refused)
        done = [r.session for r in ended]
    else:
        assert name is not None
        record, was_active = sessions.end(store, name)
        done = [record.session] if was_active else []
        if not was_active and not as_json:
            echo(f"Session {printable(name)} had already ended.")
            return
    for problem in refused:
        warn(f"not ended: {problem}")
    if as_json:
        emit_json({"ended": done})
    else:
        # Their names on one line, the first ENDED_SHOWN of them: ending thousands printed one line of 30 KB.
        more = " (--json lists them all)" if len(done) > ENDED_SHOWN else ""
        echo(f"Ended {len(done)} session(s)" + (": " + names(done, ENDED_SHOWN) + more if done else "."))


@session.command("delete")
@click.argument("name")
@json_option
def delete(name: str, as_json: bool) -> None:
    """Delete a session's record and its working directory."""
    app = get_app()
    if not sessions.delete(app.store().store, app.config.base_dir, name):
        raise NotFoundError(f"no session named {name!r}")
    if as_json:
        emit_json({"deleted": [name]})
    else:
        echo(f"Deleted session {printable(name)}")


@session.command("clean")
@click.option("--older-than", "older_than", required=True, help="Age, e.g. 12h, 30d, 2w.")
@click.option("--include-active", is_flag=True, help="Also remove sessions that were never ended.")
@click.option("--dry-run", is_flag=True, help="Show what would be removed; remove nothing.")
@json_option
def clean(older_than: str, include_active: bool, dry_run: bool, as_json: bool) -> None:
    """Remove ended sessions created longer ago than --older-than, with their directories."""
    age = parse_duration(older_than)
    app = get_app()
    store = app.store().store
    plan = sessions.plan_clean(store, age, include_active=include_active)
    removed = []
    for record in plan.remove:
        if dry_run or sessions.delete(store, app.config.base_dir, record.session):
            removed.append(record.session)
    if as_json:
        emit_json({"dryRun": dry_run, "removed": removed, "keptActive": plan.kept_active, "undated": plan.undated})
        return
    verb = "Would remove" if dry_run else "Removed"
    echo(f"{verb} {len(removed)} session(s) older than {printable(older_than)}")
    for name in removed:
        echo(f"  {printable(name)}")
    if plan.kept_active:
        echo(
            f"Kept {plan.kept_active} active session(s) older than {printable(older_than)}; "
            "add --include-active to remove them too."
        )
