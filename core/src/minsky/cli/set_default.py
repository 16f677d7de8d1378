"""``--set-default``: make a store the configured backend so that the next command opens
that same store. Planned and checked before anything is migrated; written after."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from minsky import config as config_mod
from minsky import config_file
from minsky.backend import BackendSpec, MovedMark, OptionSpec
from minsky.catchup import Switch
from minsky.cli.app import App
from minsky.cli.output import echo
from minsky.errors import ConfigError, UsageError
from minsky.redact import redact_text, replace_password
from minsky.stores import StoreHandle, resolve_options

# Which source wins: a file written here takes effect only over what ranks at or below it.
RANK = {"default": 0, "global": 1, "repo": 2, "env": 3, "option": 4}


@attrs.frozen
class DefaultChange:
    """The settings that make a store the default, the file they go into, and what to tell."""

    path: Path
    settings: tuple[tuple[str, str], ...]  # sessiondb.backend first; a password as ${VAR}
    old: str
    repo_scope: bool
    notes: tuple[str, ...] = ()

    @property
    def backend(self) -> str:
        return self.settings[0][1]

    @property
    def writes(self) -> dict[str, str]:
        """The settings besides the backend."""
        return dict(self.settings[1:])

    @property
    def command(self) -> str:
        """What a user (or a writer still on the old store) runs to use the new store."""
        scope = "--repo " if self.repo_scope else ""
        return " && ".join(f"minsky config set {scope}{key} {shlex.quote(value)}" for key, value in self.settings)

    def write(self) -> None:
        for key, value in self.settings:
            config_file.set_value(self.path, key, value)


def password_var(backend: str) -> str:
    return f"MINSKY_{backend.upper()}_PASSWORD"


def identity(spec: BackendSpec) -> list[OptionSpec]:
    """The options that say which store it is: where it lives, how to reach it."""
    return [opt for opt in spec.options if opt.config_key and (opt.location or opt.secret)]


def comparable(opt: OptionSpec, value: Any) -> str | None:
    if value is None:
        return None
    # A relative path names another file from another directory; a symlink, its target.
    return os.path.realpath(os.path.expanduser(str(value))) if opt.location else str(value)


def as_written(opt: OptionSpec, value: Any) -> str:
    """A location is written absolute (the next command may run elsewhere), links kept."""
    return os.path.abspath(os.path.expanduser(str(value))) if opt.location else str(value)  # noqa: PTH100


def _next_options(cfg: config_mod.Config, spec: BackendSpec) -> dict[str, Any]:
    """What the next command would resolve once ``spec`` is the configured backend."""
    chosen = _with_settings(cfg, {"sessiondb.backend": config_mod.Setting("sessiondb.backend", spec.name, "option")})
    return resolve_options(spec, chosen)


def _with_settings(cfg: config_mod.Config, settings: Mapping[str, config_mod.Setting]) -> config_mod.Config:
    return attrs.evolve(cfg, settings={**cfg.settings, **settings})


def plan_default(app: App, target: StoreHandle) -> DefaultChange:
    """What to write so the next command opens ``target``, or a UsageError saying what to set."""
    cfg, spec = app.config, target.spec
    backend_setting = cfg.setting("sessiondb.backend")
    path = backend_setting.path if backend_setting and backend_setting.path else cfg.global_path
    wanted = {opt.config_key: comparable(opt, target.options.get(opt.name)) for opt in identity(spec)}
    now = _next_options(cfg, spec)
    writes: dict[str, str] = {}
    notes: list[str] = []
    for opt in identity(spec):
        key = opt.config_key
        assert key is not None
        holder = cfg.setting(key)
        if wanted[key] is None or comparable(opt, now.get(opt.name)) == wanted[key]:
            if holder is not None and holder.origin == "env" and wanted[key] is not None:
                notes.append(f"{key} comes from {holder.source}: keep it set for the next commands")
            continue
        writes[key] = as_written(opt, target.options[opt.name])
        if holder is not None and holder.origin == "repo" and holder.path is not None:
            path = holder.path  # the repo file's value would win over a global one: replace it there
        if opt.secret:
            writes[key], note = _secret_value(spec.name, str(wanted[key]))
            notes += [note] if note else []
    origin = "repo" if path == cfg.repo_path else "global"
    simulated: dict[str, config_mod.Setting] = {}
    for key, value in {"sessiondb.backend": spec.name, **writes}.items():
        holder = cfg.setting(key)
        if holder is None or RANK.get(holder.origin, 0) <= RANK[origin]:
            written = wanted.get(key, value)  # as the next command expands it, ${VAR} set as asked
            simulated[key] = config_mod.Setting(key, written, f"{origin} {path}", path)
    after = _next_options(_with_settings(cfg, simulated), spec)
    for opt in identity(spec):
        key = opt.config_key
        assert key is not None
        if wanted[key] is not None and comparable(opt, after.get(opt.name)) != wanted[key]:
            holder = cfg.setting(key)
            source = holder.source if holder else "a default"
            raise UsageError(
                f"--set-default would not stick: {key} comes from {source}, which outranks {path}",
                hint=f"unset it there ({source}) or give the same {opt.cli_flag or key}, then rerun",
            )
    settings = (("sessiondb.backend", spec.name), *writes.items())
    return DefaultChange(path, settings, cfg.backend, path == cfg.repo_path, tuple(notes))


def _secret_value(backend: str, value: str) -> tuple[str, str | None]:
    """A connection string to write: its password as ``${VAR}``, never the password itself."""
    var = password_var(backend)
    written, password = replace_password(value, "${" + var + "}")
    if password is None:
        return value, None
    have = os.environ.get(var)
    if have is not None and have != password:
        raise UsageError(
            f"{var} is set, but not to the password in the connection string; "
            "--set-default would write a connection string that reads it",
            hint=f"export {var} with the password as written in the connection string, or unset it",
        )
    if have is None:
        return written, (
            f"the password is not written to the config file: set {var} to it (as written in the "
            f"connection string) before the next minsky command, e.g. in your shell profile"
        )
    return written, None


def switch_for(app: App, target: StoreHandle) -> tuple[Switch, DefaultChange]:
    """The switch a migration applies under the source's lock, and the mark it leaves there.
    Planned (and refused, if it would not stick) before anything moves."""
    change = plan_default(app, target)
    moment = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    mark = MovedMark(target.spec.name, target.store.location, moment, change.command)
    return Switch(mark, change.write), change


def announce(app: App, target: StoreHandle, change: DefaultChange, *, quiet: bool) -> None:
    """After the change is written: the notes, a check of what the next command reads, how to revert."""
    for note in change.notes:
        echo(f"minsky: note: {note}", err=True)
    _check_written(app, target, change)
    if quiet:
        return
    cfg = app.config  # loaded before the change: the values to revert to
    scope = "--repo " if change.repo_scope else ""
    echo(f"Set sessiondb.backend = {change.backend} in {change.path}")
    for key, value in change.writes.items():
        echo(f"Set {key} = {redact_text(str(value))} in {change.path}")
    secret_keys = {opt.config_key for opt in identity(target.spec) if opt.secret}
    revert = [f"minsky config set {scope}sessiondb.backend {change.old}"]
    for key in change.writes:
        before = cfg.setting(key)
        if before is None or before.path != change.path:
            revert.append(f"minsky config unset {scope}{key}")
        elif key not in secret_keys:
            revert.append(f"minsky config set {scope}{key} {shlex.quote(str(before.raw))}")
    echo("To revert: " + " && ".join(revert))
    backend_setting = cfg.setting("sessiondb.backend")
    if backend_setting is not None and backend_setting.origin == "env":
        echo(f"Note: {backend_setting.source} still overrides the file while it is set.", err=True)


def make_default(app: App, target: StoreHandle, change: DefaultChange, *, quiet: bool) -> None:
    """Write a planned change at once (no migration to coordinate with), then announce it."""
    change.write()
    announce(app, target, change, quiet=quiet)


def _check_written(app: App, target: StoreHandle, plan: DefaultChange) -> None:
    """Read the files back as the next command will; say so loudly if they name another store."""
    try:
        after = _next_options(config_mod.load(cwd=app.cwd), target.spec)
    except ConfigError as exc:
        if not plan.notes:  # an unset ${VAR} we already asked the user to set is expected
            echo(f"minsky: warning: the next command will fail: {exc}", err=True)
        return
    for opt in identity(target.spec):
        if comparable(opt, after.get(opt.name)) != comparable(opt, target.options.get(opt.name)):
            echo(f"minsky: warning: the next command will not read {opt.config_key} as written", err=True)
