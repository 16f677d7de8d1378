"""Configuration: defaults < global file < repo file < environment < command line.

The global file is ``$XDG_CONFIG_HOME/minsky/config.toml``; the repo file is the
nearest ``.minsky/config.toml`` above the current directory and overrides the
global one key by key. Every file is checked against ``minsky.schema`` on load.

A repo file arrives with ``git clone``: until the user trusts it (``minsky.trust``),
its guarded keys (where sessions live, which server is contacted) and every
``${VAR}`` in it are ignored, with one warning. ``${VAR}`` expands only in secret
keys (connection strings, passwords), when the value is used, and what it expands
to is masked in every output.

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

from minsky import paths, trust
from minsky.errors import ConfigError
from minsky.redact import MASK, looks_like_conninfo, redact_text, remember_secret
from minsky.schema import Schema

CORE_KEYS: dict[str, str] = {key: spec.help for key, spec in Schema.build().keys.items()}
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


def read_toml(path: Path) -> tuple[dict[str, Any], bytes]:
    """The parsed file and the bytes it was parsed from (trust is by their hash)."""
    try:
        content = path.read_bytes()
        return tomllib.loads(content.decode("utf-8")), content
    except FileNotFoundError:
        return {}, b""
    except UnicodeDecodeError as exc:
        raise ConfigError(f"invalid config file {path}: not UTF-8 (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


def check_variables(schema: Schema, key: str, value: Any, where: str) -> None:
    """``${VAR}`` belongs in secret keys only: anywhere else it would put a variable's value
    into file names and plain output."""
    if isinstance(value, str) and _VAR.search(value) and not schema.secret(key):
        raise ConfigError(
            f"{key} in {where}: ${{VAR}} expands only in connection strings and passwords",
            hint=f"write the value of {key} itself",
        )


def validate(schema: Schema, data: Mapping[str, Any], path: Path, *, skip: Iterable[str] = ()) -> None:
    """Everything a file must pass to load: the schema, and ``${VAR}`` only where it expands."""
    schema.check(data, path)
    skipped = set(skip)
    for key, value in flatten(data).items():
        if key not in skipped:
            check_variables(schema, key, value, str(path))


def holds_plain_secret(value: str) -> bool:
    """A password written out, not as ``${VAR}``: what should not go into a committed file."""
    if looks_like_conninfo(value):
        return redact_text(value) != value  # a ${VAR} password is left as it is
    return bool(_VAR.sub("", value).strip())


@attrs.define
class Config:
    settings: dict[str, Setting]
    global_path: Path
    repo_path: Path | None
    schema: Schema = attrs.field(factory=Schema.build)
    repo_trusted: bool = True
    warnings: list[str] = attrs.field(factory=list)

    def setting(self, key: str) -> Setting | None:
        return self.settings.get(key)

    def get(self, key: str, default: Any = None) -> Any:
        setting = self.settings.get(key)
        if setting is None:
            return default
        return self._expand(setting)

    def _expand(self, setting: Setting) -> Any:
        if not isinstance(setting.raw, str) or not self.schema.secret(setting.key):
            return setting.raw

        def replace(match: re.Match[str]) -> str:
            var = match.group(1)
            value = os.environ.get(var)
            if value is None:
                raise ConfigError(
                    f"{setting.key} (from {setting.source}) uses ${{{var}}}, "
                    f"but the environment variable {var} is not set"
                )
            remember_secret(value)  # what came from a variable is masked in every output
            return value

        value = _VAR.sub(replace, setting.raw)
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
        """A value as it may be shown to a user: secrets masked, variables left as written."""
        setting = self.settings[key]
        value = setting.raw
        if isinstance(value, str) and (self.schema.secret(key) or looks_like_conninfo(value)):
            try:
                self._expand(setting)  # learn the secrets, so that the masking below knows them
            except ConfigError:
                return f"{redact_text(value)} (unset variable)"
            masked = redact_text(value)
            return masked if masked != value or not value or _VAR.search(value) else MASK
        return str(value) if not isinstance(value, bool) else str(value).lower()

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "option") -> Config:
        merged = dict(self.settings)
        for key, value in overrides.items():
            if value is not None:
                merged[key] = Setting(key, value, source)
        return attrs.evolve(self, settings=merged)


def _file_settings(
    schema: Schema, path: Path, origin: str, warnings: list[str], *, trusted: bool | None = None
) -> tuple[dict[str, Setting], bool]:
    data, content = read_toml(path)
    flat = flatten(data)
    is_trusted = trusted if trusted is not None else trust.is_trusted(path, content)
    ignored = [] if is_trusted else [k for k, v in flat.items() if schema.guarded(k) or _VAR.search(str(v))]
    validate(schema, data, path, skip=ignored)
    if ignored:
        warnings.append(
            f"{path} is not trusted, so its {', '.join(sorted(ignored))} "
            f"{'is' if len(ignored) == 1 else 'are'} ignored (they choose where sessions are stored or "
            f"which server is contacted); if you trust it, run: minsky config trust {path}"
        )
    source = f"{origin} {path}"
    kept = {k: Setting(k, v, source, path) for k, v in flat.items() if k not in ignored}
    return kept, is_trusted


def load(*, cwd: Path | None = None, environ: Mapping[str, str] | None = None, schema: Schema | None = None) -> Config:
    environ = os.environ if environ is None else environ
    schema = schema or Schema.build()
    global_path = paths.global_config_path()
    repo_path = paths.find_repo_config(cwd)
    settings: dict[str, Setting] = {
        "sessiondb.backend": Setting("sessiondb.backend", DEFAULT_BACKEND, "default"),
    }
    warnings: list[str] = []
    # The global file and the environment are the user's own: always trusted.
    settings.update(_file_settings(schema, global_path, "global", warnings, trusted=True)[0])
    repo_trusted = True
    if repo_path is not None:
        repo_settings, repo_trusted = _file_settings(schema, repo_path, "repo", warnings)
        settings.update(repo_settings)
    for key in schema.keys:
        var = env_name(key)
        if var in environ:
            settings[key] = Setting(key, schema.convert(key, environ[var], f"${var}"), f"env {var}")
    for var, key in ENV_ALIASES.items():
        if var in environ and env_name(key) not in environ:
            settings[key] = Setting(key, environ[var], f"env {var}")
    log.debug(
        "config files: global %s, repo %s (%s); backend %s from %s",
        global_path,
        repo_path,
        "trusted" if repo_trusted else "not trusted",
        settings["sessiondb.backend"].raw,
        settings["sessiondb.backend"].source,
    )
    return Config(settings, global_path, repo_path, schema, repo_trusted, warnings)


def exposed_secret_files(cfg: Config) -> list[Path]:
    """Config files that hold a password or token and are group- or world-readable."""
    exposed = []
    for path in {s.path for s in cfg.settings.values() if s.path is not None}:
        holds_secret = any(
            s.path == path
            and cfg.schema.secret(s.key)
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
