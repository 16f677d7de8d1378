"""Helpers for the migrate-while-writing tests: stores to migrate between, and writer
processes that start, end and delete sessions and log what each attempt returned."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from reliability import fork

MOVED = 13  # docs/cli.md: the store was migrated away
CONFLICT = 7


@attrs.frozen
class Place:
    """A store of one backend: how the config names it and how ``migrate to`` targets it."""

    backend: str
    path: Path | None = None
    url: str | None = None

    def config(self) -> str:
        location = f'dbPath = "{self.path}"\n' if self.path is not None else ""
        return f'[sessiondb]\nbackend = "{self.backend}"\n{location}'

    def flags(self) -> list[str]:
        if self.backend == "postgres":
            return ["--connection-string", str(self.url)]
        return [f"--{self.backend}-path", str(self.path)]

    def options(self) -> dict[str, Any]:
        return {"connection_string": self.url} if self.backend == "postgres" else {"path": self.path}

    def read(self) -> dict[str, dict[str, Any]]:
        """Every session of this store, by name, as the CLI shows them."""
        from minsky.cli.app import App
        from minsky.codec import record_to_dict

        store = App().store(self.backend, self.options()).store
        try:
            return {r.session: record_to_dict(r) for r in store.read()}
        finally:
            store.close()


def place(backend: str, directory: Path, postgres_url: str | None, name: str = "store") -> Place:
    if backend == "postgres":
        return Place("postgres", url=postgres_url)
    return Place(backend, path=directory / f"{name}.{'db' if backend == 'sqlite' else 'json'}")


def seed_record(i: int, repo: str = "https://h/seed/repo") -> dict[str, Any]:
    return {
        "session": f"s-{i:05d}",
        "repoName": "seed/repo",
        "repoUrl": repo,
        "createdAt": f"2025-01-{1 + i % 28:02d}T10:{i % 60:02d}:00.000Z",
        "taskId": f"md#{i}",
        "branch": f"s-{i:05d}",
        "prState": {"branchName": f"pr/s-{i:05d}", "exists": i % 2 == 0},
    }


def write_json_store(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"sessions": records, "baseDir": str(path.parent / "sessions")}), "utf-8")


def set_config(home: Path, where: Place) -> Path:
    config = home / ".config" / "minsky" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(where.config(), "utf-8")
    return config


def _cli(*args: str) -> int:
    """One CLI call in this process, as a user's command; its exit code."""
    from minsky.cli import cli

    try:
        result = cli.main(list(args), standalone_mode=False)
    except SystemExit as exc:  # pragma: no cover - click exits this way on some paths
        return int(exc.code or 0)
    return int(result or 0)


def writer(log: Path, stop: Path, prefix: str, names: list[str] | None = None, *, ops: str = "sed") -> int:
    """Fork a process that, until ``stop`` exists, starts sessions (``prefix``-N, or from
    ``names``), ends and deletes some it started, and logs ``op name exit-code`` per call."""

    def work() -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        mine: list[str] = []
        pool = iter(names) if names is not None else (f"{prefix}-{i:04d}" for i in range(10**6))
        with log.open("a", buffering=1) as out:
            step = 0
            while not stop.exists():
                step += 1
                if "e" in ops and step % 3 == 0 and mine:
                    name, op = mine[len(mine) // 2], "end"
                    code = _cli("session", "end", name)
                elif "d" in ops and step % 5 == 0 and mine:
                    name, op = mine.pop(0), "delete"
                    code = _cli("session", "delete", name)
                else:
                    name = next(pool, "")
                    if not name:
                        break
                    op = "start"
                    code = _cli("session", "start", name, "--repo", f"https://h/{prefix}/repo")
                    if code == 0:
                        mine.append(name)
                out.write(f"{op} {name} {code}\n")

    return fork(work)


@attrs.define
class Outcome:
    """What the writers saw: the last successful operation per session, and every exit code."""

    last: dict[str, str] = attrs.field(factory=dict)
    codes: dict[int, int] = attrs.field(factory=dict)
    started_ok: set[str] = attrs.field(factory=set)

    @classmethod
    def read(cls, logs: list[Path]) -> Outcome:
        outcome = cls()
        for log in logs:
            for line in log.read_text("utf-8").splitlines():
                op, name, code = line.split(" ")
                outcome.codes[int(code)] = outcome.codes.get(int(code), 0) + 1
                if int(code) == 0:
                    outcome.last[name] = op
                    if op == "start":
                        outcome.started_ok.add(name)
        return outcome


def wait_for_lines(logs: list[Path], at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(log.exists() and len(log.read_text("utf-8").splitlines()) >= at_least for log in logs):
            return
        time.sleep(0.05)
    raise AssertionError(f"the writers did not get going within {timeout}s")


@contextlib.contextmanager
def writers_running(
    directory: Path, count: int, prefix: str, names: list[str] | None = None, ops: str = "sed"
) -> Iterator[list[Path]]:
    """``count`` writer processes (sharing out ``names`` if given), stopped and reaped when the
    block ends."""
    from reliability import wait_ok

    stop = directory / f"stop-{prefix}"
    logs = [directory / f"{prefix}-{n}.log" for n in range(count)]
    pids = [
        writer(logs[n], stop, f"{prefix}{n}", None if names is None else names[n::count], ops=ops) for n in range(count)
    ]
    try:
        yield logs
    finally:
        stop.touch()
        for pid in pids:
            wait_ok(pid)
