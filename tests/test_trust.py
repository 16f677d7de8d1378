"""A cloned repository cannot steer minsky: its .minsky/config.toml is ignored for where
sessions live and which server is contacted until the user trusts it (issue 14)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result

from conftest import Invoke, run_minsky
from fakepg import FakePostgres, fake_postgres

TOKEN = "ghp_CanaryToken1234"
AWS = "AwsCanarySecret5678"


def snapshot(root: Path, skip: Path) -> dict[str, tuple[str, str]]:
    """Every entry under ``root`` (except ``skip``, minsky's state dir): kind and content hash."""
    seen: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == skip or skip in here.parents:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = here / name
            rel = str(path.relative_to(root))
            if path == skip or path in skip.parents:  # minsky's state dir, and the way to it
                continue
            if path.is_symlink():
                seen[rel] = ("link", os.readlink(path))
            elif path.is_file():
                seen[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                seen[rel] = ("dir", "")
    return seen


def clone_with_config(home: Path, config: str) -> Path:
    """A git repository with a committed .minsky/config.toml, as `git clone` leaves it."""
    origin = home / "upstream"
    (origin / ".minsky").mkdir(parents=True)
    (origin / ".minsky" / "config.toml").write_text(config)
    (origin / "README.md").write_text("nothing to see here\n")
    git = ["git", "-c", "user.email=a@example.invalid", "-c", "user.name=attacker", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(origin)], check=True)
    subprocess.run([*git, "-C", str(origin), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(origin), "commit", "-q", "-m", "helpful defaults"], check=True)
    clone = home / "src" / "cloned"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    return clone


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS)


@pytest.fixture
def server() -> Iterator[FakePostgres]:
    with fake_postgres() as fake:
        yield fake


def warnings_in(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("minsky: warning:")]


def assert_no_canary(result: Result) -> None:
    for canary in (TOKEN, AWS):
        assert canary not in result.output


def test_a_cloned_repo_cannot_send_the_environment_to_a_server(  # type: ignore[no-untyped-def]
    minsky: Invoke, isolated_home: Path, state_dir: Path, canaries, server: FakePostgres, monkeypatch
) -> None:
    config = (
        "[sessiondb]\n"
        'backend = "postgres"\n'
        f'connectionString = "host=127.0.0.1 port={server.port} dbname=x user=u sslmode=disable '
        'connect_timeout=5 application_name=${GITHUB_TOKEN} password=${AWS_SECRET_ACCESS_KEY}"\n'
    )
    clone = clone_with_config(isolated_home, config)
    repo_file = clone / ".minsky" / "config.toml"
    monkeypatch.chdir(clone)
    before = snapshot(isolated_home, state_dir)

    for args in (["session", "list"], ["sessiondb", "migrate", "status", "--json"], ["config", "show"]):
        result = minsky(*args)
        assert result.exit_code == 0, result.output
        assert_no_canary(result)
        (warning,) = warnings_in(result)
        assert str(repo_file) in warning and f"minsky config trust {repo_file}" in warning
        assert "sessiondb.backend" in warning and "sessiondb.connectionString" in warning
    assert server.connections == 0 and server.everything == b""
    assert snapshot(isolated_home, state_dir) == before  # the default store lives in the state dir

    trusted = minsky("config", "trust")
    assert trusted.exit_code == 0 and str(repo_file) in trusted.stdout
    result = minsky("session", "list")
    # Trusted, the same config is used: the server is asked, and what it was sent is masked here.
    assert result.exit_code == 5, result.output
    assert warnings_in(result) == []
    assert_no_canary(result)
    assert server.connections >= 1
    assert TOKEN.encode() in server.everything and AWS.encode() in server.everything

    minsky("config", "untrust")
    asked = server.connections
    assert minsky("session", "list").exit_code == 0
    assert server.connections == asked


def test_a_changed_file_must_be_trusted_again(  # type: ignore[no-untyped-def]
    minsky: Invoke, isolated_home: Path, monkeypatch
) -> None:
    clone = clone_with_config(isolated_home, '[sessiondb]\nbackend = "sqlite"\n')
    monkeypatch.chdir(clone)
    assert minsky("config", "trust", str(clone)).exit_code == 0
    shown = json.loads(minsky("config", "show", "--json").stdout)
    assert shown["settings"]["sessiondb.backend"]["value"] == "sqlite" and shown["files"]["repoTrusted"] is True
    # A pull that changes the file: back to untrusted, with the warning.
    (clone / ".minsky" / "config.toml").write_text('[sessiondb]\nbackend = "sqlite"\ndbPath = "/tmp/elsewhere.db"\n')
    result = minsky("config", "show", "--json")
    shown = json.loads(result.stdout)
    assert shown["settings"]["sessiondb.backend"]["value"] == "json" and shown["files"]["repoTrusted"] is False
    assert len(warnings_in(result)) == 1


def test_untrusted_repo_cannot_make_minsky_write_outside_its_stores(  # type: ignore[no-untyped-def]
    minsky: Invoke, isolated_home: Path, state_dir: Path, monkeypatch
) -> None:
    docker = isolated_home / ".docker" / "config.json"
    docker.parent.mkdir()
    docker.write_text('{"auths": {"registry.example": {"auth": "c2VjcmV0"}}}\n')
    (isolated_home / ".ssh").mkdir()
    config = (
        '[sessiondb]\nbackend = "json"\n'
        f'dbPath = "{docker}"\n'
        f'baseDir = "{isolated_home / ".ssh"}"\n'
        "[sessiondb.sqliteOptions]\ncacheSize = 100\n"
    )
    clone = clone_with_config(isolated_home, config)
    monkeypatch.chdir(clone)
    before = snapshot(isolated_home, state_dir)
    result = minsky("session", "start", "s1")
    assert result.exit_code == 0, result.output
    assert len(warnings_in(result)) == 1
    assert snapshot(isolated_home, state_dir) == before
    assert (state_dir / "session-db.json").exists()

    # Trusted, the path is used: and a file that is not a session store is still refused, untouched.
    assert minsky("config", "trust").exit_code == 0
    result = minsky("session", "start", "s2")
    assert result.exit_code == 4
    assert str(docker) in result.stderr and result.stderr.startswith("minsky: error:")
    after = snapshot(isolated_home, state_dir)
    assert after == before
    assert not Path(f"{docker}.lock").exists()


def test_untrusted_sqlite_path_creates_nothing(  # type: ignore[no-untyped-def]
    minsky: Invoke, isolated_home: Path, state_dir: Path, monkeypatch
) -> None:
    target = isolated_home / ".ssh" / "rc"
    clone = clone_with_config(isolated_home, f'[sessiondb]\nbackend = "sqlite"\ndbPath = "{target}"\n')
    monkeypatch.chdir(clone)
    result = minsky("session", "start", "s1")
    assert result.exit_code == 0, result.output
    assert not target.exists() and not target.parent.exists()


def test_variables_in_an_untrusted_file_are_not_expanded(  # type: ignore[no-untyped-def]
    minsky: Invoke, isolated_home: Path, state_dir: Path, canaries, monkeypatch
) -> None:
    clone = clone_with_config(
        isolated_home, '[sessiondb]\nbaseDir = "/tmp/${GITHUB_TOKEN}"\ndbPath = "${AWS_SECRET_ACCESS_KEY}.json"\n'
    )
    monkeypatch.chdir(clone)
    before = snapshot(isolated_home, state_dir)
    for args in (["config", "show", "--json"], ["sessiondb", "migrate", "status", "--json"], ["session", "start", "x"]):
        result = minsky(*args)
        assert result.exit_code == 0, result.output
        assert_no_canary(result)
    assert not Path(f"/tmp/{TOKEN}").exists()
    assert snapshot(isolated_home, state_dir) == before
    # ${VAR} never lands in a path, trusted or not: such a file cannot be trusted, and says why.
    result = minsky("config", "trust")
    assert result.exit_code == 3
    assert "sessiondb." in result.stderr and str(clone / ".minsky" / "config.toml") in result.stderr
    assert_no_canary(result)


def test_global_config_and_environment_stay_trusted(  # type: ignore[no-untyped-def]
    minsky: Invoke, isolated_home: Path, tmp_path: Path, monkeypatch
) -> None:
    store = tmp_path / "mine.json"
    glob = isolated_home / ".config" / "minsky" / "config.toml"
    glob.parent.mkdir(parents=True)
    glob.write_text(f'[sessiondb]\nbackend = "json"\ndbPath = "{store}"\n')
    assert minsky("session", "start", "a", "--repo", "https://example.invalid/r.git").exit_code == 0
    assert store.exists()
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(tmp_path / "env.json"))
    result = minsky("session", "start", "b", "--repo", "https://example.invalid/r.git")
    assert result.exit_code == 0 and warnings_in(result) == []
    assert (tmp_path / "env.json").exists()


def test_trust_in_a_real_process_records_path_and_hash(isolated_home: Path, state_dir: Path) -> None:
    clone = clone_with_config(isolated_home, '[sessiondb]\nbackend = "sqlite"\n')
    done = run_minsky("config", "trust", cwd=clone)
    assert done.returncode == 0, done.stderr
    recorded = json.loads((state_dir / "trusted-configs.json").read_text())["trusted"]
    repo_file = os.path.realpath(clone / ".minsky" / "config.toml")
    assert recorded == {repo_file: hashlib.sha256(Path(repo_file).read_bytes()).hexdigest()}
    assert run_minsky("config", "get", "sessiondb.backend", cwd=clone).stdout.startswith("sqlite")
    done = run_minsky("config", "untrust", cwd=clone)
    assert done.returncode == 0
    assert json.loads((state_dir / "trusted-configs.json").read_text())["trusted"] == {}
    result = run_minsky("config", "get", "sessiondb.backend", cwd=clone)
    assert result.stdout.startswith("json") and result.stderr.count("minsky: warning:") == 1


def test_trust_needs_a_file(minsky: Invoke) -> None:
    result = minsky("config", "trust")
    assert result.exit_code == 3 and ".minsky/config.toml" in result.stderr
    result = minsky("config", "trust", "/nonexistent/place")
    assert result.exit_code == 3 and "/nonexistent/place" in result.stderr


def test_trusting_an_invalid_file_is_refused(minsky: Invoke, isolated_home: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    clone = clone_with_config(isolated_home, '[sessiondb]\nbakend = "sqlite"\n')
    monkeypatch.chdir(clone)
    result = minsky("config", "trust")
    assert result.exit_code == 3 and "sessiondb.bakend" in result.stderr and "sessiondb.backend" in result.stderr


def test_concurrent_trusts_all_land(isolated_home: Path, state_dir: Path) -> None:
    """Two terminals trusting two repositories at once: both are trusted afterwards."""
    files = []
    for n in range(16):
        config = isolated_home / f"repo{n}" / ".minsky" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f'[sessiondb]\nbackend = "sqlite"\n# repo {n}\n')
        files.append(config)
    for round_start in range(0, 16, 8):  # 8 processes at a time, twice
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "minsky", "config", "trust", str(config)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for config in files[round_start : round_start + 8]
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    recorded = json.loads((state_dir / "trusted-configs.json").read_text())["trusted"]
    assert recorded == {os.path.realpath(config): hashlib.sha256(config.read_bytes()).hexdigest() for config in files}
    assert oct((state_dir / "trusted-configs.json.lock").stat().st_mode & 0o777) == "0o600"
