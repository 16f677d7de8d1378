"""Opening the store a command works on: backend chosen by config or flag,
options resolved from command line, environment, config and defaults."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from minsky.backend import BackendSpec, Store
from minsky.config import Config
from minsky.paths import expand
from minsky.redact import redact_text, remember_secret

if TYPE_CHECKING:
    from minsky.plugins import Registry


@attrs.frozen
class StoreHandle:
    spec: BackendSpec
    store: Store
    options: Mapping[str, Any]
    links: Mapping[str, str] = attrs.Factory(dict)  # a location given as a symlink -> its target


log = logging.getLogger(__name__)


def resolve_options(spec: BackendSpec, config: Config, flags: Mapping[str, Any] | None = None) -> dict[str, Any]:
    flags = flags or {}
    selected = config.backend == spec.name
    resolved: dict[str, Any] = {}
    for opt in spec.options:
        value = flags.get(opt.name)
        if value is None and opt.env:
            value = os.environ.get(opt.env)
        if value is None and opt.config_key and (selected or not opt.location):
            value = config.get(opt.config_key)
        if value is None and opt.default is not None:
            value = opt.default()
        if value is not None:
            resolved[opt.name] = value
        if opt.secret and isinstance(value, str):
            redact_text(value)  # learn the password inside, however the value is written
            remember_secret(value)  # and mask the value whole, should it be echoed as given
    return resolved


def follow_links(spec: BackendSpec, options: dict[str, Any]) -> dict[str, str]:
    """Point each location given as a symlink at its target, so that the store is written
    beside the target and the link (a dotfiles or synced copy) stays a link."""
    links = {}
    for opt in spec.options:
        value = options.get(opt.name)
        if opt.location and isinstance(value, (str, os.PathLike)):
            path = expand(value)
            if path.is_symlink():
                options[opt.name] = os.path.realpath(path)
                links[str(path)] = options[opt.name]
    return links


def open_store(
    registry: Registry,
    config: Config,
    backend: str | None = None,
    flags: Mapping[str, Any] | None = None,
) -> StoreHandle:
    spec = registry.backend(backend or config.backend)
    options = resolve_options(spec, config, flags)
    opened = dict(options)
    links = follow_links(spec, opened)  # the store opens the target; the handle keeps the link as named
    store = spec.open(opened)
    log.debug("opened the %s store at %s", spec.name, store.location)
    return StoreHandle(spec, store, options, links)
