"""``minsky sessiondb …``: status, migrate, restore, check, test-connection."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from minsky.cli.app import App, get_app
from minsky.cli.output import emit_json
from minsky.errors import MinskyError, RejectedRecordsError, StoreError, UsageError, VerificationError
from minsky.migrate import Endpoint, OnConflict, Report, migrate
from minsky.stores import StoreHandle

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")


def target_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The location flags of the built-in backends, and -o for any backend's option."""
    options = [
        click.option("--sqlite-path", type=click.Path(dir_okay=False), help="SQLite database file."),
        click.option("--connection-string", help="PostgreSQL connection string (URI or key=value)."),
        click.option("--json-path", type=click.Path(dir_okay=False), help="JSON store file."),
        click.option(
            "-o",
            "--option",
            "extra_options",
            multiple=True,
            metavar="NAME=VALUE",
            help="Any backend option, by the name `minsky plugins list` shows.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _flags(kwargs: dict[str, Any]) -> dict[str, Any]:
    flags = {
        "--sqlite-path": kwargs.pop("sqlite_path", None),
        "--connection-string": kwargs.pop("connection_string", None),
        "--json-path": kwargs.pop("json_path", None),
    }
    for item in kwargs.pop("extra_options", ()):
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"-o {item!r}: expected NAME=VALUE")
        flags[name] = value
    return {key: value for key, value in flags.items() if value is not None}


def _split_flags(
    app: App, backend: str, flags: dict[str, Any], *, bare: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Flags as option values for ``backend``, and the flags it does not take.

    ``-o BACKEND.NAME=V`` names the backend; a bare ``-o NAME=V`` goes to the target.
    """
    spec = app.registry.backend(backend)
    mine: dict[str, Any] = {}
    rest = dict(flags)
    for opt in spec.options:
        for key in (opt.cli_flag, f"{backend}.{opt.name}", opt.name if bare else None):
            if key and key in rest:
                mine[opt.name] = rest.pop(key)
    return mine, rest


def _open_pair(app: App, to: str, source: str | None, flags: dict[str, Any]) -> tuple[StoreHandle, StoreHandle]:
    source_name = app.config.backend if source in (None, "current") else str(source)
    target_flags, rest = _split_flags(app, to, flags)
    source_flags, rest = _split_flags(app, source_name, rest, bare=False)
    if rest:
        raise UsageError(f"{', '.join(sorted(rest))} does not apply to {to} or {source_name}")
    return app.store(source_name, source_flags), app.store(to, target_flags)


def _progress(enabled: bool, source: Any) -> Callable[[int], None] | None:
    """A progress line on stderr (records/s, ETA) when it is a terminal; nothing otherwise."""
    if not enabled or not sys.stderr.isatty():
        return None
    try:
        total: int | None = source.count()
    except MinskyError:
        total = None
    started = time.perf_counter()

    def show(done: int) -> None:
        elapsed = max(time.perf_counter() - started, 1e-9)
        rate = done / elapsed
        line = f"\r  {done:,}" + (f"/{total:,}" if total else "") + f" records, {rate:,.0f}/s"
        if total and rate > 0 and done < total:
            line += f", ETA {int((total - done) / rate)}s"
        click.echo(line + "   ", err=True, nl=False)

    return show


def _finish(report: Report, as_json: bool, verb: str) -> None:
    if as_json:
        emit_json(report.to_json())
    else:
        _print_report(report, verb)
    if report.verification is not None and not report.verification.ok:
        raise VerificationError(
            f"verification failed: {len(report.verification.missing)} missing, "
            f"{len(report.verification.extra)} extra, {len(report.verification.mismatched)} mismatched "
            f"in {report.target.location}"
        )
    if report.rejected:
        first = report.rejected[0]
        raise RejectedRecordsError(
            f"{len(report.rejected)} record(s) rejected, e.g. {first['session']!r}: {first['reason']}"
        )


def _print_report(report: Report, verb: str) -> None:
    if sys.stderr.isatty():
        click.echo("", err=True)
    head = "Dry run, nothing changed:" if report.dry_run else verb
    click.echo(
        f"{head} {report.source.backend} ({report.source.location}) → "
        f"{report.target.backend} ({report.target.location})"
    )
    written = "would write" if report.dry_run else "written"
    click.echo(
        f"  read {report.read} = {written} {report.written} + skipped {report.skipped} "
        f"+ rejected {len(report.rejected)}"
    )
    if report.same_store:
        click.echo("  source and target are the same store: backed up, nothing to copy")
    for item in report.rejected[:10]:
        click.echo(f"  rejected {item['session']!r}: {item['reason']}")
    if report.conflicts:
        click.echo(f"  {report.conflicts} already in the target, e.g. {', '.join(report.conflict_examples)}")
    if report.backup:
        click.echo(f"  backup: {report.backup}")
    if report.verification is not None:
        v = report.verification
        state = "ok" if v.ok else "FAILED"
        click.echo(f"  verification: {state} ({v.source_count} expected, {v.target_count} in target)")
        for label, names in (("missing", v.missing), ("extra", v.extra), ("mismatched", v.mismatched)):
            if names:
                click.echo(f"    {label}: {', '.join(names[:10])}" + (" …" if len(names) > 10 else ""))
    if report.seconds and not report.dry_run:
        click.echo(f"  {report.read / report.seconds:,.0f} records/s")


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
@click.option("--dry-run", is_flag=True, help="Read and check everything; create and change nothing.")
@click.option("--verify", is_flag=True, help="Re-read the target afterwards and compare digests.")
@click.option(
    "--on-conflict",
    type=click.Choice(["fail", "skip", "overwrite"]),
    default="fail",
    show_default=True,
    help="What to do with sessions the target already holds.",
)
@click.option("--set-default", is_flag=True, help="After a verified success, make BACKEND the configured one.")
@json_option
def migrate_to(
    backend: str,
    source: str | None,
    backup_dir: Path | None,
    dry_run: bool,
    verify: bool,
    on_conflict: OnConflict,
    set_default: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Copy every session from the current (or --from) backend into BACKEND."""
    app = get_app()
    src, dst = _open_pair(app, backend, source, _flags(kwargs))
    report = migrate(
        Endpoint(src.spec.name, src.store),
        Endpoint(dst.spec.name, dst.store),
        on_conflict=on_conflict,
        dry_run=dry_run,
        verify=verify or set_default,
        backup_dir=backup_dir,
        base_dir=str(app.config.base_dir),
        progress=_progress(not as_json, src.store),
    )
    if report.backup:
        from minsky.backup import remember_backup

        remember_backup(report.backup, report.read, report.source_digest)
    _finish(report, as_json, "Migrated")
    if set_default and not dry_run:
        from minsky.cli.set_default import make_default

        make_default(app, dst, quiet=as_json)


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
    help="A backup file, or a directory (its newest backup).",
)
@click.option("--to", "backend", required=True, help="Backend to restore into.")
@target_options
@click.option("--dry-run", is_flag=True, help="Check the backup and report; change nothing.")
@click.option("--verify", is_flag=True, help="Re-read the target afterwards and compare digests.")
@click.option("--on-conflict", type=click.Choice(["fail", "skip", "overwrite"]), default="fail", show_default=True)
@json_option
def restore(
    backup_path: Path,
    backend: str,
    dry_run: bool,
    verify: bool,
    on_conflict: OnConflict,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Restore a backup into a backend, after checking its count and digest."""
    from minsky.backup import BackupFile, check_backup, resolve_backup

    app = get_app()
    path = resolve_backup(backup_path)
    source = BackupFile(path)
    check_backup(path, source.read())
    target_flags, rest = _split_flags(app, backend, _flags(kwargs))
    if rest:
        raise UsageError(f"{', '.join(sorted(rest))} does not apply to {backend}")
    dst = app.store(backend, target_flags)
    report = migrate(
        Endpoint("backup", source),
        Endpoint(dst.spec.name, dst.store),
        on_conflict=on_conflict,
        dry_run=dry_run,
        verify=verify,
        progress=_progress(not as_json, source),
    )
    _finish(report, as_json, "Restored")


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
    report = handle.store.verify()
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
            click.echo(f"Moved {len(moved)} unreadable entr{'y' if len(moved) == 1 else 'ies'} to {moved_to}")
        state = "ok" if report.ok else "PROBLEMS FOUND"
        click.echo(f"{handle.spec.name} ({handle.store.location}): {state}, {report.checked} records checked")
        for problem in report.problems:
            click.echo(f"  {problem}")
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
        click.echo(f"{handle.spec.name} ({handle.store.location}): ok, {count} sessions, {latency_ms:.1f} ms")
        for key, value in details.items():
            click.echo(f"  {key}: {value}")


@sessiondb.command("init")
@click.option("--backend", required=True, help="Backend to create an empty store in.")
@target_options
@click.option("--set-default", is_flag=True, help="Make it the configured backend.")
@json_option
def init(backend: str, set_default: bool, as_json: bool, **kwargs: Any) -> None:
    """Create an empty store (or bring an existing one's schema up to date)."""
    app = get_app()
    flags, rest = _split_flags(app, backend, _flags(kwargs))
    if rest:
        raise UsageError(f"{', '.join(sorted(rest))} does not apply to {backend}")
    handle = app.store(backend, flags)
    existed = handle.store.exists()
    with handle.store.bulk_writer():
        pass  # no records: creates the store, or applies pending schema migrations
    if as_json:
        emit_json({"backend": handle.spec.name, "location": handle.store.location, "created": not existed})
    else:
        state = "already existed; schema up to date" if existed else "created"
        click.echo(f"{handle.spec.name} store at {handle.store.location}: {state}")
    if set_default:
        from minsky.cli.set_default import make_default

        make_default(app, handle, quiet=as_json)


@sessiondb.command("export")
@click.option(
    "--output",
    "output_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=True,
    help="Directory for session-backup-<time>.json.",
)
@json_option
def export(output_dir: Path, as_json: bool) -> None:
    """Write the configured store to a backup file (the Minsky JSON format plus metadata)."""
    from minsky.backup import remember_backup, write_backup

    app = get_app()
    handle = app.store()
    if not handle.store.exists():
        raise StoreError(f"the store {handle.store.location} does not exist: nothing to export")
    path, digest = write_backup(
        output_dir,
        handle.store.read(),
        source_backend=handle.spec.name,
        source_location=handle.store.location,
        base_dir=str(app.config.base_dir),
    )
    remember_backup(path, digest.count, digest.hexdigest)
    if as_json:
        emit_json({"backup": str(path), "count": digest.count, "storeDigest": digest.hexdigest})
    else:
        click.echo(f"Exported {digest.count} sessions to {path}")


@sessiondb.command("import")
@click.argument("backup_path", type=click.Path(path_type=Path))
@click.option("--on-conflict", type=click.Choice(["fail", "skip", "overwrite"]), default="fail", show_default=True)
@click.option("--dry-run", is_flag=True)
@json_option
@click.pass_context
def import_(ctx: click.Context, backup_path: Path, on_conflict: str, dry_run: bool, as_json: bool) -> None:
    """Restore a backup (or any Minsky JSON store) into the configured store."""
    ctx.invoke(
        restore,
        backup_path=backup_path,
        backend=get_app().config.backend,
        dry_run=dry_run,
        verify=True,
        on_conflict=on_conflict,
        as_json=as_json,
    )
