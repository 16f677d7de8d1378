"""``minsky config import``: the original Minsky's config.yaml files written as minsky's TOML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from minsky.atomic import write_bytes_atomic
from minsky.cli.app import get_app
from minsky.cli.output import echo, emit_json
from minsky.config_import import Pending, convert, original_files, render
from minsky.errors import ConfigError
from minsky.paths import config_dir


@click.command("import")
@click.option(
    "--from",
    "source",
    type=click.Path(dir_okay=False, path_type=Path),
    help="An original config.yaml (default: the global one and the repository's, where found).",
)
@click.option("--dry-run", is_flag=True, help="Print the TOML that would be written; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def import_config(source: Path | None, dry_run: bool, as_json: bool) -> None:
    """Write the original Minsky's config.yaml settings as config.toml beside it (secrets kept out)."""
    cwd = get_app().cwd
    if source is not None:
        if not source.is_file():
            raise ConfigError(f"{source} does not exist or is not a file")
        items = [Pending(source, source.with_name("config.toml"), "file")]
    else:
        items = original_files(cwd)
        if not items:
            raise ConfigError(
                "no config.yaml of the original Minsky found",
                hint=f"looked for {config_dir() / 'config.yaml'} and .minsky/config.yaml from {cwd} upwards; "
                "name one with --from FILE",
            )
    results: list[dict[str, Any]] = []
    for item in items:
        if item.toml.exists() and not dry_run:
            results.append({"from": str(item.yaml), "to": str(item.toml), "written": False, "exists": True})
            continue
        imported = convert(item.yaml)
        text = render(imported)
        if not dry_run:
            write_bytes_atomic(item.toml, text.encode("utf-8"))
        results.append(imported.to_json() | {"to": str(item.toml), "written": not dry_run, "toml": text})
    if as_json:
        emit_json({"dryRun": dry_run, "files": results})
    else:
        for result in results:
            _describe(result, dry_run)
    if not any(r["written"] for r in results) and not dry_run:
        raise ConfigError(
            "nothing imported: " + ", ".join(r["to"] for r in results) + " already exist(s) and minsky reads them",
            hint="see what the import would write with --dry-run, and merge by hand",
        )


def _describe(result: dict[str, Any], dry_run: bool) -> None:
    if result.get("exists"):
        echo(f"Skipped {result['from']}: {result['to']} already exists (not overwritten)")
        return
    if dry_run:
        echo(f"# {result['to']} would hold:")
        echo(result["toml"], nl=False)
        return
    keys = ", ".join(result["settings"]) or "no settings"
    echo(f"Imported {result['from']} → {result['to']}: {keys} ({result['comments']} comments noted)")
    if result["notImported"]:
        echo(f"  not imported (not minsky's): {', '.join(result['notImported'])}")
    for note in result["notes"]:
        echo(f"  note: {note}")
    for var in result["setEnvironment"]:
        echo(f"  before minsky connects: export {var}=...   (the password, kept out of the TOML file)")
