"""One small exception hierarchy. Each error carries its exit code and a message
that is already safe to print (secrets masked); the CLI maps them in one place.

Exit codes (documented in docs/cli.md):
  0 ok · 1 internal error · 2 usage · 3 config · 4 store · 5 connection
  6 verification failed · 7 conflict · 8 locked · 9 not found · 10 plugin
  11 rejected records · 12 refused by a plugin · 13 moved
  130 interrupted (129 SIGHUP, 143 SIGTERM) · 141 output pipe closed
"""

from __future__ import annotations

from typing import ClassVar


class MinskyError(Exception):
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        from minsky.redact import redact_text

        super().__init__(redact_text(message))
        self.hint = redact_text(hint) if hint else None

    @property
    def message(self) -> str:
        return str(self)


class UsageError(MinskyError):
    exit_code = 2


class ConfigError(MinskyError):
    exit_code = 3


class StoreError(MinskyError):
    """The store cannot be read or written: corrupt, unreadable, disk full..."""

    exit_code = 4


class RecordError(StoreError):
    """One record is unusable (no key, wrong shape)."""


class BackendConnectionError(MinskyError):
    exit_code = 5


class VerificationError(MinskyError):
    exit_code = 6


class ConflictError(MinskyError):
    exit_code = 7


class LockedError(StoreError):
    exit_code = 8


class NotFoundError(MinskyError):
    exit_code = 9


class PluginError(MinskyError):
    """An unknown backend, or a plugin that failed to load."""

    exit_code = 10


class RejectedRecordsError(MinskyError):
    exit_code = 11


class PolicyError(MinskyError):
    """A plugin refused the operation (a wrapper's veto): nothing of it was written."""

    exit_code = 12


class MovedError(MinskyError):
    """The store was migrated away (``migrate to --set-default``): its writers refuse."""

    exit_code = 13
