"""PostgreSQL: migrations in every direction, the original's schema, errors, and no password leaks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from conftest import ORIGINAL, run_minsky
from minsky.codec import canonical, loads, record_from_dict
from minsky.errors import ConflictError
from minsky.testing.records import SAMPLE_DICTS

pytestmark = pytest.mark.postgres


def canonical_set(records: list[dict]) -> dict[str, bytes]:  # type: ignore[type-arg]
    return {r["session"]: canonical(record_from_dict(r)) for r in records}


def location_flags(backend: str, tmp_path: Path, url: str, tag: str) -> list[str]:
    if backend == "json":
        return ["--json-path", str(tmp_path / f"{tag}.json")]
    if backend == "sqlite":
        return ["--sqlite-path", str(tmp_path / f"{tag}.db")]
    return ["--connection-string", url]


def seed(backend: str, flags: list[str], minsky_json, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Put the sample records (every awkward shape) into a store through a backup restore."""
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps({"sessions": SAMPLE_DICTS}))
    minsky_json("sessiondb", "restore", "--backup", str(seed_file), "--to", backend, *flags)


DIRECTIONS = [
    ("json", "sqlite"),
    ("sqlite", "postgres"),
    ("postgres", "json"),
    ("json", "postgres"),
    ("sqlite", "json"),
    ("postgres", "sqlite"),
    ("postgres", "postgres"),
]


@pytest.mark.parametrize(("source", "target"), DIRECTIONS)
def test_every_direction_is_lossless(
    source: str,
    target: str,
    minsky_json,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    postgres_url: str,
    postgres_server_url: str,
    request: pytest.FixtureRequest,
) -> None:
    src_flags = location_flags(source, tmp_path, postgres_url, "src")
    seed(source, src_flags, minsky_json, tmp_path)
    target_url = postgres_url
    if source == target == "postgres":  # same backend, another location: a second database
        other = conninfo_to_dict(postgres_server_url)["dbname"] + "_b"
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{other}"')
            conn.execute(f'CREATE DATABASE "{other}"')

        def drop_other() -> None:  # the run's own database is dropped by conftest; this one is ours
            with psycopg.connect(postgres_server_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')

        request.addfinalizer(drop_other)
        target_url = make_conninfo(postgres_server_url, dbname=other)
    dst_flags = location_flags(target, tmp_path, target_url, "dst")
    # The source is chosen through the environment, as a configured backend is.
    os.environ["MINSKY_SESSIONDB_BACKEND"] = source
    if source == "postgres":
        os.environ["MINSKY_POSTGRES_URL"] = postgres_url
    else:
        os.environ["MINSKY_SESSIONDB_DB_PATH"] = src_flags[1]
    try:
        report = minsky_json("sessiondb", "migrate", "to", target, *dst_flags, "--verify")
    finally:
        for var in ("MINSKY_SESSIONDB_BACKEND", "MINSKY_POSTGRES_URL", "MINSKY_SESSIONDB_DB_PATH"):
            os.environ.pop(var, None)
    n = len(SAMPLE_DICTS)
    assert report["counts"] == {"read": n, "written": n, "skipped": 0, "rejected": 0}
    assert report["verificationResult"]["ok"] is True
    # Read the target back through an independent path: a restore-free JSON export.
    out = tmp_path / "out.json"
    os.environ["MINSKY_SESSIONDB_BACKEND"] = target
    if target == "postgres":
        os.environ["MINSKY_POSTGRES_URL"] = target_url
    else:
        os.environ["MINSKY_SESSIONDB_DB_PATH"] = dst_flags[1]
    try:
        minsky_json("sessiondb", "migrate", "to", "json", "--json-path", str(out))
    finally:
        for var in ("MINSKY_SESSIONDB_BACKEND", "MINSKY_POSTGRES_URL", "MINSKY_SESSIONDB_DB_PATH"):
            os.environ.pop(var, None)
    assert canonical_set(json.loads(out.read_text("utf-8"))["sessions"]) == canonical_set(SAMPLE_DICTS)


def test_sessions_on_postgres(minsky, minsky_json, postgres_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "postgres")
    monkeypatch.setenv("MINSKY_POSTGRES_URL", postgres_url)
    assert minsky("session", "start", "--task", "5", "--repo", "https://github.com/a/b").exit_code == 0
    assert minsky_json("session", "list", "--task", "#5")["sessions"][0]["session"] == "task-md#5"
    assert minsky("session", "end", "--all").exit_code == 0
    assert minsky_json("session", "list", "--active")["sessions"] == []
    info = minsky_json("sessiondb", "test-connection")
    assert info["ok"] is True and info["schemaVersion"] == 2 and info["serverVersion"]


def test_reads_and_upgrades_the_original_schema(minsky_json, postgres_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    layout = ORIGINAL / "postgres" / "pg-2025-08-08.sql"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(layout.read_text("utf-8"))
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "postgres")
    monkeypatch.setenv("MINSKY_POSTGRES_URL", postgres_url)
    got = minsky_json("session", "get", "task-md#140")
    assert got == {
        "session": "task-md#140",
        "repoName": "acme/widgets",
        "repoUrl": "https://github.com/acme/widgets.git",
        "createdAt": "2025-08-21T17:02:11.930Z",  # TIMESTAMPTZ, as the original read it back
        "taskId": "md#140",
        "branch": "task-md#140",
        "prBranch": "pr/task-md#140",
        "prApproved": True,
        "prState": {
            "branchName": "pr/task-md#140",
            "exists": True,
            "lastChecked": "2025-08-22T08:00:00.000Z",
            "mergedAt": "2025-08-22T07:59:00.000Z",
        },
        "backendType": "github",
    }
    # Reading must not change the original table: no record column yet.
    with psycopg.connect(postgres_url) as conn:
        cols = {
            r[0]
            for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'sessions'")
        }
    assert "record" not in cols
    minsky_json("session", "start", "new", "--repo", "https://github.com/a/b")
    # What minsky writes stays readable through the original's columns.
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT repo_name, repo_url, task_id FROM sessions WHERE session = 'new'").fetchone()
    assert row == ("a/b", "https://github.com/a/b", None)


def test_exact_timestamp_strings_survive_timestamptz(minsky_json, postgres_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "postgres")
    monkeypatch.setenv("MINSKY_POSTGRES_URL", postgres_url)
    seed_file = Path("seed.json")
    stamps = ["2024-11-02T17:45:12.5+02:00", "2025-04-10T12:00:00.000001Z", "not a date", ""]
    seed_file.write_text(json.dumps({"sessions": [{"session": f"s{i}", "createdAt": s} for i, s in enumerate(stamps)]}))
    minsky_json("sessiondb", "restore", "--backup", str(seed_file), "--to", "postgres")
    assert [s["createdAt"] for s in minsky_json("session", "list")["sessions"]] == stamps


CANARY = "Canary-pw_7x!"


def _urls(base: str) -> dict[str, tuple[str, dict[str, str]]]:
    """The canary password given five ways, against a server that will refuse it."""
    p = conninfo_to_dict(base)
    host, port, db = p.get("host", "127.0.0.1"), p.get("port", "5432"), p.get("dbname", "postgres")
    enc = quote(CANARY, safe="")
    return {
        "uri-userinfo": (f"postgresql://nosuchuser:{enc}@{host}:{port}/{db}", {}),
        "uri-query": (f"postgresql://nosuchuser@{host}:{port}/{db}?password={enc}", {}),
        "keyword": (f"host={host} port={port} dbname={db} user=nosuchuser password='{CANARY}'", {}),
        "pgpassword": (f"postgresql://nosuchuser@{host}:{port}/{db}", {"PGPASSWORD": CANARY}),
        "unreachable": (f"postgresql://nosuchuser:{enc}@127.0.0.1:1/{db}", {}),
    }


def _leaks(text: str) -> bool:
    return CANARY in text or quote(CANARY, safe="") in text


WAYS = ["uri-userinfo", "uri-query", "keyword", "pgpassword", "toml-var", "unreachable"]


@pytest.mark.parametrize("way", WAYS)
def test_canary_password_never_appears(
    way: str, postgres_server_url: str, tmp_path: Path, state_dir: Path, isolated_home: Path
) -> None:
    """Every failure path (refused role, unreachable server) with the canary given each way."""
    if way == "toml-var":
        url, env = _urls(postgres_server_url)["uri-userinfo"]
        config = isolated_home / ".config" / "minsky" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text('[sessiondb]\nconnectionString = "${MINSKY_CANARY_URL}"\n')
        env = {"MINSKY_CANARY_URL": url}
        target = ["sessiondb", "migrate", "to", "postgres"]
        selected = {**env, "MINSKY_SESSIONDB_BACKEND": "postgres"}
    else:
        url, env = _urls(postgres_server_url)[way]
        target = ["sessiondb", "migrate", "to", "postgres", "--connection-string", url]
        selected = {**env, "MINSKY_SESSIONDB_BACKEND": "postgres", "MINSKY_POSTGRES_URL": url}
    state_dir.mkdir(parents=True)
    (state_dir / "session-db.json").write_text(json.dumps({"sessions": SAMPLE_DICTS}))
    logs = {"MINSKY_LOG_LEVEL": "debug"}
    runs: list[tuple[list[str], dict[str, str], bool]] = [
        ([*target, "--json"], {**env, **logs}, True),
        (["--debug", *target, "--backup", str(tmp_path / "b"), "--verify"], {**env, **logs}, True),
        ([*target, "--dry-run"], env, True),
        (["sessiondb", "test-connection", "--json"], {**selected, **logs}, True),
        (["--debug", "session", "list"], selected, True),
        (["session", "start", "x", "--repo", "https://h/a/b"], selected, True),
        (["sessiondb", "migrate", "status", "--json"], selected, False),
        (["config", "show", "--json"], selected, False),
        (["config", "get", "sessiondb.connectionString"], selected, False),
    ]
    for args, run_env, must_fail in runs:
        done = run_minsky(*args, env=run_env, timeout=60)
        assert done.returncode != 0 or not must_fail, (args, done.stderr)
        assert not _leaks(done.stdout + done.stderr), (way, args, done.stdout, done.stderr)
        if "--debug" not in args:
            assert "Traceback" not in done.stderr
    for path in [*tmp_path.rglob("*"), *state_dir.rglob("*")]:
        if path.is_file():
            assert not _leaks(path.read_text(errors="replace")), path


def test_connection_errors_are_one_clear_line(postgres_server_url: str) -> None:
    p = conninfo_to_dict(postgres_server_url)
    cases = {
        "refused": (f"postgresql://u:{CANARY}@127.0.0.1:1/x", "cannot connect (connection refused)", "pg_isready"),
        "no-database": (
            make_conninfo(postgres_server_url, dbname="minsky_no_such_db"),
            "does not exist",
            "CREATE DATABASE",
        ),
        "bad-string": ("postgresql://[bad", "invalid PostgreSQL connection string", None),
    }
    for name, (url, expected, hint) in cases.items():
        done = run_minsky("session", "list", env={"MINSKY_SESSIONDB_BACKEND": "postgres", "MINSKY_POSTGRES_URL": url})
        assert done.returncode in (3, 5), (name, done.stderr)
        assert expected in done.stderr, (name, done.stderr)
        assert "Traceback" not in done.stderr and not _leaks(done.stderr)
        if hint:
            assert hint in done.stderr
    del p


def test_killed_migration_leaves_nothing_and_rerun_converges(
    postgres_url: str, tmp_path: Path, state_dir: Path
) -> None:
    from minsky.codec import record_to_dict
    from minsky.testing.records import generated_records

    state_dir.mkdir(parents=True)
    (state_dir / "session-db.json").write_text(
        json.dumps({"sessions": [record_to_dict(r) for r in generated_records(20000)]})
    )
    for delay in (0.3, 0.6, 0.9):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "minsky",
                "sessiondb",
                "migrate",
                "to",
                "postgres",
                "--connection-string",
                postgres_url,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with psycopg.connect(postgres_url) as conn:
            exists = conn.execute("SELECT to_regclass('sessions') IS NOT NULL").fetchone()
            count = conn.execute("SELECT count(*) FROM sessions").fetchone()[0] if exists and exists[0] else 0
        assert count in (0, 20000)
        if count:
            break
    done = run_minsky(
        "sessiondb",
        "migrate",
        "to",
        "postgres",
        "--connection-string",
        postgres_url,
        "--on-conflict",
        "overwrite",
        "--verify",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verificationResult"]["targetCount"] == 20000


def test_terminated_backend_mid_migration_is_a_clean_error(postgres_url: str, state_dir: Path) -> None:
    from minsky.codec import record_to_dict
    from minsky.testing.records import generated_records

    state_dir.mkdir(parents=True)
    (state_dir / "session-db.json").write_text(
        json.dumps({"sessions": [record_to_dict(r) for r in generated_records(30000)]})
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "minsky", "sessiondb", "migrate", "to", "postgres", "--connection-string", postgres_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    import time

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        deadline = time.monotonic() + 30
        killed = False
        while time.monotonic() < deadline and proc.poll() is None and not killed:
            rows = admin.execute(
                # Only this test's database: other runs on the same server are not ours to kill.
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'minsky' "
                "AND datname = current_database() AND state = 'active' AND query ILIKE 'COPY%'"
            ).fetchall()
            for (pid,) in rows:
                killed = bool(admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0])
            time.sleep(0.01)
    _out, err = proc.communicate(timeout=60)
    if killed:
        assert proc.returncode == 5, err
        assert "connection lost" in err and "nothing was committed" in err and "Traceback" not in err
        with psycopg.connect(postgres_url) as conn:
            exists = conn.execute("SELECT to_regclass('sessions') IS NOT NULL").fetchone()[0]
            count = conn.execute("SELECT count(*) FROM sessions").fetchone()[0] if exists else 0
        assert count == 0
    else:  # the migration finished before we caught it: it must then be complete
        assert proc.returncode == 0, err
        print("note: the migration finished before pg_terminate_backend caught it")
    again = run_minsky(
        "sessiondb",
        "migrate",
        "to",
        "postgres",
        "--connection-string",
        postgres_url,
        "--on-conflict",
        "overwrite",
        "--verify",
    )
    assert again.returncode == 0, again.stderr


def test_canary_password_absent_from_successful_runs_and_backups(
    postgres_url: str, tmp_path: Path, state_dir: Path
) -> None:
    """A role that logs in with the canary: reports, status, logs and backups never show it."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "DROP OWNED BY minsky_canary"
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'minsky_canary'").fetchone()
            else "SELECT 1"
        )
        conn.execute("DROP ROLE IF EXISTS minsky_canary")
        conn.execute(f"CREATE ROLE minsky_canary LOGIN PASSWORD '{CANARY}'")
        conn.execute("GRANT ALL ON SCHEMA public TO minsky_canary")
    p = conninfo_to_dict(postgres_url)
    url = f"postgresql://minsky_canary:{quote(CANARY, safe='')}@{p.get('host')}:{p.get('port', 5432)}/{p['dbname']}"
    state_dir.mkdir(parents=True)
    (state_dir / "session-db.json").write_text(json.dumps({"sessions": SAMPLE_DICTS}))
    env = {"MINSKY_LOG_LEVEL": "debug"}
    backups = tmp_path / "backups"
    outputs = []
    for args in (
        [
            "sessiondb",
            "migrate",
            "to",
            "postgres",
            "--connection-string",
            url,
            "--backup",
            str(backups),
            "--verify",
            "--json",
        ],
        ["--debug", "sessiondb", "migrate", "to", "postgres", "--connection-string", url, "--dry-run"],
        [
            "sessiondb",
            "migrate",
            "to",
            "json",
            "--from",
            "postgres",
            "--connection-string",
            url,
            "--json-path",
            str(tmp_path / "x.json"),
            "--backup",
            str(backups),
            "--json",
        ],
    ):
        done = run_minsky(*args, env=env)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout + done.stderr)
    env_status = {**env, "MINSKY_SESSIONDB_BACKEND": "postgres", "MINSKY_POSTGRES_URL": url}
    for args in (
        ["sessiondb", "migrate", "status", "--json"],
        ["sessiondb", "test-connection", "--json"],
        ["config", "show"],
        ["session", "list", "--json"],
    ):
        done = run_minsky(*args, env=env_status)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout + done.stderr)
    assert "minsky_canary" in outputs[0]
    assert not any(_leaks(text) for text in outputs)
    files = [f for f in tmp_path.rglob("*") if f.is_file()] + [f for f in state_dir.rglob("*") if f.is_file()]
    assert len([f for f in files if f.name.startswith("session-backup-")]) == 2
    assert not any(_leaks(f.read_text(errors="replace")) for f in files)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS sessions, minsky_schema_migrations")
        conn.execute("DROP OWNED BY minsky_canary")
        conn.execute("DROP ROLE minsky_canary")


def test_wrong_password_is_refused_without_leaking_it(
    password_server: tuple[str, int], state_dir: Path, tmp_path: Path, isolated_home: Path
) -> None:
    """A server that checks passwords: the canary is refused and appears nowhere, whichever way it came."""
    from pgserver import PASSWORD, USER

    host, port = password_server
    enc = quote(CANARY, safe="")
    ways = {
        "uri-userinfo": (f"postgresql://{USER}:{enc}@{host}:{port}/postgres", {}),
        "uri-query": (f"postgresql://{USER}@{host}:{port}/postgres?password={enc}", {}),
        "keyword": (f"host={host} port={port} dbname=postgres user={USER} password='{CANARY}'", {}),
        "pgpassword": (f"postgresql://{USER}@{host}:{port}/postgres", {"PGPASSWORD": CANARY}),
    }
    state_dir.mkdir(parents=True)
    (state_dir / "session-db.json").write_text(json.dumps({"sessions": SAMPLE_DICTS}))
    config = isolated_home / ".config" / "minsky" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[sessiondb]\nconnectionString = "${MINSKY_CANARY_URL}"\n')
    scenarios = 0
    for way, (url, env) in [*ways.items(), ("toml-var", (None, {}))]:
        if way == "toml-var":
            env = {"MINSKY_CANARY_URL": ways["uri-userinfo"][0]}
            target: list[str] = []
            selected = {**env, "MINSKY_SESSIONDB_BACKEND": "postgres"}
        else:
            target = ["--connection-string", str(url)]
            selected = {**env, "MINSKY_SESSIONDB_BACKEND": "postgres", "MINSKY_POSTGRES_URL": str(url)}
        for args, run_env in (
            (["sessiondb", "migrate", "to", "postgres", *target, "--json", "--backup", str(tmp_path / "b")], env),
            (
                ["--debug", "sessiondb", "migrate", "to", "postgres", *target, "--verify"],
                {**env, "MINSKY_LOG_LEVEL": "debug"},
            ),
            (["sessiondb", "test-connection", "--json"], selected),
            (["session", "list"], selected),
        ):
            done = run_minsky(*args, env=run_env, timeout=60)
            scenarios += 1
            assert done.returncode == 5, (way, args, done.stderr)
            assert "authentication failed" in done.stderr, done.stderr
            assert not _leaks(done.stdout + done.stderr), (way, args, done.stdout, done.stderr)
    assert scenarios >= 20
    for path in [*tmp_path.rglob("*"), *state_dir.rglob("*")]:
        if path.is_file():
            assert not _leaks(path.read_text(errors="replace")), path
    # And the right password works, so the refusals above were about the password.
    good = f"postgresql://{USER}:{quote(PASSWORD, safe='')}@{host}:{port}/postgres"
    ok = run_minsky("sessiondb", "migrate", "to", "postgres", "--connection-string", good, "--verify")
    assert ok.returncode == 0, ok.stderr


def test_missing_privileges_and_ssl_failures_are_explained(
    password_server: tuple[str, int], postgres_server_url: str, state_dir: Path
) -> None:
    import psycopg

    from pgserver import PASSWORD, USER

    host, port = password_server
    admin_url = f"postgresql://{USER}:{quote(PASSWORD, safe='')}@{host}:{port}/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS locked_down")
        conn.execute("CREATE DATABASE locked_down")
        conn.execute("DROP ROLE IF EXISTS minsky_reader")
        conn.execute("CREATE ROLE minsky_reader LOGIN PASSWORD 'reader-pw'")
    state_dir.mkdir(parents=True)
    (state_dir / "session-db.json").write_text(json.dumps({"sessions": SAMPLE_DICTS}))
    url = f"postgresql://minsky_reader:reader-pw@{host}:{port}/locked_down"
    done = run_minsky("sessiondb", "migrate", "to", "postgres", "--connection-string", url)
    assert done.returncode == 4, done.stderr
    assert "permission denied" in done.stderr and "GRANT" in done.stderr and "reader-pw" not in done.stderr
    require_ssl = make_conninfo(postgres_server_url, sslmode="require")
    ssl = run_minsky(
        "session", "list", env={"MINSKY_SESSIONDB_BACKEND": "postgres", "MINSKY_POSTGRES_URL": require_ssl}
    )
    assert ssl.returncode == 5 and "SSL" in ssl.stderr and "Traceback" not in ssl.stderr


def test_fail_into_an_empty_table_copies_straight_in_and_a_late_name_aborts_it(postgres_url: str) -> None:
    """``fail`` into an empty table COPYs into the table itself (no staging): a session another
    writer commits meanwhile under a name the copy brings is the conflict, and nothing is written."""
    from minsky.testing.records import generated_records
    from minsky_backend_postgres.store import PostgresStore

    ours, other = PostgresStore(postgres_url), PostgresStore(postgres_url)
    other.insert(generated_records(1, "seed")[0])  # creates the schema
    other.delete("seed-000000")
    records = generated_records(4)
    try:
        with pytest.raises(ConflictError) as info, ours.bulk_writer(on_conflict="fail") as writer:
            assert type(writer).__name__ == "_DirectCopyWriter"
            writer.write(records[:2])
            other.insert(records[3])  # committed while the copy's transaction is open
            writer.write(records[2:])
        assert "'gen-000003'" in str(info.value) and "nothing was written" in str(info.value)
        assert [r.session for r in other.read()] == ["gen-000003"]
        with ours.bulk_writer(on_conflict="fail") as writer:  # not empty now: staged, names every conflict
            assert type(writer).__name__ == "_CopyWriter"
    finally:
        ours.close()
        other.close()


def test_one_copy_spans_batches_and_a_failure_in_any_of_them_writes_nothing(postgres_url: str) -> None:
    """The direct writer's COPY spans several batches: a repeated name sent in an earlier batch
    is still named when the server refuses it, a record refused while encoding ends the COPY
    without writing anything, and the store is usable afterwards."""
    from minsky.codec import UnrepresentableError
    from minsky.testing.records import generated_records
    from minsky_backend_postgres import store as pg_store
    from minsky_backend_postgres.store import PostgresStore

    ours = PostgresStore(postgres_url)
    ours.insert(generated_records(1, "seed")[0])  # creates the schema
    ours.delete("seed-000000")
    records = generated_records(6)
    try:
        with pytest.raises(ConflictError) as info, ours.bulk_writer(on_conflict="fail") as writer:
            assert type(writer).__name__ == "_DirectCopyWriter"
            writer.write(records[:3])
            writer.write([records[4], records[1], records[5]])  # gen-000001 again, one batch later
        assert "'gen-000001'" in str(info.value)
        assert list(ours.read()) == []
        bad = record_from_dict({"session": "bad", "value": loads("NaN")})
        with pytest.raises(UnrepresentableError), ours.bulk_writer(on_conflict="fail") as writer:
            writer.write(records[:3])
            writer.write([records[3], bad])
        assert list(ours.read()) == []
        assert pg_store.COPY_ROWS > 2 * 3  # (the batches above were one COPY)
        with ours.bulk_writer(on_conflict="fail") as writer:
            writer.write(records[:3])
            writer.write(records[3:])
        assert [r.session for r in ours.read()] == [r.session for r in records]
    finally:
        ours.close()


def test_a_refusal_mid_copy_names_the_row_the_server_refused(postgres_url: str) -> None:
    """Another unique index on the table (someone else's): the session named is the row the
    server refused (its COPY line), not a session whose name merely appears in the detail."""
    from minsky.errors import StoreError
    from minsky_backend_postgres.store import PostgresStore

    ours = PostgresStore(postgres_url)
    ours.insert(record_from_dict({"session": "seed", "taskId": "seed"}))  # creates the schema
    ours.delete("seed")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE UNIQUE INDEX other_unique_task ON sessions (task_id)")
    # "777" is a session's name and, later, the task both 'n-0001' and 'n-2500' carry.
    records = [record_from_dict({"session": "777", "taskId": "#1"})]
    records += [record_from_dict({"session": f"n-{i:04d}", "taskId": f"#{i + 2}"}) for i in range(3000)]
    records[2] = record_from_dict({"session": "n-0001", "taskId": "777"})
    records[2501] = record_from_dict({"session": "n-2500", "taskId": "777"})
    try:
        with pytest.raises(StoreError) as info, ours.bulk_writer(on_conflict="fail") as writer:
            assert type(writer).__name__ == "_DirectCopyWriter"
            for start in range(0, len(records), 1000):
                writer.write(records[start : start + 1000])
        assert "'n-2500'" in str(info.value) and "'777'" not in str(info.value).split("Key")[0], str(info.value)
        assert list(ours.read()) == []
    finally:
        ours.close()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("DROP INDEX IF EXISTS other_unique_task")


_TEXT = st.text(alphabet=st.sampled_from("ab\\\t\n\r\x00é\u2028 N"), max_size=6)
_CELL = st.none() | _TEXT | st.integers() | st.booleans()


@settings(max_examples=400, deadline=None)
@given(row=st.lists(_CELL, min_size=1, max_size=16).map(tuple))
def test_the_generated_copy_line_is_the_loops_line(row: tuple[object, ...]) -> None:
    """``schema._copy_liner``'s straight-line code gives what ``_copy_line_of``'s loop gives
    (escapes, NULLs, NUL, a cell that is not text), byte for byte."""
    from minsky_backend_postgres import schema

    assert schema._copy_liner(len(row))(row) == schema._copy_line_of(row)


def test_the_generated_copy_line_keeps_a_str_subclass_to_the_loop() -> None:
    from minsky_backend_postgres import schema

    class Text(str):
        pass

    row = ("a", Text("b"), None)
    assert schema._copy_liner(3)(row) is None is schema._copy_line_of(row)
