"""Where minsky keeps things by default, and the guard that keeps session
working directories inside their base directory."""

from __future__ import annotations

import os
from pathlib import Path

from minsky.errors import UsageError


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value and os.path.isabs(value) else Path.home() / fallback


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "minsky"


def global_config_path() -> Path:
    return config_dir() / "config.toml"


def state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "minsky"


def expand(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.expanduser(os.fspath(path)))


def find_repo_config(start: Path | None = None) -> Path | None:
    """The nearest ``.minsky/config.toml`` walking up from ``start`` (default: cwd)."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / ".minsky" / "config.toml"
        if candidate.is_file():
            return candidate
    return None


def check_text(value: str, what: str) -> None:
    """Refuse an argument that is not Unicode text: a byte that is not UTF-8 reaches
    Python as a lone surrogate (``surrogateescape``), which no store can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raw = value.encode("utf-8", "surrogateescape" if _escaped_bytes(value) else "backslashreplace")
        raise UsageError(
            f"{what} '{raw.decode('utf-8', 'backslashreplace')}' is not UTF-8 text "
            f"(character {exc.start + 1} is not a Unicode character); nothing was created"
        ) from None


def _escaped_bytes(value: str) -> bool:
    return all(0xDC80 <= ord(ch) <= 0xDCFF for ch in value if 0xD800 <= ord(ch) <= 0xDFFF)


def check_session_dir_name(name: str) -> None:
    """Refuse a session name that would not be a single, plain directory name."""
    check_text(name, "session name")
    problems = []
    if "\x00" in name:
        problems.append("a NUL byte")
    if "/" in name or "\\" in name:
        problems.append("a path separator")
    if name in (".", "..") or name.startswith(".."):
        problems.append("'..'")
    if name.endswith((".", " ")):
        problems.append("a trailing dot or space")
    if len(name.encode("utf-8", "surrogatepass")) > 255:
        problems.append("more than 255 bytes")
    if any(ord(ch) < 32 for ch in name.replace("\x00", "")):
        problems.append("a control character")
    if problems or not name:
        detail = ", ".join(problems) or "an empty name"
        raise UsageError(f"session name {name!r} cannot name a working directory: it contains {detail}")


def sessions_root(base_dir: Path) -> Path:
    return (base_dir / "sessions").resolve()


def session_dir(base_dir: Path, name: str) -> Path:
    """``<baseDir>/sessions/<name>``, proven to stay inside ``<baseDir>/sessions``."""
    check_session_dir_name(name)
    root = sessions_root(base_dir)
    target = (root / name).resolve()
    if target.parent != root:
        raise UsageError(f"session name {name!r} escapes {root} (symlink or special name)")
    return target
