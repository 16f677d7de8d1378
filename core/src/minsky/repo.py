"""Describing the repository a session works on, from ``--repo`` or the current git checkout."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import attrs

from minsky.errors import UsageError

_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:(?P<path>.+)$")


@attrs.frozen
class RepoInfo:
    name: str
    url: str
    path: str | None
    backend_type: str  # local | remote | github


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and out else None


def name_from_url(url: str) -> str:
    scp = _SCP_LIKE.match(url)
    path = scp.group("path") if scp else re.sub(r"^[a-zA-Z][\w+.-]*://[^/]*", "", url)
    parts = [p for p in path.rstrip("/").split("/") if p]
    if parts:
        parts[-1] = parts[-1].removesuffix(".git")
    return "/".join(parts[-2:]) if parts else url


def is_url(text: str) -> bool:
    return "://" in text or bool(_SCP_LIKE.match(text))


def from_url(url: str) -> RepoInfo:
    kind = "github" if "github.com" in url else "remote"
    return RepoInfo(name=name_from_url(url), url=url, path=None, backend_type=kind)


def describe(repo: str | None, cwd: Path) -> RepoInfo:
    if repo is not None and is_url(repo):
        return from_url(repo)
    where = (cwd / repo).resolve() if repo else cwd
    if repo is not None and not where.is_dir():
        raise UsageError(f"--repo {repo}: no such directory")
    top = _git(["rev-parse", "--show-toplevel"], where)
    if top is None:
        if repo is None:
            raise UsageError(f"{cwd} is not inside a git repository: pass --repo PATH|URL to say which repository")
        top = str(where)
    remote = _git(["config", "--get", "remote.origin.url"], Path(top))
    if remote:
        info = from_url(remote)
        return attrs.evolve(info, path=top)
    return RepoInfo(name=f"local/{Path(top).name}", url=top, path=top, backend_type="local")
