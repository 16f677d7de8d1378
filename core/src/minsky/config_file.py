"""Editing a config file in place with tomlkit, keeping its comments and layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table

from minsky import trust
from minsky.atomic import write_bytes_atomic
from minsky.errors import ConfigError


def _load(path: Path) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(path.read_text("utf-8")) if path.exists() else tomlkit.document()
    except (tomlkit.exceptions.ParseError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid TOML in {path}: {exc}; not changed") from None


def set_value(path: Path, key: str, value: Any) -> None:
    doc = _load(path)
    *parents, leaf = key.split(".")
    table: Any = doc
    for part in parents:
        if part not in table:
            table[part] = tomlkit.table(is_super_table=True) if table is doc else tomlkit.table()
        table = table[part]
        if not isinstance(table, (Table, dict)):
            raise ConfigError(f"cannot set {key} in {path}: {part} is not a table")
    table[leaf] = value
    _save(path, doc)


def unset_value(path: Path, key: str) -> bool:
    if not path.exists():
        return False
    doc = _load(path)
    *parents, leaf = key.split(".")
    table: Any = doc
    for part in parents:
        if part not in table:
            return False
        table = table[part]
    if leaf not in table:
        return False
    del table[leaf]
    _save(path, doc)
    return True


def _save(path: Path, doc: tomlkit.TOMLDocument) -> None:
    """Write the file (through a symlink, to its target); a trusted file stays trusted,
    since the change is the user's own."""
    try:
        old: bytes | None = path.read_bytes()
    except OSError:
        old = None
    new = tomlkit.dumps(doc).encode("utf-8")
    write_bytes_atomic(path, new)
    if old is not None and trust.is_trusted(path, old):
        trust.trust(path, new)
