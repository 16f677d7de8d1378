"""``minsky sessiondb …``: migrate, restore, check and repair, test-connection, init, export, import."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from minsky import hooks
from minsky.backend import OnConflict
from minsky.cli.app import get_app
from minsky.cli.output import echo, emit_json, printable
from minsky.cli.report import finish, note_backup, progress_line, reporting_stops
from minsky.cli.store_flags import flags_from, open_flagged, open_pair, split_flags, target_options
from minsky.duplicates import POLICIES, DuplicateError, OnDuplicate
from minsky.errors import ConflictError, MinskyError, StoreError, UsageError
from minsky.migrate import Endpoint, Report, migrate

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
backup_format_option = click.option(
    "--backup-format",
    type=click.Choice(["json", "native"]),
    default="json",
    show_default=True,
    help="json: portable, restores into any backend; native: the backend's own (SQLite: a .db copy).",
)
on_duplicate_option = click.option(
    "--on-duplicate",
    type=click.Choice(POLICIES),
    default="fail",
    show_default=True,
    help="A name the source holds more than once: fail (write nothing), keep the first or last copy, "
    "or rename the later copies NAME~2, NAME~3.",
)


@click.group()
def sessiondb() -> None:
    """Inspect, check and migrate the session store."""


@sessiondb.group("migrate")
def migrate_group() -> None:
    """Move sessions between backends (status, to)."""


@migrate_group.command("to")
@click.argument("backend")
@click.option("--from", "source", metavar="BACKEND|current", help="Source backend (default: the configured one).")
@target_options
@click.option(
    "--backup",
    "backup_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Save the source to DIR/session-backup-<time>.json first.",
)
@backup_format_option
@click.option("--dry-run", is_flag=True, help="Read and check everything; create and change nothing.")
@click.option("--verify", is_flag=True, help="Re-read the target afterwards and compare digests.")
@click.option(
    "--on-conflict",
    type=click.Choice(["fail", "skip", "overwrite"]),
    default="fail",
    show_default=True,
    help="What to do with sessions the target already holds.",
)
@on_duplicate_option
@click.option(
    "--set-default",
    is_flag=True,
    help="After a verified success, make BACKEND the configured one (late writes copied under the "
    "source's lock; the source is marked as moved).",
)
@json_option
def migrate_to(
    backend: str,
    source: str | None,
    backup_dir: Path | None,
    backup_format: str,
    dry_run: bool,
    verify: bool,
    on_conflict: OnConflict,
    on_duplicate: OnDuplicate,
    set_default: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Copy every session from the current (or --from) backend into BACKEND."""
    app = get_app()
    src, dst = open_pair(app, backend, source, flags_from(kwargs))
    switch = change = None
    if set_default:  # planned before anything moves: a default the next command cannot open is refused
        from minsky.cli.set_default import plan_default, switch_for

        if dry_run:
            plan_default(app, dst)
        else:
            switch, change = switch_for(app, dst)
    with reporting_stops(as_json):
        report = migrate(
            Endpoint(src.spec.name, src.store),
            Endpoint(dst.spec.name, dst.store),
            on_conflict=on_conflict,
            on_duplicate=on_duplicate,
            dry_run=dry_run,
            verify=verify or set_default,
            backup_dir=backup_dir,
            backup_format=backup_format,
            base_dir=str(app.config.base_dir),
            progress=progress_line(not as_json, src.store),
            switch=switch,
        )
    if report.backup:
        note_backup(report.backup, report.read, report.source_digest)
    if change is not None and report.catch_up is None and not dry_run:  # said before the error that stops us
        echo(
            f"minsky: note: sessiondb.backend stays {change.old}: --set-default switches only after a complete, "
            "verified copy",
            err=True,
        )
    finish(report, as_json, "Migrated")
    if change is not None and report.catch_up is not None:
        from minsky.cli.set_default import announce

        announce(app, dst, change, quiet=as_json)


@migrate_group.command("status")
@json_option
def migrate_status(as_json: bool) -> None:
    """The current backend, where that choice came from, its size, and advice."""
    from minsky.cli.status import status

    status(get_app(), as_json)


@sessiondb.command("restore")
@click.option(
    "--backup",
    "backup_path",
    required=True,
    type=click.Path(path_type=Path),
    help="A backup file (minsky's or the original Minsky's), or a directory (the newest backup minsky wrote there).",
)
@click.option("--to", "backend", required=True, help="Backend to restore into.")
@target_options
@click.option("--dry-run", is_flag=True, help="Check the backup and report; change nothing.")
@click.option("--verify", is_flag=True, help="Re-read the target afterwards and compare digests.")
@click.option("--on-conflict", type=click.Choice(["fail", "skip", "overwrite"]), default="fail", show_default=True)
@on_duplicate_option
@json_option
def restore(
    backup_path: Path,
    backend: str,
    dry_run: bool,
    verify: bool,
    on_conflict: OnConflict,
    on_duplicate: OnDuplicate,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Restore a backup into a backend, after checking its count and digest."""
    from minsky.backup import Backup, NotAsSurveyed, resolve_backup

    app = get_app()
    target_flags, rest = split_flags(app, backend, flags_from(kwargs))
    if rest:
        raise UsageError(f"{', '.join(sorted(rest))} does not apply to {backend}")
    chosen = resolve_backup(backup_path)
    source = hooks.restore(chosen.path, backend)  # the JSON backup, or a format a plugin recognises
    try:
        if isinstance(source, Backup):
            chosen.confirm(source)
            if on_duplicate == "fail":  # else the migration applies the chosen rule to repeated names
                source.refuse_repeated()
        dst = open_flagged(app, backend, target_flags)

        def restore_once() -> Report:
            with reporting_stops(as_json):
                return migrate(
                    Endpoint("backup", source),
                    Endpoint(dst.spec.name, dst.store),
                    on_conflict=on_conflict,
                    on_duplicate=on_duplicate,
                    dry_run=dry_run,
                    verify=verify,
                    progress=progress_line(not as_json, source),
                )

        def inspect_in_full() -> None:
            assert isinstance(source, Backup)
            source.prove()
            source.check()
            if on_duplicate == "fail":
                source.refuse_repeated()

        try:
            report = restore_once()
        except (NotAsSurveyed, ConflictError) as exc:
            # Decided on names the survey read and the read then found otherwise (nothing was
            # committed), or a conflict named from them: decided again on the inspected backup.
            # (Repeated names the survey saw made it inspect at once.)
            if not isinstance(source, Backup) or source.proven or isinstance(exc, DuplicateError):
                raise
            inspect_in_full()
            report = restore_once()
        except MinskyError:
            # Stopped before its read checked the backup (a target that cannot be opened): a
            # damaged, changed or repeating backup is still said first, as the inspection said it.
            if isinstance(source, Backup) and not source.proven:
                inspect_in_full()
            raise
        if isinstance(source, Backup):
            source.adopt_digest(report.read, report.source_digest)
    finally:
        close = getattr(source, "close", None)
        if callable(close):
            close()
    if not isinstance(source, Backup):
        finish(report, as_json, "Restored")
        return
    checked = "count and digest match its metadata" if source.meta is not None else "no metadata to check against"
    note = f"  from {printable(source.description)}: {source.size:,} bytes, sha256 {source.sha256[:16]}…, {checked}"
    finish(report, as_json, "Restored", extra={"backupFile": source.to_json()}, notes=[note])


@sessiondb.command("check")
@click.option("--repair", is_flag=True, help="Move what cannot be read into a quarantine file (never deleted).")
@json_option
def check(repair: bool, as_json: bool) -> None:
    """Run the current backend's integrity check and validate every record."""
    from minsky.paths import state_dir

    handle = get_app().store()
    moved_to: Path | None = None
    moved: list[str] = []
    if repair:
        quarantine = getattr(handle.store, "quarantine_unreadable", None)
        if not callable(quarantine):
            raise StoreError(f"the {handle.spec.name} backend cannot repair; nothing was changed")
        moved_to, moved = quarantine(state_dir() / "quarantine")
    report = hooks.verify(handle.store)
    if as_json:
        emit_json(
            {
                "backend": handle.spec.name,
                "location": handle.store.location,
                "ok": report.ok,
                "checked": report.checked,
                "problems": list(report.problems),
                "quarantined": {"file": str(moved_to) if moved_to else None, "entries": moved},
            }
        )
    else:
        if moved_to is not None:
            echo(f"Moved {len(moved)} entr{'y' if len(moved) == 1 else 'ies'} to {printable(str(moved_to))}:")
            for note in moved:
                echo(f"  {printable(note)}")
        state = "ok" if report.ok else "PROBLEMS FOUND"
        echo(f"{handle.spec.name} ({printable(handle.store.location)}): {state}, {report.checked} records checked")
        for problem in report.problems:
            echo(f"  {printable(problem)}")
    if not report.ok:
        raise StoreError(
            f"{handle.store.location}: {len(report.problems)} problem(s) found",
            hint=None if repair else "`minsky sessiondb verify --repair` moves unreadable records aside",
        )


sessiondb.add_command(check, "verify")


@sessiondb.command("test-connection")
@json_option
def test_connection(as_json: bool) -> None:
    """Open the configured store and report how it answers."""
    handle = get_app().store()
    started = time.perf_counter()
    count = handle.store.count()
    latency_ms = (time.perf_counter() - started) * 1000
    describe = getattr(handle.store, "describe", None)
    details: dict[str, Any] = describe() if callable(describe) else {}
    result = {
        "backend": handle.spec.name,
        "location": handle.store.location,
        "ok": True,
        "latencyMs": round(latency_ms, 2),
        "sessions": count,
        **details,
    }
    if as_json:
        emit_json(result)
    else:
        echo(f"{handle.spec.name} ({printable(handle.store.location)}): ok, {count} sessions, {latency_ms:.1f} ms")
        for key, value in details.items():
            echo(f"  {key}: {printable(str(value))}")


@sessiondb.command("init")
@click.option("--backend", required=True, help="Backend to create an empty store in.")
@target_options
@click.option("--set-default", is_flag=True, help="Make it the configured backend.")
@json_option
def init(backend: str, set_default: bool, as_json: bool, **kwargs: Any) -> None:
    """Create an empty store (or bring an existing one's schema up to date)."""
    app = get_app()
    flags, rest = split_flags(app, backend, flags_from(kwargs))
    if rest:
        raise UsageError(f"{', '.join(sorted(rest))} does not apply to {backend}")
    handle = open_flagged(app, backend, flags)
    if set_default:
        from minsky.cli.set_default import plan_default

        plan = plan_default(app, handle)
    existed = handle.store.exists()
    with handle.store.bulk_writer():
        pass  # no records: creates the store, or applies pending schema migrations
    if as_json:
        emit_json({"backend": handle.spec.name, "location": handle.store.location, "created": not existed})
    else:
        state = "already existed; schema up to date" if existed else "created"
        echo(f"{handle.spec.name} store at {printable(handle.store.location)}: {state}")
    if set_default:
        from minsky.cli.set_default import make_default

        make_default(app, handle, plan, quiet=as_json)


@sessiondb.command("export")
@click.option(
    "--output",
    "output_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=True,
    help="Directory for session-backup-<time>.json.",
)
@backup_format_option
@json_option
def export(output_dir: Path, backup_format: str, as_json: bool) -> None:
    """Write the configured store to a backup file (the Minsky JSON format plus metadata)."""

    app = get_app()
    handle = app.store()
    if not handle.store.exists():
        raise StoreError(f"the store {handle.store.location} does not exist: nothing to export")
    made = hooks.backup(
        handle.spec.name,
        handle.store,
        output_dir,
        backup_format=backup_format,
        base_dir=str(app.config.base_dir),
    )
    note_backup(made.path, made.count, made.digest)
    if as_json:
        emit_json({"backup": str(made.path), "count": made.count, "storeDigest": made.digest, "format": made.format})
    else:
        echo(f"Exported {made.count} sessions to {printable(str(made.path))}")


@sessiondb.command("import")
@click.argument("backup_path", type=click.Path(path_type=Path))
@click.option("--on-conflict", type=click.Choice(["fail", "skip", "overwrite"]), default="fail", show_default=True)
@on_duplicate_option
@click.option("--dry-run", is_flag=True)
@json_option
@click.pass_context
def import_(
    ctx: click.Context, backup_path: Path, on_conflict: str, on_duplicate: str, dry_run: bool, as_json: bool
) -> None:
    """Restore a backup (or any Minsky JSON store) into the configured store."""
    ctx.invoke(
        restore,
        backup_path=backup_path,
        backend=get_app().config.backend,
        dry_run=dry_run,
        verify=True,
        on_conflict=on_conflict,
        on_duplicate=on_duplicate,
        as_json=as_json,
    )
