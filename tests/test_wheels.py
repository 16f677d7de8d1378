"""The built distributions, installed as a user installs them: a fresh venv, dist/ only, offline.

Runs under `nox -s wheels`, which builds dist/ and fills a wheelhouse with the third-party
wheels (MINSKY_TEST_DIST, MINSKY_TEST_WHEELHOUSE). A file missing from a wheel fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DIST = os.environ.get("MINSKY_TEST_DIST")
WHEELHOUSE = os.environ.get("MINSKY_TEST_WHEELHOUSE")

pytestmark = pytest.mark.skipif(
    not (DIST and WHEELHOUSE), reason="needs built wheels: run `nox -s wheels` (it sets MINSKY_TEST_DIST)"
)


def offline_env(home: Path) -> dict[str, str]:
    """No pip configuration, no index: only the directories a command names."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "MINSKY_", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", HOME=str(home))
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["XDG_STATE_HOME"] = str(home / ".local" / "state")
    return env


def run(*cmd: str | Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, env=env, cwd=cwd, timeout=300, check=False
    )


def test_fresh_venv_installs_minsky_then_postgres_from_dist_and_migrates(tmp_path: Path, postgres_url: str) -> None:
    assert DIST and WHEELHOUSE
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_ = venv / "bin"
    env = offline_env(tmp_path / "home")
    links = ["--find-links", DIST, "--find-links", WHEELHOUSE]

    done = run(bin_ / "pip", "install", "--no-index", *links, "minsky", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    before = json.loads(run(bin_ / "minsky", "plugins", "list", "--json", env=env, cwd=tmp_path).stdout)
    assert sorted(before["backends"]) == ["json", "sqlite"]

    started = run(
        bin_ / "minsky",
        "session",
        "start",
        "wheel-one",
        "--task",
        "7",
        "--repo",
        "https://github.com/acme/widgets.git",
        env=env,
        cwd=tmp_path,
    )
    assert started.returncode == 0, started.stderr

    # The plugin's own `minsky` requirement is resolved from dist/: the offline install proves it.
    done = run(bin_ / "minsky", "plugins", "install", "postgres", "--no-index", *links, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Backends now available: json, postgres, sqlite" in done.stdout
    listed = run(bin_ / "minsky", "plugins", "list", env=env, cwd=tmp_path).stdout
    assert any(line.startswith("postgres\tminsky-backend-postgres 0.") for line in listed.splitlines()), listed

    migrated = run(
        bin_ / "minsky", "sessiondb", "migrate", "to", "postgres", "--connection-string", postgres_url,
        "--verify", "--json", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        names = [row[0] for row in conn.execute("SELECT session FROM sessions")]
    assert names == ["wheel-one"]

    refused = run(bin_ / "minsky", "plugins", "uninstall", "minsky", env=env, cwd=tmp_path)
    assert refused.returncode == 2 and "refusing to uninstall minsky" in refused.stderr
    removed = run(bin_ / "minsky", "plugins", "uninstall", "postgres", env=env, cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert "Backends now available: json, sqlite" in removed.stdout
    assert run(bin_ / "python", "-c", "import minsky_backend_postgres", env=env, cwd=tmp_path).returncode != 0
