"""The hook API: what a plugin implements, with ``@minsky.hookimpl``.

Kept small on purpose (as simonw/llm does): a plugin registers objects through a
callback, and core keeps the registry. Adding an optional parameter to a hook is
compatible (pluggy passes only the arguments an implementation names);
removing or renaming one is breaking and bumps ``HOOK_API_VERSION``.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from minsky.backend import BackendSpec

hookspec = pluggy.HookspecMarker("minsky")
hookimpl = pluggy.HookimplMarker("minsky")


@hookspec
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    """Called once, when plugins load, before any command uses a store.

    :param register: call it once per backend this plugin provides, with a
        ``minsky.backend.BackendSpec``. Its ``open(options)`` is called only when
        a command needs that store, so import heavy drivers there, not at module
        level: ``minsky --help`` must stay fast.
    """
