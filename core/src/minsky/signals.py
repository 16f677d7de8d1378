"""SIGTERM and SIGHUP end minsky the way Ctrl-C does: the signal becomes a
``KeyboardInterrupt`` in the main thread, so every ``with`` block unwinds (temp files,
backup temps and staged databases are removed, transactions roll back), one line
is printed and the exit code is 128 + the signal number (130, 143, 129)."""

from __future__ import annotations

import signal
from types import FrameType

_NAMES = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hung up"}


class Terminated(KeyboardInterrupt):
    """A termination signal other than SIGINT, unwound as Ctrl-C is."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise(signum: int, _frame: FrameType | None) -> None:
    # Further signals are ignored while unwinding, so cleanup itself is not cut short.
    for other in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, signal.SIG_IGN)
    raise Terminated(signum)


def interrupt_on_termination() -> None:
    """Install the handlers (main thread, once, by the CLI's entry point)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise)


def interrupted_exit_code(exc: KeyboardInterrupt) -> tuple[int, str]:
    signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
    return 128 + signum, _NAMES.get(signal.Signals(signum), "interrupted")
