"""``minsky plugins``: what is installed, what it provides, and what failed to load;
installing and removing plugins in minsky's own environment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from minsky.cli.output import echo, emit_json


@click.group()
def plugins() -> None:
    """List, install and uninstall plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def list_plugins(as_json: bool) -> None:
    """Each plugin: name, distribution, version, backends, hooks, and whether it loaded."""
    from minsky.plugins import registry

    reg = registry()
    if as_json:
        backends = {
            name: {
                "description": spec.description,
                "apiVersion": spec.api_version,
                "options": [
                    {
                        "name": o.name,
                        "help": o.help,
                        "configKey": o.config_key,
                        "cliFlag": o.cli_flag,
                        "secret": o.secret,
                    }
                    for o in spec.options
                ],
            }
            for name, spec in sorted(reg.backends.items())
        }
        emit_json(
            {
                "plugins": [
                    {
                        "name": p.name,
                        "distribution": p.distribution,
                        "version": p.version,
                        "status": p.status,
                        "error": p.error,
                        "backends": p.backends,
                        "hooks": p.hooks,
                    }
                    for p in reg.plugins
                ],
                "builtins": [{"name": p.name, "hooks": p.hooks} for p in reg.builtins],
                "backends": backends,
            }
        )
        return
    if not reg.plugins:
        echo("No plugins installed.")
    for p in reg.plugins:
        dist = f"{p.distribution} {p.version}" if p.distribution else "(registered directly)"
        provided = ", ".join(p.backends) or "-"
        line = f"{p.name}\t{dist}\tbackends: {provided}\thooks: {', '.join(p.hooks) or '-'}\t{p.status}"
        if p.error:
            line += f": {p.error}"
        echo(line)
    for p in reg.builtins:
        echo(f"{p.name}\t(built-in, runs last)\thooks: {', '.join(p.hooks)}")


def _pip_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--find-links", "-f", multiple=True, metavar="DIR|URL", help="Look for archives here (pip's)."),
        click.option("--index-url", "-i", metavar="URL", help="Package index to use instead of PyPI (pip's)."),
        click.option("--no-index", is_flag=True, help="Use only --find-links, never an index (offline)."),
        click.option("--upgrade", "-U", is_flag=True, help="Upgrade to the newest version allowed."),
        click.option("--editable", "-e", "editables", multiple=True, metavar="PATH", help="Install a checkout."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _report_backends() -> None:
    from minsky.installer import available_backends

    backends = available_backends()
    echo("Backends now available: " + (", ".join(backends) or "none (see `minsky plugins list`)"))


@plugins.command("install")
@click.argument("names", nargs=-1)
@_pip_options
def install(
    names: tuple[str, ...],
    find_links: tuple[str, ...],
    index_url: str | None,
    no_index: bool,
    upgrade: bool,
    editables: tuple[str, ...],
) -> None:
    """Install plugins into minsky's own environment (works under pipx).

    NAME is a backend's short name (`postgres` means minsky-backend-postgres),
    a distribution name, a path, or any requirement pip accepts.
    """
    from minsky import installer

    pip_options = [f"--find-links={link}" for link in find_links]
    pip_options += [f"--index-url={index_url}"] if index_url else []
    pip_options += ["--no-index"] if no_index else []
    pip_options += ["--upgrade"] if upgrade else []
    for path in editables:
        pip_options += ["--editable", path]
    installer.install(names, pip_options, allow_empty=bool(editables))
    _report_backends()


@plugins.command("uninstall")
@click.argument("names", nargs=-1, required=True)
def uninstall(names: tuple[str, ...]) -> None:
    """Remove plugins from minsky's environment (never minsky itself or its built-in backends)."""
    from minsky import installer

    installer.uninstall(names)
    _report_backends()
