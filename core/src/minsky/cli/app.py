"""What every command needs, built lazily: configuration, plugins, the store."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from minsky import config as config_mod
from minsky.cli.output import echo

if TYPE_CHECKING:
    from minsky.plugins import Registry
    from minsky.stores import StoreHandle


class App:
    def __init__(self, cwd: Path | None = None) -> None:
        self.cwd = cwd or Path.cwd()

    @functools.cached_property
    def config(self) -> config_mod.Config:
        from minsky.config_import import notice, pending
        from minsky.schema import Schema

        cfg = config_mod.load(cwd=self.cwd, schema=Schema.build(self.registry.backends.values()))
        for warning in cfg.warnings:
            echo(f"minsky: warning: {warning}", err=True)
        for item in pending(self.cwd):  # the original's YAML, which minsky does not read
            echo(f"minsky: note: {notice(item)}", err=True)
        for path in config_mod.exposed_secret_files(cfg):
            echo(
                f"minsky: warning: {path} holds a password and is readable by others; run: chmod 600 {path}",
                err=True,
            )
        return cfg

    @property
    def registry(self) -> Registry:
        from minsky.plugins import registry  # loads plugins: only when a command needs them

        return registry()

    def store(self, backend: str | None = None, flags: Mapping[str, Any] | None = None) -> StoreHandle:
        from minsky.stores import open_store

        return open_store(self.registry, self.config, backend, flags)


def get_app() -> App:
    ctx = click.get_current_context()
    root = ctx.find_root()
    if not isinstance(root.obj, App):
        root.obj = App()
    return root.obj
