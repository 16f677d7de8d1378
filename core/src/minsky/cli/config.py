"""``minsky config …``: read and change configuration, saying where each value comes from."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from minsky import config_file
from minsky.cli.app import get_app
from minsky.cli.config_import import import_config
from minsky.cli.output import emit_json
from minsky.config import CORE_KEYS, Config
from minsky.errors import ConfigError

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
scope_options = [
    click.option("--global", "scope", flag_value="global", default=True, help="The global file (default)."),
    click.option("--repo", "scope", flag_value="repo", help="The repository's .minsky/config.toml."),
]


F = TypeVar("F", bound=Callable[..., Any])


def _with_scope(func: F) -> F:
    for option in reversed(scope_options):
        func = option(func)
    return func


def known_keys() -> dict[str, str]:
    from minsky.plugins import registry

    keys = dict(CORE_KEYS)
    for spec in registry().backends.values():
        for opt in spec.options:
            if opt.config_key:
                keys.setdefault(opt.config_key, f"{spec.name}: {opt.help}")
    return keys


def _target(scope: str, cfg: Config, cwd: Path) -> Path:
    if scope == "global":
        return cfg.global_path
    if cfg.repo_path is not None:
        return cfg.repo_path
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        top = ""
    return Path(top or cwd) / ".minsky" / "config.toml"


def _check_key(key: str) -> None:
    keys = known_keys()
    if key not in keys:
        raise ConfigError(f"unknown config key {key!r}", hint="known keys: " + ", ".join(sorted(keys)))


@click.group()
def config() -> None:
    """Read and change configuration (global file, repo file, environment)."""


@config.command("get")
@click.argument("key")
@click.option("--show-origin", is_flag=True, help="Print where the value comes from first, as git does.")
@json_option
def get(key: str, show_origin: bool, as_json: bool) -> None:
    """Print KEY's value (secrets masked): bare, for `$(minsky config get KEY)`."""
    cfg = get_app().config
    setting = cfg.setting(key)
    if setting is None:
        if as_json:
            emit_json({"key": key, "value": None, "source": None})
            return
        raise ConfigError(f"{key} is not set", hint="see `minsky config show` for the keys that are")
    if as_json:
        emit_json({"key": key, "value": cfg.display(key), "source": setting.source})
    else:
        click.echo(f"{setting.source}\t{cfg.display(key)}" if show_origin else cfg.display(key))


@config.command("set")
@click.argument("key")
@click.argument("value")
@_with_scope
def set_(key: str, value: str, scope: str) -> None:
    """Set KEY to VALUE in the global file (or --repo), keeping its comments."""
    _check_key(key)
    app = get_app()
    path = _target(scope, app.config, app.cwd)
    config_file.set_value(path, key, config_file.parse_value(value))
    click.echo(f"Set {key} in {path}")


@config.command("unset")
@click.argument("key")
@_with_scope
def unset(key: str, scope: str) -> None:
    """Remove KEY from the global file (or --repo)."""
    app = get_app()
    path = _target(scope, app.config, app.cwd)
    if not config_file.unset_value(path, key):
        raise ConfigError(f"{key} is not set in {path}")
    click.echo(f"Unset {key} in {path}")


@config.command("show")
@json_option
def show(as_json: bool) -> None:
    """Every value in effect, secrets masked, with its source."""
    cfg = get_app().config
    rows = [(key, cfg.display(key), cfg.settings[key].source) for key in sorted(cfg.settings)]
    if as_json:
        emit_json(
            {
                "files": {
                    "global": str(cfg.global_path),
                    "repo": str(cfg.repo_path) if cfg.repo_path else None,
                },
                "settings": {key: {"value": value, "source": source} for key, value, source in rows},
            }
        )
        return
    for key, value, source in rows:
        click.echo(f"{key} = {value}\t({source})")


config.add_command(show, "list")
config.add_command(import_config)
