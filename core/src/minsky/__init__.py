"""minsky: session records in a pluggable store, moved between stores without loss.

Plugin authors need only ``from minsky import hookimpl``. The package imports
nothing heavy at start-up; names below load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from minsky.backend import BackendSpec, OptionSpec
    from minsky.hookspecs import hookimpl, hookspec
    from minsky.model import SessionRecord

__version__ = "0.3.14"

_LAZY = {
    "hookimpl": "minsky.hookspecs",
    "hookspec": "minsky.hookspecs",
    "BackendSpec": "minsky.backend",
    "OptionSpec": "minsky.backend",
    "SessionRecord": "minsky.model",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'minsky' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = ["BackendSpec", "OptionSpec", "SessionRecord", "__version__", "hookimpl", "hookspec"]
