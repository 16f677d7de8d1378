"""A minsky backend that keeps one session per line (JSON Lines).

Everything a plugin needs is here: one hook implementation that registers a
``BackendSpec``. The store itself is imported only when a command opens it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from minsky import hookimpl
from minsky.backend import BackendSpec, OptionSpec, Store
from minsky.paths import expand, state_dir


def _open(options: Mapping[str, Any]) -> Store:
    from minsky_backend_jsonl.store import JsonlStore

    return JsonlStore(expand(options["path"]))


def _default_path() -> Path:
    return state_dir() / "sessions.jsonl"


SPEC = BackendSpec(
    name="jsonl",
    description="JSON Lines: one session per line (example third-party backend)",
    open=_open,
    options=(
        OptionSpec(
            "path", "path of the .jsonl file", config_key="sessiondb.jsonlPath", location=True, default=_default_path
        ),
    ),
    api_version=1,  # the minsky hook API this backend was written for
)


@hookimpl
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    register(SPEC)
