"""The original Minsky's YAML settings as minsky's TOML: ``minsky config import``.

The original read ``~/.config/minsky/config.yaml`` and the repository's
``.minsky/config.yaml``. Its session-store keys come in a few shapes over its life
(``sessiondb.dbPath``; ``sessiondb.sqlite.path``; ``sessiondb.postgres.connection_string``;
a top-level ``postgres.connection_string``); each maps to one minsky key. Nothing
else in those files is minsky's (tasks, AI providers, GitHub credentials): such keys
are listed by name only, never with their values. A password in a connection string
is replaced by a ``${VAR}`` reference the user is told to set, so the TOML file (and
everything printed) holds no secret. YAML comments cannot all be placed in TOML, so
every one is noted, with its line, at the top of the new file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from minsky import paths
from minsky.config import CORE_KEYS
from minsky.errors import ConfigError
from minsky.redact import redact_text, replace_passwords

YAML_NAME = "config.yaml"
PASSWORD_VAR = "MINSKY_POSTGRES_PASSWORD"  # noqa: S105 (the name of a variable, not a password)

# Original key (dotted) -> minsky key; earlier entries win when a file holds several.
CONNECTION_KEYS = (
    "sessiondb.connectionString",
    "sessiondb.connection_string",
    "sessiondb.postgres.connectionString",
    "sessiondb.postgres.connection_string",
    "postgres.connectionString",
    "postgres.connection_string",
)
PATH_KEYS = {  # by backend: where the original kept that backend's file
    "": ("sessiondb.dbPath", "sessiondb.db_path"),
    "sqlite": ("sessiondb.sqlite.path", "sessiondb.sqlite.dbPath", "sessiondb.sqlite.db_path"),
    "json": ("sessiondb.json.path", "sessiondb.json.filePath", "sessiondb.json.dbPath"),
}
BASE_DIR_KEYS = ("sessiondb.baseDir", "sessiondb.base_dir")
STORE_SUBTREES = ("sessiondb", "postgres")  # the only parts of the file that are read in depth


@attrs.frozen
class Pending:
    """An original config file minsky does not read, because no TOML file stands beside it."""

    yaml: Path
    toml: Path
    scope: str  # "global" | "repo"


def original_files(cwd: Path | None = None) -> list[Pending]:
    """The original's config files for this user and directory, with the TOML file each maps to."""
    found = []
    global_yaml = paths.config_dir() / YAML_NAME
    if global_yaml.is_file():
        found.append(Pending(global_yaml, paths.global_config_path(), "global"))
    here = (cwd or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / ".minsky" / YAML_NAME
        if candidate.is_file() and candidate != global_yaml:
            found.append(Pending(candidate, candidate.with_name("config.toml"), "repo"))
            break
        if (directory / ".minsky" / "config.toml").is_file():
            break  # minsky reads the nearest .minsky/config.toml; a YAML further up is not in play
    return found


def pending(cwd: Path | None = None) -> list[Pending]:
    return [p for p in original_files(cwd) if not p.toml.exists()]


def notice(item: Pending) -> str:
    return (
        f"{item.yaml} holds the original Minsky's settings, which minsky does not read; "
        f"`minsky config import` writes them to {item.toml}"
    )


@attrs.define
class Imported:
    source: Path
    settings: dict[str, Any] = attrs.field(factory=dict)  # minsky key -> value (secret-free)
    comments: list[tuple[int, str]] = attrs.field(factory=list)  # (YAML line, text), redacted
    not_imported: list[str] = attrs.field(factory=list)  # YAML keys, names only
    notes: list[str] = attrs.field(factory=list)  # what the user should know (secret-free)
    secrets: dict[str, str] = attrs.field(factory=dict)  # minsky key -> variable the user must set

    def to_json(self) -> dict[str, Any]:
        return {
            "from": str(self.source),
            "settings": self.settings,
            "comments": len(self.comments),
            "notImported": self.not_imported,
            "notes": self.notes,
            "setEnvironment": sorted(set(self.secrets.values())),
        }


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _comments(text: str) -> list[tuple[int, str]]:
    """YAML comments with their line numbers: a ``#`` at a line's start or after a space, outside quotes."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        quote = ""
        for index, char in enumerate(line):
            if quote:
                quote = "" if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char == "#" and (index == 0 or line[index - 1] in " \t"):
                comment = line[index + 1 :].strip()
                if comment:
                    found.append((number, redact_text(comment)))
                break
    return found


def _load_yaml(path: Path) -> tuple[dict[str, Any], str]:
    import yaml  # only this command needs it

    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"invalid YAML in {path}{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level, found {type(data).__name__}")
    return data, text


def convert(path: Path) -> Imported:
    data, text = _load_yaml(path)
    result = Imported(path, comments=_comments(text))
    flat = _flatten({k: v for k, v in data.items() if k in STORE_SUBTREES})
    result.not_imported = sorted(str(k) for k in data if k not in STORE_SUBTREES)
    used: set[str] = set()

    def first(keys: tuple[str, ...]) -> tuple[str, Any] | None:
        present = [(k, flat[k]) for k in keys if flat.get(k) not in (None, "")]
        used.update(k for k in keys if k in flat)
        if len({str(v) for _, v in present}) > 1:
            result.notes.append(f"{', '.join(k for k, _ in present)} differ; {present[0][0]} was taken")
        return present[0] if present else None

    backend = flat.get("sessiondb.backend")
    used.add("sessiondb.backend")
    if backend not in (None, ""):
        result.settings["sessiondb.backend"] = "json" if backend == "json-file" else str(backend)
    chosen = str(backend or "")
    for kind, keys in PATH_KEYS.items():
        found = first(keys)
        if found is None:
            continue
        if kind in ("", chosen) and "sessiondb.dbPath" not in result.settings:
            result.settings["sessiondb.dbPath"] = str(found[1])
        else:
            result.notes.append(
                f"{found[0]} names the {kind} file {found[1]} for a backend not selected here; "
                f"minsky reaches it with --{kind}-path"
            )
    found = first(BASE_DIR_KEYS)
    if found is not None:
        result.settings["sessiondb.baseDir"] = str(found[1])
    found = first(CONNECTION_KEYS)
    if found is not None:
        value = str(found[1])
        if "${" not in value and redact_text(value) != value:
            value = replace_passwords(value, "${" + PASSWORD_VAR + "}")
            result.secrets["sessiondb.connectionString"] = PASSWORD_VAR
            result.notes.append(
                f"the password in {found[0]} is not copied: set {PASSWORD_VAR} to it "
                f"(as written in {path.name}, percent-encoding included)"
            )
        result.settings["sessiondb.connectionString"] = value
    for key, value in flat.items():  # minsky's own keys, spelled the same (sqliteOptions...)
        if key in CORE_KEYS and key not in result.settings and key not in used and value is not None:
            result.settings[key] = value
            used.add(key)
    result.not_imported[:0] = sorted(k for k in flat if k not in used and k not in result.settings)
    return result


def render(imported: Imported, *, now: datetime | None = None) -> str:
    """The TOML text: a header noting the source, its comments and what was left out; then the settings."""
    import tomlkit

    moment = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"Imported by `minsky config import` from {imported.source} on {moment}."))
    if imported.comments:
        doc.add(tomlkit.comment("Comments in that file (YAML comments have no exact place here):"))
        for number, text in imported.comments:
            doc.add(tomlkit.comment(f"  line {number}: {_one_line(text)}"))
    if imported.not_imported:
        doc.add(tomlkit.comment("Not imported (minsky does not use them): " + ", ".join(imported.not_imported)))
    for note in imported.notes:
        doc.add(tomlkit.comment(_one_line(note)))
    doc.add(tomlkit.nl())
    for dotted, value in imported.settings.items():
        *parents, leaf = dotted.split(".")
        table: Any = doc
        for part in parents:
            if part not in table:
                table[part] = tomlkit.table()
            table = table[part]
        table[leaf] = value
    return tomlkit.dumps(doc)


def _one_line(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]", " ", text)
