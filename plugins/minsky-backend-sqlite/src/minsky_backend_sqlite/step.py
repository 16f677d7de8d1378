"""A migration's last step, advertised to the store's writers.

While ``migrate to --set-default`` holds the database's write lock (copying late changes,
marking the store moved), it holds an ``flock`` on ``<db>.migrating`` (its pid inside).
A writer whose busy timeout runs out while that claim is live waits on instead of failing:
the step is bounded, and the writer then finds the moved mark and says where to go. The
kernel drops the ``flock`` when the process ends, so a file left by a killed migration
holds nobody up. (The JSON plugin's ``turn`` does the same for its lock file; both use
``minsky.atomic.claim_file``.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from minsky.atomic import claim_file, claimed


def _claim_path(db: Path) -> Path:
    return Path(f"{db}.migrating")


@contextlib.contextmanager
def claim(db: Path) -> Iterator[None]:
    with claim_file(_claim_path(db)):
        yield


def active(db: Path) -> bool:
    """Whether another process's migration is in its last step on this database."""
    return claimed(_claim_path(db))
