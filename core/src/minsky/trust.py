"""Which repository config files the user trusts, as ``direnv allow`` and ``mise trust`` do it.

A repository's ``.minsky/config.toml`` arrives with ``git clone``: until the user trusts it,
it may not choose where sessions are stored or which server is contacted. Trust is recorded
in the user's state dir by real path and SHA-256 of the content, so an edited file (a
``git pull`` that changes it, say) must be trusted again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from minsky import paths
from minsky.atomic import write_bytes_atomic
from minsky.errors import ConfigError


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


def is_trusted(path: Path, content: bytes) -> bool:
    return _read().get(_key(path)) == digest(content)


def trust(path: Path, content: bytes) -> None:
    trusted = _read()
    trusted[_key(path)] = digest(content)
    _write(trusted)


def untrust(path: Path) -> bool:
    trusted = _read()
    if trusted.pop(_key(path), None) is None:
        return False
    _write(trusted)
    return True
