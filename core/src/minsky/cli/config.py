"""``minsky config …``: read and change configuration, saying where each value comes from."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from minsky import config_file, paths, trust
from minsky.cli.app import get_app
from minsky.cli.config_import import import_config
from minsky.cli.output import echo, emit_json
from minsky.config import Config, check_variables, holds_plain_secret, read_toml, validate
from minsky.errors import ConfigError
from minsky.schema import Schema

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


def _schema() -> Schema:
    from minsky.plugins import registry

    return Schema.build(registry().backends.values())


def known_keys() -> dict[str, str]:
    return {key: spec.help for key, spec in _schema().keys.items()}


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
        echo(f"{setting.source}\t{cfg.display(key)}" if show_origin else cfg.display(key))


@config.command("set")
@click.argument("key")
@click.argument("value")
@_with_scope
def set_(key: str, value: str, scope: str) -> None:
    """Set KEY to VALUE in the global file (or --repo), keeping its comments.

    VALUE is checked against KEY's type first: an integer key takes an integer, a path stays text."""
    app = get_app()
    path = _target(scope, app.config, app.cwd)
    schema = _schema()
    typed = schema.convert(key, value, "`minsky config set`")
    check_variables(schema, key, typed, "`minsky config set`")
    if scope == "repo" and schema.secret(key) and isinstance(typed, str) and holds_plain_secret(typed):
        echo(
            f"minsky: warning: {path} is likely committed to git, where everyone who clones the "
            f"repository reads it; put the secret in an environment variable and write ${{VAR}} "
            f"instead (e.g. password=${{PGPASSWORD}}), or set it in the global file",
            err=True,
        )
    created = not path.exists()
    config_file.set_value(path, key, typed)
    if scope == "repo" and created:  # a file the user just made with minsky is theirs
        trust.trust(path, path.read_bytes())
    echo(f"Set {key} in {path}")
    if scope == "repo" and schema.guarded(key) and not trust.is_trusted(path, path.read_bytes()):
        echo(f"minsky: note: {path} is not trusted; run `minsky config trust {path}` to use {key}", err=True)


@config.command("unset")
@click.argument("key")
@_with_scope
def unset(key: str, scope: str) -> None:
    """Remove KEY from the global file (or --repo)."""
    app = get_app()
    path = _target(scope, app.config, app.cwd)
    if not config_file.unset_value(path, key):
        raise ConfigError(f"{key} is not set in {path}")
    echo(f"Unset {key} in {path}")


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
                    "repoTrusted": cfg.repo_trusted if cfg.repo_path else None,
                },
                "settings": {key: {"value": value, "source": source} for key, value, source in rows},
            }
        )
        return
    for key, value, source in rows:
        echo(f"{key} = {value}\t({source})")


config.add_command(show, "list")
config.add_command(import_config)


def _repo_file(path: str | None) -> Path:
    """PATH as a repository config file: the file itself, or a directory holding .minsky/config.toml."""
    app = get_app()
    if path is None:
        found = paths.find_repo_config(app.cwd)
        if found is None:
            raise ConfigError(f"no .minsky/config.toml in {app.cwd} or above", hint="name the file: PATH")
        return found
    given = Path(path)
    for candidate in (given, given / ".minsky" / "config.toml", given / "config.toml"):
        if candidate.is_file():
            return candidate.absolute()
    raise ConfigError(f"{path}: no such config file")


@config.command("trust")
@click.argument("path", required=False)
def trust_(path: str | None) -> None:
    """Let a repository's config file (default: the nearest) choose the backend, store and server.

    Trust is recorded with the file's content hash: once the file changes, it must be trusted again."""
    target = _repo_file(path)
    data, content = read_toml(target)
    validate(_schema(), data, target)  # trusting a file that would not load helps no one
    trust.trust(target, content)
    echo(f"Trusted {target} (sha256 {trust.digest(content)[:12]}); trust it again after it changes")


@config.command("untrust")
@click.argument("path", required=False)
def untrust_(path: str | None) -> None:
    """Stop trusting a repository's config file (default: the nearest)."""
    target = _repo_file(path)
    if trust.untrust(target):
        echo(f"No longer trusting {target}")
    else:
        echo(f"{target} was not trusted")
