"""Installing and removing plugins in minsky's own environment, as ``llm install`` does.

pip runs as ``sys.executable -m pip``: the interpreter running minsky, so a plugin lands
beside minsky whether it was installed with pip, into a venv, or with pipx.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from minsky.errors import PluginError, UsageError

CORE = "minsky"
PREFIX = "minsky-backend-"
# A bare project name, optionally with extras and a version specifier: ``postgres``,
# ``postgres[x]>=0.1``. Anything else (a path, a URL, ``name @ url``) goes to pip untouched.
_SHORT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<rest>(\[[^\]]*\])?\s*([<>=!~].*)?)$")


def normalize(name: str) -> str:
    """PEP 503 normalisation: ``Minsky_Backend.X`` and ``minsky-backend-x`` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def expand(requirement: str) -> str:
    """``postgres`` → ``minsky-backend-postgres``; full names, paths and URLs are kept as given."""
    match = _SHORT.match(requirement.strip())
    if match is None or Path(requirement).exists():
        return requirement
    name = match.group("name")
    if normalize(name).startswith(CORE):
        return requirement
    return f"{PREFIX}{name}{match.group('rest')}"


def protected() -> set[str]:
    """Core and what core itself requires (the pre-installed backends): uninstalling breaks minsky."""
    names = {CORE}
    for req in importlib.metadata.requires(CORE) or []:
        if "extra ==" in req:
            continue
        match = _SHORT.match(req.split(";")[0].strip())
        if match:
            names.add(normalize(match.group("name")))
    return names


def _require_pip() -> None:
    if importlib.util.find_spec("pip") is None:
        raise PluginError(
            f"pip is not available to minsky's interpreter ({sys.executable})",
            hint=f"install it there: {sys.executable} -m ensurepip",
        )


def _run_pip(args: Sequence[str]) -> None:
    _require_pip()
    cmd = [sys.executable, "-m", "pip", *args]
    code = subprocess.run(cmd, check=False).returncode
    if code != 0:
        raise PluginError(f"pip {args[0]} failed (exit {code}); nothing else was changed")


def install(requirements: Sequence[str], pip_options: Sequence[str], *, allow_empty: bool = False) -> list[str]:
    """pip-install ``requirements`` (short names expanded) into minsky's environment."""
    if not requirements and not allow_empty:
        raise UsageError("name at least one plugin to install, e.g. `minsky plugins install postgres`")
    expanded = [expand(r) for r in requirements]
    _run_pip(["install", *pip_options, *expanded])
    return expanded


def uninstall(names: Sequence[str]) -> list[str]:
    """pip-uninstall plugins; refuses core and the backends core depends on, before touching anything."""
    if not names:
        raise UsageError("name at least one plugin to uninstall")
    expanded = [expand(n) for n in names]
    keep = protected()
    refused = [n for n in expanded if normalize(n) in keep]
    if refused:
        raise UsageError(
            f"refusing to uninstall {', '.join(refused)}: minsky needs it",
            hint="remove minsky with the tool that installed it (pip uninstall minsky, pipx uninstall minsky)",
        )
    _run_pip(["uninstall", "--yes", *expanded])
    return expanded


def available_backends() -> list[str]:
    """The backends a fresh minsky process finds (this process's plugin registry predates the change)."""
    code = "import json; from minsky.plugins import registry; print(json.dumps(sorted(registry().backends)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return []
    backends: list[str] = json.loads(out.stdout)
    return backends
