"""minsky's JSON file store: ``{"sessions": [...], "baseDir": "..."}``, as the original wrote it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from minsky import hookimpl
from minsky.backend import BackendSpec, OptionSpec, Store
from minsky.paths import expand, state_dir


def _open(options: Mapping[str, Any]) -> Store:
    from minsky_backend_json.store import JsonStore

    return JsonStore(
        expand(options["path"]),
        base_dir=str(options.get("base_dir", "")),
        lock_timeout=float(options.get("lock_timeout", 30.0)),
    )


SPEC = BackendSpec(
    name="json",
    description="A single JSON file, the original Minsky format (the default store)",
    open=_open,
    options=(
        OptionSpec(
            "path",
            "path of the JSON store",
            config_key="sessiondb.dbPath",
            cli_flag="--json-path",
            location=True,
            default=lambda: state_dir() / "session-db.json",
        ),
        OptionSpec(
            "base_dir",
            "baseDir written into a new store",
            config_key="sessiondb.baseDir",
            default=lambda: str(state_dir()),
        ),
    ),
)


@hookimpl
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    register(SPEC)


__all__ = ["SPEC", "register_backends"]
