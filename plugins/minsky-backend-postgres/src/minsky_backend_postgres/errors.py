"""Driver errors to one safe line with the guide's remedies. No password ever:
messages pass through minsky's redaction, and hints name user, host and port only."""

from __future__ import annotations

from typing import Any

import psycopg

from minsky.errors import BackendConnectionError, LockedError, MinskyError, RecordError, StoreError


def describe_target(params: dict[str, Any]) -> str:
    user = params.get("user") or "(default user)"
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or "5432"
    return f"{user}@{host}:{port}/{params.get('dbname') or user}"


def translate(exc: BaseException, params: dict[str, Any], doing: str) -> MinskyError:
    where = describe_target(params)
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    psql = f'psql "postgresql://{params.get("user") or "USER"}@{host}:{port}/{params.get("dbname") or "DB"}"'
    text = " ".join(str(exc).split())
    lowered = text.lower()
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        db, user = params.get("dbname") or "DB", params.get("user") or "USER"
        return StoreError(
            f"PostgreSQL {where}: permission denied while {doing}",
            hint=f"GRANT ALL PRIVILEGES ON DATABASE {db} TO {user}; and GRANT ALL ON TABLE sessions TO {user};",
        )
    if isinstance(exc, psycopg.errors.UntranslatableCharacter | psycopg.errors.CharacterNotInRepertoire):
        return RecordError(f"PostgreSQL {where}: a value cannot be stored ({text})")
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return LockedError(
            f"PostgreSQL {where}: the sessions table stayed locked while {doing} (lock_timeout)",
            hint="a migration or another client holds it; see pg_locks",
        )
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        if "role" in lowered and "does not exist" in lowered:
            return BackendConnectionError(
                f"PostgreSQL {where}: authentication failed (no such role)",
                hint=f"check the user name; test with: {psql} -c 'SELECT 1;'",
            )
        if "password authentication failed" in lowered or "no password supplied" in lowered:
            return BackendConnectionError(
                f"PostgreSQL {where}: authentication failed",
                hint=f"check the user and password; test with: {psql} -c 'SELECT 1;'",
            )
        if "does not exist" in lowered and "database" in lowered:
            return BackendConnectionError(
                f"PostgreSQL {where}: database {params.get('dbname')!r} does not exist",
                hint=f"create it: CREATE DATABASE {params.get('dbname')};",
            )
        if "ssl" in lowered:
            return BackendConnectionError(
                f"PostgreSQL {where}: SSL negotiation failed ({text})",
                hint="check sslmode and the server's SSL setup",
            )
        if (
            "refused" in lowered
            or "could not connect" in lowered
            or "timeout" in lowered
            or "translate host" in lowered
        ):
            return BackendConnectionError(
                f"PostgreSQL {where}: cannot connect ({_reason(lowered)})",
                hint=f"is the server running? pg_isready -h {host} -p {port}; then {psql} -c 'SELECT 1;'",
            )
        if doing == "connecting":
            return BackendConnectionError(
                f"PostgreSQL {where}: cannot connect ({text})",
                hint=f"is the server running? pg_isready -h {host} -p {port}; then {psql} -c 'SELECT 1;'",
            )
        return BackendConnectionError(
            f"PostgreSQL {where}: connection lost while {doing}; nothing was committed ({text})",
            hint=f"check the server: pg_isready -h {host} -p {port}",
        )
    return StoreError(f"PostgreSQL {where}: {doing} failed: {text}")


def _reason(lowered: str) -> str:
    for key, reason in (
        ("refused", "connection refused"),
        ("timeout", "timed out"),
        ("translate host", "unknown host"),
    ):
        if key in lowered:
            return reason
    return "unreachable"
