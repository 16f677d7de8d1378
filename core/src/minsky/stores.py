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

if TYPE_CHECKING:
    from minsky.plugins import Registry


@attrs.frozen
class StoreHandle:
    spec: BackendSpec
    store: Store
    options: Mapping[str, Any]


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
    return resolved


def open_store(
    registry: Registry,
    config: Config,
    backend: str | None = None,
    flags: Mapping[str, Any] | None = None,
) -> StoreHandle:
    spec = registry.backend(backend or config.backend)
    options = resolve_options(spec, config, flags)
    store = spec.open(options)
    log.debug("opened the %s store at %s", spec.name, store.location)
    return StoreHandle(spec, store, options)
