"""``--set-default``: make a migration's target the configured backend."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from pathlib import Path

import attrs
import click

from minsky import config_file
from minsky.backend import MovedMark
from minsky.catchup import Switch
from minsky.cli.app import App
from minsky.stores import StoreHandle


@attrs.frozen
class DefaultChange:
    """The settings that make ``target`` the default, and the file they go into."""

    path: Path
    settings: tuple[tuple[str, str], ...]
    old: str
    repo_scope: bool

    @property
    def command(self) -> str:
        """What a user (or a writer still on the old store) runs to use the new store."""
        scope = "--repo " if self.repo_scope else ""
        return " && ".join(f"minsky config set {scope}{key} {shlex.quote(value)}" for key, value in self.settings)

    def write(self) -> None:
        for key, value in self.settings:
            config_file.set_value(self.path, key, value)


def plan_default(app: App, target: StoreHandle) -> DefaultChange:
    cfg = app.config
    setting = cfg.setting("sessiondb.backend")
    path = setting.path if setting is not None and setting.path is not None else cfg.global_path
    settings = [("sessiondb.backend", target.spec.name)]
    for opt in target.spec.options:
        value = target.options.get(opt.name)
        if opt.location and opt.config_key and value is not None and not opt.secret:
            settings.append((opt.config_key, str(value)))
    return DefaultChange(path, tuple(settings), cfg.backend, path == cfg.repo_path)


def switch_for(app: App, target: StoreHandle) -> tuple[Switch, DefaultChange]:
    """The switch a migration applies under the source's lock, and the mark it leaves there."""
    change = plan_default(app, target)
    moment = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    mark = MovedMark(target.spec.name, target.store.location, moment, change.command)
    return Switch(mark, change.write), change


def announce(app: App, change: DefaultChange) -> None:
    scope = "--repo " if change.repo_scope else ""
    click.echo(f"Set sessiondb.backend = {change.settings[0][1]} in {change.path}")
    click.echo(f"To revert: minsky config set {scope}sessiondb.backend {change.old}")
    setting = app.config.setting("sessiondb.backend")
    if setting is not None and setting.origin == "env":
        click.echo(f"Note: {setting.source} still overrides the file while it is set.", err=True)


def make_default(app: App, target: StoreHandle, *, quiet: bool) -> None:
    """Write the backend (and its location) into the file that chose the old one."""
    change = plan_default(app, target)
    change.write()
    if not quiet:
        announce(app, change)
