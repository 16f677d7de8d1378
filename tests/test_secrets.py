"""A canary password, given every way a user (or a mistake) gives one, in every command,
usage errors included, never appears in any output or in any file minsky writes (issue 14)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import Invoke
from fakepg import FakePostgres, fake_postgres
from minsky import redact

CANARY = "Zq7CanaryPw"
PASSWORD = f"{CANARY} it\\'s"  # libpq quoting: the password is «Zq7CanaryPw it's»


@pytest.fixture(autouse=True)
def forget_secrets() -> Iterator[None]:
    """Each case must mask the canary on its own, not because an earlier one taught it."""
    redact._known.clear()
    yield
    redact._known.clear()


@pytest.fixture(scope="module")
def server() -> Iterator[FakePostgres]:
    with fake_postgres(max_connections=200, lifetime=300) as fake:
        yield fake


def uri(port: int) -> str:
    return f"postgresql://u:{CANARY}@127.0.0.1:{port}/db?sslmode=disable&connect_timeout=5"


def keyvalue(port: int) -> str:
    return f"host=127.0.0.1 port={port} dbname=db user=u sslmode=disable connect_timeout=5 password='{PASSWORD}'"


def query(port: int) -> str:
    return f"postgresql://u@127.0.0.1:{port}/db?sslmode=disable&password={CANARY}"


def double_quoted(port: int) -> str:
    return f'host=127.0.0.1 port={port} user=u sslmode=disable password="{CANARY}"'


FORMS: dict[str, Callable[[int], str]] = {"uri": uri, "kv": keyvalue, "query": query, "dq": double_quoted}

# (name, environment, global config text, argv); {cs} is the connection string, {port} the server's.
CASES: list[tuple[str, dict[str, str], str | None, list[str]]] = [
    ("flag-migrate", {}, None, ["sessiondb", "migrate", "to", "postgres", "--connection-string", "{cs}"]),
    ("flag-o", {}, None, ["sessiondb", "migrate", "to", "postgres", "-o", "postgres.connection_string={cs}"]),
    ("flag-o-bare", {}, None, ["sessiondb", "migrate", "to", "postgres", "-o", "connection_string={cs}"]),
    ("flag-restore", {}, None, ["sessiondb", "restore", "/nonexistent.json", "--connection-string", "{cs}"]),
    (
        "env-url-list",
        {"MINSKY_POSTGRES_URL": "{cs}", "MINSKY_SESSIONDB_BACKEND": "postgres"},
        None,
        ["session", "list"],
    ),
    (
        "env-url-status",
        {"MINSKY_POSTGRES_URL": "{cs}", "MINSKY_SESSIONDB_BACKEND": "postgres"},
        None,
        ["sessiondb", "migrate", "status", "--json"],
    ),
    (
        "env-url-test",
        {"MINSKY_POSTGRES_URL": "{cs}", "MINSKY_SESSIONDB_BACKEND": "postgres"},
        None,
        ["sessiondb", "test-connection"],
    ),
    (
        "env-key",
        {"MINSKY_SESSIONDB_CONNECTION_STRING": "{cs}", "MINSKY_SESSIONDB_BACKEND": "postgres"},
        None,
        ["session", "start", "s", "--repo", "https://example.invalid/r.git"],
    ),
    ("env-show", {"MINSKY_POSTGRES_URL": "{cs}"}, None, ["config", "show", "--json"]),
    ("env-get", {"MINSKY_POSTGRES_URL": "{cs}"}, None, ["config", "get", "sessiondb.connectionString"]),
    (
        "pgpassword",
        {
            "PGPASSWORD": CANARY,
            "MINSKY_SESSIONDB_BACKEND": "postgres",
            "MINSKY_POSTGRES_URL": "host=127.0.0.1 port={port} user=u sslmode=disable",
        },
        None,
        ["sessiondb", "test-connection"],
    ),
    ("config-list", {}, "postgres", ["session", "list"]),
    ("config-show", {}, "postgres", ["config", "show"]),
    ("config-show-json", {}, "postgres", ["config", "show", "--json"]),
    ("config-get", {}, "postgres", ["config", "get", "sessiondb.connectionString", "--json"]),
    ("config-status", {}, "postgres", ["sessiondb", "migrate", "status"]),
    ("config-status-json", {}, "postgres", ["sessiondb", "migrate", "status", "--json"]),
    ("config-check", {}, "postgres", ["sessiondb", "check"]),
    ("config-export", {}, "postgres", ["sessiondb", "export", "./backup"]),
    ("config-migrate-from", {}, "json", ["sessiondb", "migrate", "to", "json", "--from", "postgres"]),
    ("config-plugins", {}, "postgres", ["plugins", "list", "--json"]),
    ("config-get-session", {}, "postgres", ["session", "get", "x"]),
    ("config-end", {}, "postgres", ["session", "end", "x"]),
    ("config-delete", {}, "postgres", ["session", "delete", "x"]),
    ("config-clean", {}, "postgres", ["session", "clean", "--older-than", "1d"]),
    ("config-init", {}, "postgres", ["sessiondb", "init", "--backend", "postgres"]),
    ("config-import", {}, "postgres", ["sessiondb", "import", "/nonexistent.json"]),
    ("config-verify", {}, "postgres", ["sessiondb", "verify", "--json"]),
    ("config-debug", {}, "postgres", ["--debug", "sessiondb", "test-connection"]),
    ("stray-list", {}, None, ["session", "list", "{cs}"]),
    ("stray-show", {}, None, ["config", "show", "{cs}"]),
    ("stray-status", {}, None, ["sessiondb", "migrate", "status", "{cs}"]),
    ("stray-top", {}, None, ["{cs}"]),
    ("wrong-option", {}, None, ["session", "list", "--connection-string", "{cs}"]),
    ("wrong-option-top", {}, None, ["--connection-string={cs}", "session", "list"]),
    ("wrong-value", {}, None, ["session", "list", "--limit", "{cs}"]),
    ("wrong-backend", {}, None, ["sessiondb", "migrate", "to", "{cs}"]),
    ("wrong-from", {}, None, ["sessiondb", "migrate", "to", "json", "--from", "{cs}"]),
    ("wrong-o", {}, None, ["sessiondb", "migrate", "to", "json", "-o", "password={cs}"]),
    ("wrong-o-form", {}, None, ["sessiondb", "migrate", "to", "json", "-o", "{cs}"]),
    ("misspelt-set", {}, None, ["config", "set", "sessiondb.conectionString", "{cs}"]),
    ("set-int", {}, None, ["config", "set", "sessiondb.connectTimeout", "{cs}"]),
    ("set-repo", {}, None, ["config", "set", "--repo", "sessiondb.connectionString", "{cs}"]),
    ("set-global", {}, None, ["config", "set", "sessiondb.connectionString", "{cs}"]),
    ("misspelt-file", {}, "misspelt", ["session", "list"]),
    ("wrong-type-file", {}, "wrong-type", ["config", "show"]),
    ("unknown-secret-key", {}, "unknown-secret", ["config", "show"]),
]

CONFIGS = {
    "postgres": '[sessiondb]\nbackend = "postgres"\nconnectionString = "{cs}"\n',
    "json": '[sessiondb]\nbackend = "json"\nconnectionString = "{cs}"\n',
    "misspelt": '[sessiondb]\nconectionString = "{cs}"\n',
    "wrong-type": '[sessiondb]\nconnectionString = "{cs}"\nconnectTimeout = "{cs}"\n',
    "unknown-secret": '[sessiondb]\napiToken = "{cs}"\n',
}


def toml_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def files_holding(root: Path, needles: list[bytes], allowed: set[Path]) -> list[Path]:
    found = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if path in allowed or path.is_symlink():
                continue
            data = path.read_bytes()
            if any(needle in data for needle in needles):
                found.append(path)
    return found


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize(("name", "env", "config", "argv"), CASES, ids=[case[0] for case in CASES])
def test_the_canary_never_leaves(  # type: ignore[no-untyped-def]
    minsky: Invoke,
    isolated_home: Path,
    server: FakePostgres,
    monkeypatch,
    tmp_path: Path,
    name: str,
    env: dict[str, str],
    config: str | None,
    argv: list[str],
    form: str,
) -> None:
    cs = FORMS[form](server.port)
    fill = {"cs": cs, "port": str(server.port)}
    for var, value in env.items():
        monkeypatch.setenv(var, value.format(**fill))
    allowed = set()
    global_file = isolated_home / ".config" / "minsky" / "config.toml"
    if config is not None:
        global_file.parent.mkdir(parents=True)
        global_file.write_text(CONFIGS[config].format(cs=toml_string(cs)))
        global_file.chmod(0o600)
    if name.startswith("set-"):
        allowed |= {global_file, Path.cwd() / ".minsky" / "config.toml"}  # where the user asked it to go
    allowed.add(global_file)
    result = minsky(*[arg.format(**fill) for arg in argv])
    needles = [CANARY, quote(CANARY, safe="")]
    for needle in needles:
        assert needle not in result.output, f"{name}/{form} printed the canary:\n{result.output}"
    if result.exit_code != 0 and "--debug" not in argv:
        assert result.stderr.startswith(("minsky: error:", "minsky: warning:")), result.stderr
        assert "Traceback" not in result.stderr
    assert files_holding(tmp_path, [n.encode() for n in needles], allowed) == []


def test_usage_errors_use_the_one_error_format(minsky: Invoke) -> None:
    for argv in (["session", "list", "stray"], ["session", "list", "--nope"], ["sesion"], ["--nope"]):
        result = minsky(*argv)
        assert result.exit_code == 2
        first, *rest = result.stderr.splitlines()
        assert first.startswith("minsky: error: "), result.stderr
        assert all(line.startswith("minsky: hint: ") for line in rest)


def test_set_repo_of_a_secret_warns_that_the_file_is_committed(minsky: Invoke) -> None:
    result = minsky("config", "set", "--repo", "sessiondb.connectionString", f"host=h password={CANARY}")
    assert result.exit_code == 0
    assert "committed" in result.stderr and "${" in result.stderr
    quiet = minsky("config", "set", "--repo", "sessiondb.connectionString", "host=h password=${PGPW}")
    assert quiet.exit_code == 0 and "committed" not in quiet.stderr


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("password='a b\\'c' host=x", "a b\\'c"),
        ('password="x y" host=h', '"x y"'),
        ("password = \\ abc\\ d user=u", "\\ abc\\ d"),
        ("host=h password=plain", "plain"),
        ("sslpassword=ssl-secret host=h", "ssl-secret"),
        ("postgresql://u:p%40ss@h/db", "p%40ss"),
        ("postgresql://u:p@ss@h/db", "p@ss"),
        ("postgresql://u@h/db?sslmode=require&password=qpw", "qpw"),
        ("-o postgres.api_token=TOK123", "TOK123"),
        ("MY_SECRET=hush x", "hush"),
    ],
)
def test_passwords_are_masked_as_libpq_reads_them(text: str, secret: str) -> None:
    masked = redact.redact_text(text)
    assert secret not in masked and redact.MASK in masked


def test_a_value_from_a_variable_is_secret_everywhere(  # type: ignore[no-untyped-def]
    minsky: Invoke, isolated_home: Path, monkeypatch
) -> None:
    monkeypatch.setenv("DB_HOST_SECRET_PART", "internal-db-7781")
    global_file = isolated_home / ".config" / "minsky" / "config.toml"
    global_file.parent.mkdir(parents=True)
    global_file.write_text('[sessiondb]\nconnectionString = "host=${DB_HOST_SECRET_PART} user=u"\n')
    for argv in (["config", "show"], ["config", "get", "sessiondb.connectionString"], ["config", "show", "--json"]):
        result = minsky(*argv)
        assert result.exit_code == 0 and "internal-db-7781" not in result.output
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "postgres")
    result = minsky("sessiondb", "migrate", "status", "--json")
    assert "internal-db-7781" not in result.output
