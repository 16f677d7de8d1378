"""``minsky plugins``: what is installed, what it provides, and what failed to load."""

from __future__ import annotations

import click

from minsky.cli.output import emit_json


@click.group()
def plugins() -> None:
    """List installed plugins and their backends."""


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
        click.echo("No plugins installed.")
    for p in reg.plugins:
        dist = f"{p.distribution} {p.version}" if p.distribution else "(registered directly)"
        provided = ", ".join(p.backends) or "-"
        line = f"{p.name}\t{dist}\tbackends: {provided}\thooks: {', '.join(p.hooks) or '-'}\t{p.status}"
        if p.error:
            line += f": {p.error}"
        click.echo(line)
    for p in reg.builtins:
        click.echo(f"{p.name}\t(built-in, runs last)\thooks: {', '.join(p.hooks)}")
