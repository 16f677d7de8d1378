"""Editing a config file in place with tomlkit, keeping its comments and layout."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table

from minsky.atomic import write_bytes_atomic
from minsky.errors import ConfigError


def parse_value(text: str) -> Any:
    """``10000`` → int, ``true`` → bool, ``"x"`` → str; anything else is a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


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
    write_bytes_atomic(path, tomlkit.dumps(doc).encode("utf-8"))


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
    write_bytes_atomic(path, tomlkit.dumps(doc).encode("utf-8"))
    return True
