"""How a migration or restore reports: a progress line on a terminal, the summary
(text or one JSON object), and the exit code its outcome deserves."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from minsky.cli.output import echo, emit_json, names, printable, warn
from minsky.duplicates import DuplicateError
from minsky.errors import MinskyError, RejectedRecordsError, VerificationError
from minsky.migrate import Report


def note_backup(path: Path, count: int, digest: str) -> None:
    """Bookkeeping after the commit: the ledger ``migrate status`` reads. The target and the
    backup are complete by now, so failing to note them is a warning, never a failure."""
    from minsky.backup import remember_backup

    try:
        remember_backup(path, count, digest)
    except (MinskyError, OSError) as exc:
        warn(f"the backup {path} is complete, but it could not be noted for `migrate status`: {exc}")


def progress_line(enabled: bool, source: Any) -> Callable[[int], None] | None:
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


@contextlib.contextmanager
def reporting_stops(as_json: bool) -> Iterator[None]:
    """A migration stopped before writing (repeated names) still prints its report under --json."""
    try:
        yield
    except DuplicateError as exc:
        if as_json and isinstance(exc.report, Report):
            emit_json(exc.report.to_json() | {"ok": False, "stopped": exc.message})
        raise


def finish(
    report: Report, as_json: bool, verb: str, *, extra: dict[str, Any] | None = None, notes: Sequence[str] = ()
) -> None:
    """Print the report (``extra`` joins the JSON object, ``notes`` follow the text) and raise
    the error its outcome deserves."""
    if as_json:
        emit_json(report.to_json() | (extra or {}))
    else:
        print_report(report, verb)
        for note in notes:
            echo(note)
    if report.verification is not None and not report.verification.ok:
        raise VerificationError(
            f"verification failed: {len(report.verification.missing)} missing, "
            f"{len(report.verification.extra)} extra, {len(report.verification.mismatched)} mismatched "
            f"in {report.target.location}"
            + (f"; not read from the source: {v.uncovered[0]}" if (v := report.verification).uncovered else "")
        )
    if report.rejected:
        first = report.rejected[0]
        raise RejectedRecordsError(
            f"{len(report.rejected)} record(s) rejected, e.g. {first['session']!r}: {first['reason']}",
            hint="the rest were written; fix or drop the rejected records in the source and rerun with "
            "--on-conflict skip",
        )


def print_report(report: Report, verb: str) -> None:
    if sys.stderr.isatty():
        echo("", err=True)
    head = "Dry run, nothing changed:" if report.dry_run else verb
    source, target = report.source, report.target
    echo(f"{head} {source.backend} ({printable(source.location)}) → {target.backend} ({printable(target.location)})")
    written = "would write" if report.dry_run else "written"
    echo(
        f"  read {report.read} = {written} {report.written} + skipped {report.skipped} "
        f"+ rejected {len(report.rejected)}"
    )
    if report.same_store:
        echo("  source and target are the same store: backed up, nothing to copy")
    for item in report.rejected[:10]:
        echo(f"  rejected {printable(repr(item['session']))}: {printable(item['reason'])}")
    if report.conflicts:
        echo(f"  {report.conflicts} already in the target, e.g. {names(report.conflict_examples)}")
    if report.duplicates is not None:
        dup = report.duplicates
        echo(f"  repeated names ({dup.policy}): {dup.scan.describe()}")
        for item in dup.skipped[:10]:
            echo(f"    skipped {printable(repr(item['session']))} copy {item['copy']} (sha256 {item['digest'][:12]}…)")
        for item in dup.renamed[:10]:
            echo(f"    renamed {printable(repr(item['session']))} copy {item['copy']} to {printable(repr(item['as']))}")
    if report.backup:
        echo(f"  backup: {printable(str(report.backup))}")
    if report.verification is not None:
        v = report.verification
        state = "ok" if v.ok else "FAILED"
        echo(f"  verification: {state} ({v.source_count} expected, {v.target_count} in target)")
        for problem in v.uncovered:
            echo(f"    not read from the source: {problem}")
        for label, found in (("missing", v.missing), ("extra", v.extra), ("mismatched", v.mismatched)):
            if found:
                echo(f"    {label}: {names(found, 10)}")
    if report.catch_up is not None:
        c = report.catch_up
        how = f"writers waited {c.locked_seconds:.2f}s" if c.locked else "the source cannot be locked: not waited for"
        echo(f"  changed in the source meanwhile: {c.written} copied, {c.deleted} deleted ({how})")
        if c.marked_moved:
            echo(f"  {printable(report.source.location)} is marked as moved: its writers now refuse")
    elif report.changed_in_source:
        echo(
            f"  {report.changed_in_source} session(s) changed in the source while this ran and are not in the "
            "target: rerun with --on-conflict overwrite (or use --set-default) to bring them"
        )
    if report.seconds and not report.dry_run:
        echo(f"  {report.read / report.seconds:,.0f} records/s")
