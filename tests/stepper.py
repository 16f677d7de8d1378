"""Run the minsky CLI, stopping at the named steps of a migration's catch-up.

    python tests/stepper.py DIR -- sessiondb migrate to ...

At each step it creates ``DIR/<step>`` and waits until ``DIR/<step>.go`` exists, so a test can
act there (start a session, SIGKILL this process) and then let it go on. The steps, in order:

- ``before-lock``: the unlocked passes are done; the source's write lock is not yet asked for;
- ``delta-copy``: under the lock, a batch of late changes staged in the target's open writer;
- ``after-mark``: the source marked as moved, its lock still held, the config not yet written;
- ``before-config``: just before the config switch is written.

Nothing else is changed: the real CLI runs on real stores.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DIR = Path(sys.argv[1])
LOCKED = False


def pause(step: str) -> None:
    (DIR / step).touch()
    while not (DIR / f"{step}.go").exists():
        time.sleep(0.02)


def patch() -> None:
    from minsky import catchup, hooks, migrate

    source_lock, stage, finish_move = catchup._source_lock, hooks.stage, migrate.finish_move

    class Marking:
        def __init__(self, lock: Any) -> None:
            self.lock = lock

        def mark_moved(self, mark: Any) -> None:
            self.lock.mark_moved(mark)
            pause("after-mark")

    @contextlib.contextmanager
    def locked(store: Any) -> Iterator[Any]:
        global LOCKED
        pause("before-lock")
        with source_lock(store) as lock:
            LOCKED = True
            yield None if lock is None else Marking(lock)

    def staged(store: Any, writer: Any, records: Any) -> None:
        stage(store, writer, records)
        if LOCKED:
            pause("delta-copy")

    def finishing(*args: Any, switch: Any, **kwargs: Any) -> Any:
        if switch is not None:
            apply = switch.apply

            def switching() -> None:
                pause("before-config")
                apply()

            switch = catchup.Switch(switch.mark, switching)
        return finish_move(*args, switch=switch, **kwargs)

    catchup._source_lock = locked  # type: ignore[assignment]
    hooks.stage = staged
    migrate.finish_move = finishing  # type: ignore[assignment]


if __name__ == "__main__":
    patch()
    from minsky.cli import cli

    cli.main(sys.argv[sys.argv.index("--") + 1 :], prog_name="minsky")
