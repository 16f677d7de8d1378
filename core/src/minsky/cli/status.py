"""``minsky sessiondb migrate status``: where sessions live, and advice."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from minsky.backend import LockableStore, MovedMark
from minsky.backup import last_backup
from minsky.cli.app import App
from minsky.cli.output import echo, emit_json
from minsky.config import exposed_secret_files
from minsky.errors import MinskyError
from minsky.measured import (
    JSON_ADVICE_BYTES,
    JSON_ADVICE_RECORDS,
    MEASURED_ON,
    START_SECONDS,
    about,
    migration_seconds,
)
from minsky.recognise import Found, survey


def _json_advice(count: int | None, size: int | None) -> str | None:
    """Past JSON_ADVICE_RECORDS sessions (or bytes), the measured cost of staying and of moving."""
    if (count or 0) <= JSON_ADVICE_RECORDS and (size or 0) <= JSON_ADVICE_BYTES:
        return None
    text = (
        f"the JSON store holds {count if count is not None else 'an unknown number of'} sessions "
        f"({(size or 0) / 1e6:.1f} MB); past {JSON_ADVICE_RECORDS:,} sessions or "
        f"{JSON_ADVICE_BYTES / 1e6:.0f} MB every write rewrites the whole file"
    )
    # The measured size nearest this store's on a log scale: 12,000 sessions quote the 10,000 figure.
    near = min(START_SECONDS["json"], key=lambda n: abs(math.log(n) - math.log(max(count or 1, 1))))
    text += (
        f" (session start took {START_SECONDS['json'][near]:.2f} s on a {near:,}-session JSON store, "
        f"{START_SECONDS['sqlite'][near]:.2f} s on SQLite, measured {MEASURED_ON})"
    )
    if count is not None and (estimate := migration_seconds("json", "sqlite", count, verify=True, backup=True)):
        text += f"; moving them to SQLite takes {about(estimate)} (estimated)"
    return text + ": minsky sessiondb migrate to sqlite --backup ./backups --verify --set-default"


def _advice(app: App, backend: str, origin: str, count: int | None, size: int | None) -> list[str]:
    advice = []
    if backend == "json" and (json_advice := _json_advice(count, size)):
        advice.append(json_advice)
    if origin == "repo" and backend in ("json", "sqlite"):
        estimate = migration_seconds(backend, "postgres", count or 0, verify=True, backup=True)
        advice.append(
            f"the repository config {app.config.repo_path} selects a local {backend} file: everyone who "
            "shares it gets a separate store; a team shares one with the postgres backend"
            + (f" (moving these {count} sessions takes {about(estimate)}, estimated)" if count and estimate else "")
        )
    for path in exposed_secret_files(app.config):
        advice.append(f"{path} holds a password and is readable by others: chmod 600 {path}")
    if last_backup() is None:
        advice.append("no backup seen yet: minsky sessiondb migrate to json --backup ./backups --from current")
    return advice


def _moved(store: object) -> MovedMark | None:
    """The mark ``migrate to --set-default`` left in a store it moved away from."""
    if not isinstance(store, LockableStore):
        return None
    try:
        return store.moved()
    except MinskyError:
        return None


def _described_table(store: object, backend: str, count: int | None) -> Found | None:
    """A server store has no file to look at: a backend that knows its table's layout era
    says so with an optional ``layout()`` (see docs/writing-a-backend.md)."""
    layout = getattr(store, "layout", None)
    if not callable(layout):
        return None
    try:
        described = layout()
    except MinskyError:
        return None
    if described is None:
        return None
    name, original = described
    return Found(str(getattr(store, "location", "")), backend, str(name), bool(original), count or 0)


def _original_advice(found: list[Found], backend: str, location: str) -> list[str]:
    """What to run for each store the original left (or that holds repeated names)."""
    advice = []
    for item in found:
        configured = str(item.path) == location
        where = f"{item.path} ({item.sessions} sessions)"
        flag = f"--from {item.backend} --{item.backend}-path {item.path}"
        if item.original and configured and not isinstance(item.path, Path):
            advice.append(
                f"{where} is a table the original Minsky wrote ({item.layout}): minsky reads and writes it "
                "in place and keeps its layout (a first write adds minsky's record columns; the original "
                "still reads every row)"
            )
        elif item.original and configured:
            advice.append(
                f"{where} is a store the original Minsky wrote ({item.layout}): minsky reads and writes it "
                f"in place and keeps its layout; to move it: minsky sessiondb migrate to "
                f"{'sqlite' if item.backend == 'json' else 'postgres'} --backup ./backups --verify --set-default"
            )
        elif item.original:
            advice.append(
                f"{where} is a store the original Minsky left ({item.layout}), not the configured one; "
                f"unless its sessions were moved already: minsky sessiondb migrate to {backend} {flag} "
                "--backup ./backups --verify"
            )
        if item.repeated:
            names = ", ".join(f"{name!r} ({count} copies)" for name, count in list(item.repeated.items())[:5])
            advice.append(
                f"{item.path} holds session names more than once: {names}; a migration stops until you "
                "choose --on-duplicate first|last|rename"
                + (" (or run: minsky sessiondb verify --repair)" if configured else "")
            )
    return advice


def _pending_config_advice(app: App) -> list[str]:
    from minsky.config_import import notice, pending

    return [notice(item) for item in pending(app.cwd)]


def status(app: App, as_json: bool) -> None:
    cfg = app.config
    setting = cfg.setting("sessiondb.backend")
    source = setting.source if setting else "default"
    origin = setting.origin if setting else "default"
    handle = app.store()
    count: int | None = None
    problem = None
    try:
        count = handle.store.count()
    except MinskyError as exc:
        problem = str(exc)
    size = handle.store.size_bytes()
    moved = _moved(handle.store)
    backup = last_backup()
    installed = sorted(app.registry.backends)
    configured = Path(handle.store.location) if handle.spec.name in ("json", "sqlite") else None
    found = survey(configured)
    if configured is None:
        table = _described_table(handle.store, handle.spec.name, count)
        found = ([table] if table is not None else []) + found
    advice = _pending_config_advice(app) + _original_advice(found, handle.spec.name, handle.store.location)
    advice += _advice(app, handle.spec.name, origin, count, size)
    payload: dict[str, Any] = {
        "backend": handle.spec.name,
        "source": source,
        "location": handle.store.location,
        "symlinks": [{"link": link, "target": target} for link, target in handle.links.items()],
        "exists": handle.store.exists(),
        "sessions": count,
        "sizeBytes": size,
        "problem": problem,
        "lastBackup": backup,
        "installedBackends": installed,
        "originalStores": [item.to_json() for item in found],
        "recommendations": advice,
        "movedTo": None
        if moved is None
        else {"backend": moved.backend, "location": moved.location, "at": moved.moved_at, "use": moved.command},
    }
    if as_json:
        emit_json(payload)
        return
    echo(f"Backend:   {handle.spec.name} (from {source})")
    echo(f"Location:  {handle.store.location}" + ("" if handle.store.exists() else " (not created yet)"))
    if moved is not None:
        echo(f"Moved:     to {moved.backend} ({moved.location}) at {moved.moved_at}; use: {moved.command}")
    for link, target in handle.links.items():
        echo(f"Symlink:   {link} -> {target} (minsky writes the target; the link stays)")
    echo(f"Sessions:  {count if count is not None else 'unreadable: ' + str(problem)}")
    if size is not None:
        echo(f"Size:      {size:,} bytes")
    echo(f"Backup:    {backup['path'] + ' (' + backup['createdAt'] + ')' if backup else 'none seen'}")
    echo(f"Installed: {', '.join(installed)}")
    for item in found:
        echo(f"Found:     {item.path}: {item.backend}, {item.layout}, {item.sessions} sessions")
    for line in advice:
        echo(f"Advice:    {line}")
