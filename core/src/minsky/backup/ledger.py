"""The last-backup ledger: the newest backup this machine made, for ``migrate status``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from minsky.backup.write import encode


def _ledger() -> Path:
    from minsky.paths import state_dir

    return state_dir() / "last-backup.json"


def remember_backup(path: Path, count: int, digest: str) -> None:
    """Note the newest backup, so that ``migrate status`` can show it."""
    from minsky.atomic import write_bytes_atomic

    entry = {
        "path": str(path.resolve()),
        "count": count,
        "storeDigest": digest,
        "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    write_bytes_atomic(_ledger(), encode(entry))


def last_backup() -> dict[str, Any] | None:
    try:
        entry = json.loads(_ledger().read_bytes())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) else None
