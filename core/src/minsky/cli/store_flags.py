"""Location flags shared by the commands that name a store: --sqlite-path,
--connection-string, --json-path, and -o for any option a backend declares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from minsky.cli.app import App
from minsky.errors import UsageError
from minsky.stores import StoreHandle


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
            help="A backend option: NAME=VALUE for the target, BACKEND.NAME=VALUE for either side "
            "(`minsky plugins list --json` shows each backend's options).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def flags_from(kwargs: dict[str, Any]) -> dict[str, Any]:
    flags = {
        "--sqlite-path": kwargs.pop("sqlite_path", None),
        "--connection-string": kwargs.pop("connection_string", None),
        "--json-path": kwargs.pop("json_path", None),
    }
    for item in kwargs.pop("extra_options", ()):
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"-o {item!r}: expected NAME=VALUE")
        if name in flags and flags[name] is not None:
            raise UsageError(f"-o {name} is given twice ({flags[name]!r} and {value!r}): give it once")
        flags[name] = value
    return {key: value for key, value in flags.items() if value is not None}


def shown(key: str) -> str:
    """A flag as the user typed it: ``--sqlite-path`` or ``-o sqlite.path``."""
    return key if key.startswith("--") else f"-o {key}"


def split_flags(
    app: App, backend: str, flags: dict[str, Any], *, bare: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Flags as option values for ``backend``, and the flags it does not take.

    ``-o BACKEND.NAME=V`` names the backend; a bare ``-o NAME=V`` goes to the target.
    """
    spec = app.registry.backend(backend)
    mine: dict[str, Any] = {}
    rest = dict(flags)
    for opt in spec.options:
        given = [key for key in (opt.cli_flag, f"{backend}.{opt.name}", opt.name if bare else None) if key in rest]
        if len(given) > 1:
            raise UsageError(
                f"{' and '.join(shown(k) for k in given)} both set {backend}'s {opt.name}: give one",
            )
        if given:
            mine[opt.name] = rest.pop(given[0])
    return mine, rest


def open_flagged(app: App, backend: str, flags: dict[str, Any]) -> StoreHandle:
    """Open a store; a value given by flag that the backend cannot take is a usage error."""
    try:
        return app.store(backend, flags)
    except (ValueError, TypeError) as exc:
        spec = app.registry.backend(backend)
        # Locations are paths and URLs: a value the backend refuses is one of the other options.
        suspects = {n: v for n, v in flags.items() if not ((o := spec.option(n)) and (o.location or o.secret))}
        if not suspects:
            raise
        given = ", ".join(f"{shown(name)}={value}" for name, value in sorted(suspects.items()))
        raise UsageError(f"{given}: not a value {backend} accepts ({exc})") from None


def open_pair(app: App, to: str, source: str | None, flags: dict[str, Any]) -> tuple[StoreHandle, StoreHandle]:
    source_name = app.config.backend if source in (None, "current") else str(source)
    target_flags, rest = split_flags(app, to, flags)
    source_flags, rest = split_flags(app, source_name, rest, bare=False)
    if rest:
        raise UsageError(f"{', '.join(sorted(rest))} does not apply to {to} or {source_name}")
    return open_flagged(app, source_name, source_flags), open_flagged(app, to, target_flags)
