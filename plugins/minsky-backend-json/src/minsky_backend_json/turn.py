"""A migration's turn at the lock file.

filelock polls, so it is not fair: writers that keep taking the lock one after another can
starve a migration that asks for it (its ``--set-default`` step) past its timeout. The
migration first claims ``<store>.lock.wanted`` (its pid inside, an ``flock`` held on it for as
long as it wants or holds the store's lock); writers arriving then give way until the claim
is gone before they queue, so the migration waits for the writers already queued, not for
every later one. A writer whose own wait runs out while the claim is live waits on: the
step it waits for is bounded, and it must not fail because a migration is finishing.

The claim is live only while its ``flock`` is held, which the kernel releases when the
process ends: a claim left by a killed migration (or a reused pid) holds nobody up.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from minsky.atomic import claim_file, claimed

POLL = 0.02


def _wanted(lock: Path) -> Path:
    return Path(f"{lock}.wanted")


@contextlib.contextmanager
def claim(lock: Path) -> Iterator[None]:
    with claim_file(_wanted(lock)):
        yield


def active(lock: Path) -> bool:
    """Whether another process's migration has claimed the lock (and is still running)."""
    return claimed(_wanted(lock))


def give_way(lock: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and active(lock):
        time.sleep(POLL)
