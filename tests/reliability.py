"""Helpers for the crash and concurrency tests: forked workers killed at random moments.

``MINSKY_SOAK`` multiplies every count (``nox -s soak`` sets it to 10).
"""

from __future__ import annotations

import os
import random
import signal
import time
import traceback
from collections.abc import Callable

SCALE = int(os.environ.get("MINSKY_SOAK", "1"))


def scaled(n: int) -> int:
    return n * SCALE


def fork(work: Callable[[], None]) -> int:
    """Run ``work`` in a forked child (modules already imported: it starts at once)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            work()
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    return pid


def kill_after(pid: int, delay: float) -> bool:
    """SIGKILL ``pid`` after ``delay`` seconds unless it ended; True if it was killed."""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
        time.sleep(0.001)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return True


def wait_ok(pid: int) -> None:
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "a worker failed (its traceback is on stderr)"


rng = random.Random(int(os.environ.get("MINSKY_SEED", "20261124")))
