"""minsky's PostgreSQL store. psycopg is imported only when a store is opened,
so installing this plugin costs ``minsky --help`` nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from minsky import hookimpl
from minsky.backend import BackendSpec, OptionSpec, Store
from minsky.errors import ConfigError
from minsky_backend_postgres.native import verify  # PostgreSQL's own integrity check, beside core's


def _open(options: Mapping[str, Any]) -> Store:
    conninfo = options.get("connection_string")
    if not conninfo:
        raise ConfigError(
            "no PostgreSQL connection string",
            hint="pass --connection-string, set MINSKY_POSTGRES_URL, "
            "or `minsky config set sessiondb.connectionString ...`",
        )
    from minsky_backend_postgres.store import PostgresStore

    return PostgresStore(str(conninfo), connect_timeout=int(options.get("connect_timeout", 10)))


SPEC = BackendSpec(
    name="postgres",
    description="A PostgreSQL database shared by a team",
    open=_open,
    options=(
        OptionSpec(
            "connection_string",
            "libpq connection string, URI or key=value (sslmode and other parameters pass through)",
            config_key="sessiondb.connectionString",
            cli_flag="--connection-string",
            secret=True,
        ),
        OptionSpec(
            "connect_timeout", "seconds to wait for the server", config_key="sessiondb.connectTimeout", value_type=int
        ),
    ),
)


@hookimpl
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    register(SPEC)


__all__ = ["SPEC", "register_backends", "verify"]
