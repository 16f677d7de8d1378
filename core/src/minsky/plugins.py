"""Plugin discovery: entry points in the ``minsky`` group, loaded once and lazily.

Nothing here runs until a command needs a backend, so ``minsky --help`` imports
no plugin. ``MINSKY_LOAD_PLUGINS`` (comma-separated entry-point or distribution
names; empty for none) chooses exactly which plugins load, to isolate one.
A plugin that fails to import, raises while registering, or was built for an
unsupported hook API is recorded with the reason and never breaks the others.
"""

from __future__ import annotations

import functools
import logging
import os
import traceback
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import attrs
import pluggy

from minsky import __version__, hookspecs
from minsky.backend import HOOK_API_VERSION, SUPPORTED_API_VERSIONS, BackendSpec
from minsky.errors import PluginError

ENTRY_POINT_GROUP = "minsky"
log = logging.getLogger(__name__)


@attrs.define
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    status: str = "loaded"  # loaded | failed | refused | built-in
    error: str | None = None
    backends: list[str] = attrs.field(factory=list)
    hooks: list[str] = attrs.field(factory=list)


@attrs.define
class Registry:
    manager: pluggy.PluginManager
    plugins: list[PluginInfo] = attrs.field(factory=list)
    backends: dict[str, BackendSpec] = attrs.field(factory=dict)
    builtins: list[PluginInfo] = attrs.field(factory=list)

    def backend(self, name: str) -> BackendSpec:
        spec = self.backends.get(name)
        if spec is not None:
            return spec
        known = ", ".join(sorted(self.backends)) or "none"
        failed = [p for p in self.plugins if p.status != "loaded"]
        hint = f"installed backends: {known}"
        if failed:
            hint += "; plugins that did not load: " + ", ".join(f"{p.name} ({p.error})" for p in failed)
        hint += f"; install one with: pip install minsky-backend-{name}"
        raise PluginError(f"unknown backend {name!r}", hint=hint)

    def add_plugin(self, plugin: object, info: PluginInfo) -> None:
        """Register a plugin object and collect the backends it provides."""
        try:
            self.manager.register(plugin, name=info.name)
            self.manager.check_pending()
        except Exception as exc:  # a broken plugin must not break the others
            _unregister(self.manager, info.name)
            info.status, info.error = "failed", _one_line(exc)
            self.plugins.append(info)
            return
        info.hooks = _hook_names(self.manager, plugin)
        offered: list[BackendSpec] = []
        for impl in self.manager.hook.register_backends.get_hookimpls():
            if impl.plugin is plugin:
                try:
                    impl.function(register=offered.append)
                except Exception as exc:
                    info.status, info.error = "failed", _one_line(exc)
        for spec in offered:
            if spec.api_version not in SUPPORTED_API_VERSIONS:
                info.status = "refused"
                info.error = (
                    f"backend {spec.name!r} was built for hook API {spec.api_version}; "
                    f"this minsky supports {sorted(SUPPORTED_API_VERSIONS)}"
                )
                continue
            if info.status == "loaded":
                self.backends.setdefault(spec.name, spec)
                info.backends.append(spec.name)
        if info.status != "loaded":
            _unregister(self.manager, info.name)
        log.debug(
            "plugin %s (%s %s): %s %s",
            info.name,
            info.distribution,
            info.version,
            info.status,
            info.error or ", ".join(info.backends),
        )
        self.plugins.append(info)


def _unregister(manager: pluggy.PluginManager, name: str) -> None:
    plugin = manager.get_plugin(name)
    if plugin is not None:
        manager.unregister(plugin)


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _selected(eps: Iterable[EntryPoint]) -> list[EntryPoint]:
    wanted = os.environ.get("MINSKY_LOAD_PLUGINS")
    if wanted is None:
        return list(eps)
    names = {n.strip() for n in wanted.split(",") if n.strip()}
    return [ep for ep in eps if ep.name in names or (ep.dist and ep.dist.name in names)]


def new_registry() -> Registry:
    from minsky.builtin import NAME, CorePlugin

    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    core = CorePlugin(manager)  # core's generic behaviour: registered like any plugin, trylast
    manager.register(core, name=NAME)
    info = PluginInfo(name=NAME, distribution="minsky", version=__version__, status="built-in")
    info.hooks = _hook_names(manager, core)
    return Registry(manager=manager, builtins=[info])


def _hook_names(manager: pluggy.PluginManager, plugin: object) -> list[str]:
    return sorted(h.name for h in manager.get_hookcallers(plugin) or [])


def discover(extra: Iterable[tuple[str, Any]] = ()) -> Registry:
    """Load every selected entry-point plugin (plus ``extra`` objects, for tests)."""
    registry = new_registry()
    for ep in sorted(_selected(entry_points(group=ENTRY_POINT_GROUP)), key=lambda e: e.name):
        info = PluginInfo(
            name=ep.name,
            distribution=ep.dist.name if ep.dist else None,
            version=ep.dist.version if ep.dist else None,
        )
        try:
            plugin = ep.load()
        except Exception as exc:
            info.status, info.error = "failed", _one_line(exc)
            info.error += " (rerun with --debug for the traceback)"
            info.hooks = []
            registry.plugins.append(info)
            _debug_traceback()
            continue
        registry.add_plugin(plugin, info)
    for name, plugin in extra:
        registry.add_plugin(plugin, PluginInfo(name=name, distribution=None, version=None))
    return registry


def _debug_traceback() -> None:
    if os.environ.get("MINSKY_DEBUG"):
        traceback.print_exc()


@functools.cache
def registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    return discover()


__all__ = ["HOOK_API_VERSION", "PluginInfo", "Registry", "discover", "registry"]
