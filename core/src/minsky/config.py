"""Configuration: defaults < global file < repo file < environment < command line.

The global file is ``$XDG_CONFIG_HOME/minsky/config.toml``; the repo file is the
nearest ``.minsky/config.toml`` above the current directory and overrides the
global one key by key. ``${VAR}`` expands inside string values when a value is
used, so an unset variable in a key no command needs breaks nothing.

Environment rule: every known key ``a.bKey.c`` can be set as ``MINSKY_A_B_KEY_C``
(dots and camelCase become ``_``), e.g. ``MINSKY_SESSIONDB_BACKEND``; and
``MINSKY_POSTGRES_URL`` sets ``sessiondb.connectionString``.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from minsky import paths
from minsky.errors import ConfigError
from minsky.redact import MASK, is_secret_key, redact_text, remember_secret

CORE_KEYS: dict[str, str] = {
    "sessiondb.backend": "backend that stores sessions (json, sqlite, postgres, or a plugin's)",
    "sessiondb.baseDir": "base directory; session working directories are <baseDir>/sessions/<name>",
    "sessiondb.dbPath": "path of the JSON or SQLite store (for the configured backend)",
    "sessiondb.connectionString": "PostgreSQL connection string (URI or key=value)",
    "sessiondb.sqliteOptions.journalMode": "SQLite journal mode (WAL by default)",
    "sessiondb.sqliteOptions.synchronous": "SQLite synchronous setting (OFF, NORMAL, FULL, EXTRA)",
    "sessiondb.sqliteOptions.cacheSize": "SQLite cache size (pages, or negative KiB)",
    "sessiondb.sqliteOptions.busyTimeout": "SQLite busy timeout in milliseconds",
}
ENV_ALIASES = {"MINSKY_POSTGRES_URL": "sessiondb.connectionString"}
DEFAULT_BACKEND = "json"
log = logging.getLogger(__name__)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def env_name(key: str) -> str:
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key.replace(".", "_"))
    return "MINSKY_" + snake.upper()


@attrs.frozen
class Setting:
    key: str
    raw: Any
    source: str  # "default" | "global <path>" | "repo <path>" | "env VAR" | "option --flag"
    path: Path | None = None

    @property
    def origin(self) -> str:
        return self.source.split(" ", 1)[0]


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
        return tomllib.loads(text)
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"invalid config file {path}: not UTF-8 (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


@attrs.define
class Config:
    settings: dict[str, Setting]
    global_path: Path
    repo_path: Path | None

    def setting(self, key: str) -> Setting | None:
        return self.settings.get(key)

    def get(self, key: str, default: Any = None) -> Any:
        setting = self.settings.get(key)
        if setting is None:
            return default
        return self._expand(setting)

    def _expand(self, setting: Setting) -> Any:
        if not isinstance(setting.raw, str):
            return setting.raw

        def replace(match: re.Match[str]) -> str:
            var = match.group(1)
            value = os.environ.get(var)
            if value is None:
                raise ConfigError(
                    f"{setting.key} (from {setting.source}) uses ${{{var}}}, "
                    f"but the environment variable {var} is not set"
                )
            return value

        value = _VAR.sub(replace, setting.raw)
        if is_secret_key(setting.key):
            redact_text(value)  # learns any password inside, to mask it wherever it turns up
            if "connectionstring" not in setting.key.lower():
                remember_secret(value)
        return value

    @property
    def backend(self) -> str:
        return str(self.get("sessiondb.backend", DEFAULT_BACKEND))

    @property
    def base_dir(self) -> Path:
        return paths.expand(self.get("sessiondb.baseDir") or paths.state_dir())

    def display(self, key: str) -> str:
        """A value as it may be shown to a user: secrets masked, unset variables named."""
        setting = self.settings[key]
        try:
            value = self._expand(setting)
        except ConfigError:
            return f"{setting.raw} (unset variable)"
        if is_secret_key(key) and isinstance(value, str):
            masked = redact_text(value)
            return masked if masked != value or not value else MASK
        return str(value) if not isinstance(value, bool) else str(value).lower()

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "option") -> Config:
        merged = dict(self.settings)
        for key, value in overrides.items():
            if value is not None:
                merged[key] = Setting(key, value, source)
        return Config(merged, self.global_path, self.repo_path)


def load(
    *, cwd: Path | None = None, environ: Mapping[str, str] | None = None, extra_keys: Iterable[str] = ()
) -> Config:
    environ = os.environ if environ is None else environ
    global_path = paths.global_config_path()
    repo_path = paths.find_repo_config(cwd)
    settings: dict[str, Setting] = {
        "sessiondb.backend": Setting("sessiondb.backend", DEFAULT_BACKEND, "default"),
    }
    for path, origin in ((global_path, "global"), (repo_path, "repo")):
        if path is None:
            continue
        for key, value in flatten(read_toml(path)).items():
            settings[key] = Setting(key, value, f"{origin} {path}", path)
    for key in (*CORE_KEYS, *extra_keys):
        var = env_name(key)
        if var in environ:
            settings[key] = Setting(key, environ[var], f"env {var}")
    for var, key in ENV_ALIASES.items():
        if var in environ and env_name(key) not in environ:
            settings[key] = Setting(key, environ[var], f"env {var}")
    log.debug(
        "config files: global %s, repo %s; backend %s from %s",
        global_path,
        repo_path,
        settings["sessiondb.backend"].raw,
        settings["sessiondb.backend"].source,
    )
    return Config(settings, global_path, repo_path)


def exposed_secret_files(cfg: Config) -> list[Path]:
    """Config files that hold a password or token and are group- or world-readable."""
    exposed = []
    for path in {s.path for s in cfg.settings.values() if s.path is not None}:
        holds_secret = any(
            s.path == path
            and is_secret_key(s.key)
            and isinstance(s.raw, str)
            and "${" not in s.raw
            and redact_text(s.raw) != s.raw
            for s in cfg.settings.values()
        )
        try:
            loose = path.stat().st_mode & 0o077
        except OSError:
            continue
        if holds_secret and loose:
            exposed.append(path)
    return sorted(exposed)
