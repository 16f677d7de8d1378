"""The file-system side of backups: directories that cannot be redirected, files
that are regular and ours, and names that are created exclusively.

Everything inside a backup directory is done relative to one open directory
descriptor, so a path component swapped for a symlink after the checks cannot
redirect a write. A new file is filled under a temporary name and then linked
to its final name with ``link(2)``, which fails if that name exists: a backup is
never written over another one, nor through a symlink planted under its name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TypeVar

import click

from minsky.atomic import TEMP_PREFIX, ensure_private_dir, hold_signals, os_error_to_store_error, release_signals
from minsky.errors import StoreError, UsageError

T = TypeVar("T")
_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW
# link(2) is not offered everywhere (FAT, some network file systems): a reserved name is used there.
_NO_LINK = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}


def shown(text: object) -> str:
    """A path or file name as printed: names in a shared directory are anyone's choice."""
    from minsky.cli.output import printable

    return printable(str(text))


def warn(text: str) -> None:
    click.echo(f"minsky: warning: {text}", err=True)


def trusted_owner(uid: int) -> bool:
    return uid in (os.geteuid(), 0)


def check_symlinks(path: Path) -> None:
    """Refuse a path that passes through a symlink someone else owns (a planted redirect)."""
    current = Path(path.anchor) if path.is_absolute() else Path.cwd()
    for part in path.relative_to(path.anchor).parts if path.is_absolute() else path.parts:
        current = current / part
        try:
            info = current.lstat()
        except FileNotFoundError:
            return  # the rest is created by us
        except OSError as exc:
            raise os_error_to_store_error(exc, current) from None
        if stat.S_ISLNK(info.st_mode) and not trusted_owner(info.st_uid):
            raise StoreError(
                f"{shown(current)} is a symbolic link owned by another user (uid {info.st_uid}); "
                "minsky does not follow it for backups",
                hint="name the directory it points to, if you trust it",
            )


def prepare_directory(path: Path) -> None:
    """Create the backup directory ``path`` (0700), refusing a planted symlink on the way."""
    check_symlinks(path)
    ensure_private_dir(path)


def open_directory(path: Path, *, create: bool) -> int:
    """An open descriptor of the backup directory ``path`` (created 0700 when asked)."""
    if create:
        prepare_directory(path)
    else:
        check_symlinks(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UsageError(f"backup directory {shown(path)} does not exist") from None
    except NotADirectoryError:
        raise UsageError(f"{shown(path)} is not a directory") from None
    except OSError as exc:
        raise os_error_to_store_error(exc, path) from None
    info = os.fstat(fd)
    if info.st_mode & 0o022:
        who = "group and others" if info.st_mode & 0o022 == 0o022 else "group" if info.st_mode & 0o020 else "others"
        warn(f"backup directory {shown(path)} is writable by {who}: they can plant or remove backups there")
    elif not trusted_owner(info.st_uid):
        warn(f"backup directory {shown(path)} belongs to another user (uid {info.st_uid})")
    return fd


def open_regular(name: str | Path, *, dir_fd: int | None = None, follow: bool = False) -> int:
    """Open a file for reading only if it is a regular file: never blocks on a FIFO,
    never reads a device, and follows a final symlink only when ``follow`` is set."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW), dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UsageError(f"{shown(name)} is a symbolic link; name the file it points to") from None
        if exc.errno == errno.ENOENT:
            raise UsageError(f"backup {shown(name)} does not exist") from None
        raise StoreError(f"cannot read backup {shown(name)}: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode) else "special"
        raise UsageError(f"{shown(name)} is {kind}, not a backup file")
    return fd


def _temp_names(stem: str) -> Iterator[str]:
    while True:
        yield f"{TEMP_PREFIX}{stem}-{os.getpid()}-{os.urandom(6).hex()}"


def _locked_temp(dir_fd: int, stem: str) -> tuple[int, str]:
    """A new temp file, held under an exclusive flock for as long as it is being written:
    a later run removes only temps nobody holds (see ``remove_stale_temps``)."""
    for name in _temp_names(stem):
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FLAGS, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
        with contextlib.suppress(OSError):  # no locks here (some NFS): no cleaner can lock it either
            fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:
            return fd, name
        os.close(fd)  # a cleaner removed it between create and lock: take another name
    raise AssertionError("unreachable")


def remove_stale_temps(dir_fd: int, stem: str) -> list[str]:
    """Remove our temps that no live writer holds (left by a killed run); return their names."""
    removed = []
    for entry in os.scandir(dir_fd):
        if not entry.name.startswith(f"{TEMP_PREFIX}{stem}"):
            continue
        try:
            fd = os.open(entry.name, os.O_RDONLY | os.O_NONBLOCK | _FLAGS, dir_fd=dir_fd)
        except OSError:
            continue  # a symlink or gone: not ours to remove
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # being written right now
            now = os.stat(entry.name, dir_fd=dir_fd, follow_symlinks=False)
            if (now.st_dev, now.st_ino) == (info.st_dev, info.st_ino):
                os.unlink(entry.name, dir_fd=dir_fd)
                removed.append(entry.name)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def _publish(dir_fd: int, temp: str, names: Iterable[str]) -> str:
    """Give the filled temp file the first free name of ``names``; never replaces a file."""
    for name in names:
        try:
            os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            return name
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
        try:  # no hard links here: reserve the name exclusively, then move the temp onto our reservation
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FLAGS, 0o600, dir_fd=dir_fd))
        except FileExistsError:
            continue
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return name
    raise StoreError("no free file name for the backup")


def create_exclusive(
    directory: Path, dir_fd: int, stem: str, names: Iterable[str], fill: Callable[[IO[bytes]], T]
) -> tuple[Path, T]:
    """Write a new file in the open directory: ``fill`` writes it under a locked temp name,
    then it takes the first of ``names`` that does not exist yet."""
    held = hold_signals()  # an interrupt between the temp's creation and the try below would leave it
    try:
        remove_stale_temps(dir_fd, stem)
        fd, temp = _locked_temp(dir_fd, stem)
    except OSError as exc:
        release_signals(held)
        raise os_error_to_store_error(exc, directory) from None
    except BaseException:
        release_signals(held)
        raise
    try:
        release_signals(held)  # a signal held meanwhile is raised here, inside the cleanup's try
        with os.fdopen(fd, "wb", buffering=1 << 20, closefd=False) as handle:
            result = fill(handle)
            handle.flush()
            os.fsync(fd)
        name = _publish(dir_fd, temp, names)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        os.fsync(dir_fd)
        return directory / name, result
    except OSError as exc:
        raise os_error_to_store_error(exc, directory) from None
    finally:  # also on KeyboardInterrupt and the signals the CLI turns into it
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        os.close(fd)
