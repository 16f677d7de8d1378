"""The one schema every config file is checked against.

Core's keys are the attrs classes below; each backend's options (``OptionSpec.config_key``)
join them. A file is checked on load with cattrs: a wrong type or an unknown key is a
``ConfigError`` (exit 3) naming the key, the file and what was expected.

Each key also says how far it may be trusted: a *guarded* key chooses where sessions are
stored or which server is contacted, so an untrusted repository file may not set it; a
*secret* key is masked everywhere and is the only kind in which ``${VAR}`` expands.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import attrs
import cattrs

from minsky.backend import BackendSpec
from minsky.errors import ConfigError
from minsky.redact import is_secret_key


def _key(kind: type, help: str, *, guarded: bool = False, secret: bool = False) -> Any:
    return attrs.field(default=None, metadata={"type": kind, "help": help, "guarded": guarded, "secret": secret})


@attrs.frozen
class SqliteOptions:
    # Durability settings are guarded: a cloned repo must not turn the journal off.
    journalMode: str | None = _key(str, "SQLite journal mode (WAL by default)", guarded=True)
    synchronous: str | None = _key(str, "SQLite synchronous setting (OFF, NORMAL, FULL, EXTRA)", guarded=True)
    cacheSize: int | None = _key(int, "SQLite cache size (pages, or negative KiB)")
    busyTimeout: int | None = _key(int, "SQLite busy timeout in milliseconds")


@attrs.frozen
class SessionDb:
    backend: str | None = _key(
        str, "backend that stores sessions (json, sqlite, postgres, or a plugin's)", guarded=True
    )
    baseDir: str | None = _key(
        str, "base directory; session working directories are <baseDir>/sessions/<name>", guarded=True
    )
    dbPath: str | None = _key(str, "path of the JSON or SQLite store (for the configured backend)", guarded=True)
    connectionString: str | None = _key(
        str, "PostgreSQL connection string (URI or key=value)", guarded=True, secret=True
    )
    sqliteOptions: SqliteOptions = attrs.field(factory=SqliteOptions)


@attrs.frozen
class CoreConfig:
    sessiondb: SessionDb = attrs.field(factory=SessionDb)


@attrs.frozen
class KeySpec:
    key: str
    type: type
    help: str
    guarded: bool = False
    secret: bool = False


def _walk(cls: type, prefix: str = "") -> Iterable[KeySpec]:
    for field in attrs.fields(cls):
        meta = field.metadata
        if "type" not in meta:  # a table: its keys are the fields of its attrs class
            yield from _walk(field.default.factory, f"{prefix}{field.name}.")
        else:
            yield KeySpec(f"{prefix}{field.name}", meta["type"], meta["help"], meta["guarded"], meta["secret"])


CORE_KEYS: dict[str, KeySpec] = {spec.key: spec for spec in _walk(CoreConfig)}

_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def type_word(kind: type) -> str:
    return _TYPE_WORDS.get(kind, kind.__name__)


def _found(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "an array"}
    if isinstance(value, Mapping):
        return "a table"
    return names.get(type(value), type(value).__name__)


def _strict(kind: type) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _: Any) -> Any:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float else type(value) is kind
        if not ok:
            raise TypeError(f"expected {type_word(kind)}")
        return value

    return hook


@attrs.frozen
class Schema:
    keys: Mapping[str, KeySpec]

    @classmethod
    def build(cls, backends: Iterable[BackendSpec] = ()) -> Schema:
        """Core's keys plus every backend option read from config; a key both name is
        guarded or secret if either says so."""
        keys = dict(CORE_KEYS)
        for backend in backends:
            for opt in backend.options:
                if not opt.config_key:
                    continue
                old = keys.get(opt.config_key)
                keys[opt.config_key] = KeySpec(
                    opt.config_key,
                    old.type if old else opt.value_type,
                    old.help if old else f"{backend.name}: {opt.help}",
                    guarded=(old is not None and old.guarded) or opt.location or opt.secret,
                    secret=(old is not None and old.secret) or opt.secret,
                )
        return cls(keys)

    def guarded(self, key: str) -> bool:
        spec = self.keys.get(key)
        return spec is None or spec.guarded or spec.secret

    def secret(self, key: str) -> bool:
        spec = self.keys.get(key)
        return (spec is not None and spec.secret) or is_secret_key(key)

    def suggest(self, key: str) -> str | None:
        close = difflib.get_close_matches(key, list(self.keys), n=1, cutoff=0.6)
        return close[0] if close else None

    def unknown(self, key: str, where: str) -> ConfigError:
        near = self.suggest(key)
        hint = f"did you mean {near}?" if near else "known keys: " + ", ".join(sorted(self.keys))
        return ConfigError(f"unknown config key {key!r} in {where}", hint=hint)

    @cached_property
    def _tables(self) -> frozenset[str]:
        return frozenset(".".join(k.split(".")[:i]) for k in self.keys for i in range(1, k.count(".") + 1))

    @cached_property
    def _model(self) -> type:
        """The whole schema as nested attrs classes, for cattrs to structure a file into."""

        def build(prefix: str) -> type:
            fields: dict[str, Any] = {}
            for table in sorted(t for t in self._tables if t.rpartition(".")[0] == prefix.rstrip(".")):
                if table.startswith(prefix) and "." not in table[len(prefix) :]:
                    fields[table[len(prefix) :]] = attrs.field(default=None, type=cast(Any, build(table + ".") | None))
            for key, spec in self.keys.items():
                name = key[len(prefix) :]
                if key.startswith(prefix) and "." not in name:
                    fields[name] = attrs.field(default=None, type=cast(Any, spec.type | None))
            return attrs.make_class(f"Config_{prefix.replace('.', '_')}", fields, frozen=True)

        return build("")

    @cached_property
    def _converter(self) -> cattrs.Converter:
        converter = cattrs.Converter(forbid_extra_keys=True)
        for kind in (str, int, float, bool):
            converter.register_structure_hook(kind, _strict(kind))
        return converter

    def check(self, data: Mapping[str, Any], path: Path) -> None:
        """Raise ``ConfigError`` for the first unknown key or wrong type in ``data`` (read from ``path``)."""
        self._check_keys(data, "", path)
        try:
            self._converter.structure(data, self._model)
        except Exception as exc:  # cattrs groups the errors; name the first one
            messages = cattrs.transform_error(exc, path="")
            key = messages[0].rpartition(" @ ")[2].lstrip(".") if messages else "?"
            kind = self.keys[key].type if key in self.keys else str
            value: Any = data
            for part in key.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            raise ConfigError(
                f"{key} in {path}: expected {type_word(kind)}, found {_found(value)}",
                hint=f"{key}: {self.keys[key].help}" if key in self.keys else None,
            ) from None

    def _check_keys(self, data: Mapping[str, Any], prefix: str, path: Path) -> None:
        for name, value in data.items():
            key = f"{prefix}{name}"
            if key in self._tables:
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{key} in {path}: expected a table ([{key}]), found {_found(value)}")
                self._check_keys(value, key + ".", path)
            elif key not in self.keys:
                raise self.unknown(key, str(path))

    def convert(self, key: str, text: str, where: str) -> Any:
        """A value given as text (environment, ``config set``) as the key's type."""
        if key not in self.keys:
            raise self.unknown(key, where)
        kind = self.keys[key].type
        try:
            if kind is bool:
                lowered = text.strip().lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                return lowered in ("true", "1", "yes")
            return kind(text.strip()) if kind in (int, float) else text
        except ValueError:
            raise ConfigError(f"{key} in {where}: expected {type_word(kind)}, found {text!r}") from None
