"""``--set-default``: make a migration's target the configured backend."""

from __future__ import annotations

import click

from minsky import config_file
from minsky.cli.app import App
from minsky.stores import StoreHandle


def make_default(app: App, target: StoreHandle, *, quiet: bool) -> None:
    """Write the backend (and its location) into the file that chose the old one."""
    cfg = app.config
    setting = cfg.setting("sessiondb.backend")
    path = setting.path if setting is not None and setting.path is not None else cfg.global_path
    old = cfg.backend
    config_file.set_value(path, "sessiondb.backend", target.spec.name)
    for opt in target.spec.options:
        value = target.options.get(opt.name)
        if opt.location and opt.config_key and value is not None and not opt.secret:
            config_file.set_value(path, opt.config_key, str(value))
    if quiet:
        return
    scope = "--repo " if path == cfg.repo_path else ""
    click.echo(f"Set sessiondb.backend = {target.spec.name} in {path}")
    click.echo(f"To revert: minsky config set {scope}sessiondb.backend {old}")
    if setting is not None and setting.origin == "env":
        click.echo(f"Note: {setting.source} still overrides the file while it is set.", err=True)
