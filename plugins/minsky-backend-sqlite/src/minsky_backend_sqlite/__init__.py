"""minsky's SQLite store: the original Minsky's ``sessions`` table, plus a lossless record column."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from minsky import hookimpl
from minsky.backend import BackendSpec, OptionSpec, Store
from minsky.paths import expand, state_dir
from minsky_backend_sqlite.native import backup, restore, verify  # the operation hooks SQLite answers natively


def _open(options: Mapping[str, Any]) -> Store:
    from minsky_backend_sqlite.store import SqliteOptions, SqliteStore

    return SqliteStore(
        expand(options["path"]),
        SqliteOptions(
            journal_mode=str(options.get("journal_mode", "WAL")),
            synchronous=str(options.get("synchronous", "NORMAL")),
            cache_size=int(options.get("cache_size", -16000)),
            busy_timeout_ms=int(options.get("busy_timeout", 30000)),
        ),
    )


SPEC = BackendSpec(
    name="sqlite",
    description="A local SQLite database with ACID transactions",
    open=_open,
    options=(
        OptionSpec(
            "path",
            "path of the SQLite database",
            config_key="sessiondb.dbPath",
            cli_flag="--sqlite-path",
            location=True,
            default=lambda: state_dir() / "sessions.db",
        ),
        OptionSpec("journal_mode", "journal mode", config_key="sessiondb.sqliteOptions.journalMode"),
        OptionSpec("synchronous", "synchronous setting", config_key="sessiondb.sqliteOptions.synchronous"),
        OptionSpec("cache_size", "cache size", config_key="sessiondb.sqliteOptions.cacheSize"),
        OptionSpec("busy_timeout", "busy timeout (ms)", config_key="sessiondb.sqliteOptions.busyTimeout"),
    ),
)


@hookimpl
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    register(SPEC)


__all__ = ["SPEC", "backup", "register_backends", "restore", "verify"]
