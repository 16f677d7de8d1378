"""Which repository config files the user trusts, as ``direnv allow`` and ``mise trust`` do it.

A repository's ``.minsky/config.toml`` arrives with ``git clone``: until the user trusts it,
it may not choose where sessions are stored or which server is contacted. Trust is recorded
in the user's state dir by real path and SHA-256 of the content, so an edited file (a
``git pull`` that changes it, say) must be trusted again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import filelock

from minsky import paths
from minsky.atomic import ensure_private_dir, write_bytes_atomic
from minsky.errors import ConfigError

LOCK_TIMEOUT = 30.0  # seconds: an edit takes milliseconds, so only a hung process holds it this long


def trust_file() -> Path:
    return paths.state_dir() / "trusted-configs.json"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(path: Path) -> str:
    return os.path.realpath(path)


def _read() -> dict[str, str]:
    path = trust_file()
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read the list of trusted config files {path}: {exc}",
            hint=f"remove {path} and trust your repository files again",
        ) from None
    trusted = data.get("trusted") if isinstance(data, dict) else None
    if not isinstance(trusted, dict):
        raise ConfigError(f"{path} is not a list of trusted config files", hint=f"remove {path}")
    return {str(k): str(v) for k, v in trusted.items()}


def _write(trusted: dict[str, str]) -> None:
    text = json.dumps({"version": 1, "trusted": dict(sorted(trusted.items()))}, indent=2) + "\n"
    write_bytes_atomic(trust_file(), text.encode("utf-8"))


@contextlib.contextmanager
def _editing() -> Iterator[dict[str, str]]:
    """Read-modify-write of the list under its lock file: two `config trust` runs at once
    (two terminals, a script) must both land, not the last writer's alone."""
    path = trust_file()
    ensure_private_dir(path.parent)
    lock = filelock.FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT, mode=0o600)
    try:
        with lock:
            trusted = _read()
            yield trusted
            _write(trusted)
    except filelock.Timeout:
        raise ConfigError(
            f"another minsky process has held {lock.lock_file} for {LOCK_TIMEOUT:.0f} s",
            hint="wait for it to finish, or find it with `lsof` and stop it",
        ) from None


def is_trusted(path: Path, content: bytes) -> bool:
    return _read().get(_key(path)) == digest(content)


def trust(path: Path, content: bytes) -> None:
    with _editing() as trusted:
        trusted[_key(path)] = digest(content)


def untrust(path: Path) -> bool:
    with _editing() as trusted:
        return trusted.pop(_key(path), None) is not None
