"""A throwaway PostgreSQL cluster that checks passwords (scram-sha-256), on a free
loopback port, for the tests that need a login to be refused: the machine's own
server trusts every local connection."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "minsky_owner"
PASSWORD = "Right-pw_for-tests"


def _bindir() -> Path | None:
    root = Path("/usr/lib/postgresql")
    versions = (
        sorted((p for p in root.iterdir() if (p / "bin" / "initdb").exists()), key=lambda p: p.name)
        if root.exists()
        else []
    )
    if versions:
        return versions[-1] / "bin"
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def password_cluster(workdir: Path) -> Iterator[tuple[str, int]]:
    """Yield (host, port) of a running cluster whose superuser USER has PASSWORD."""
    bindir = _bindir()
    if bindir is None:
        raise RuntimeError("initdb not found (install PostgreSQL's server package)")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        import pwd

        owner = pwd.getpwnam("postgres")
        workdir.mkdir(parents=True, exist_ok=True)
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
    data = workdir / "data"
    pwfile = workdir / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if as_user:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    subprocess.run(
        [
            *as_user,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(workdir / "log"), "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield "127.0.0.1", port
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
