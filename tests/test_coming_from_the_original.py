"""A user of the original Minsky arrives: `migrate status` recognises their stores and says what
to run; their `config.yaml` files are noticed and `minsky config import` turns them into TOML."""

from __future__ import annotations

import json
import sqlite3
import stat
import tomllib
from pathlib import Path

import pytest

from conftest import SHARED, run_minsky

ORIGINAL = SHARED / "fixtures" / "original"
SQLITE_LAYOUTS = sorted(path.stem for path in (ORIGINAL / "sqlite").glob("*.sql"))
PASSWORD = "s3cr#et:pw"  # a test password: it must never be printed or written
GLOBAL_YAML = f"""version: 1
# Session database: the team server
sessiondb:
  backend: postgres   # was sqlite until June
  postgres:
    connection_string: "postgresql://team:{PASSWORD.replace(":", "%3A")}@db.example.com:5432/minsky"
  base_dir: ~/.local/state/minsky
  sqlite:
    path: ~/.local/state/minsky/sessions.db
github:
  token: ghp_notarealtoken1234567890
ai:
  providers:
    openai: {{apiKey: "sk-notarealkey"}}
"""


def build_sqlite(path: Path, layout: str) -> None:
    conn = sqlite3.connect(path)
    conn.executescript((ORIGINAL / "sqlite" / f"{layout}.sql").read_text("utf-8"))
    conn.commit()
    conn.close()


@pytest.mark.parametrize("layout", SQLITE_LAYOUTS)
def test_status_recognises_each_original_sqlite_era(minsky_json, state_dir: Path, layout: str) -> None:  # type: ignore[no-untyped-def]
    state_dir.mkdir(parents=True)
    db = state_dir / "sessions.db"
    build_sqlite(db, layout)
    before = db.read_bytes()
    status = minsky_json("sessiondb", "migrate", "status")
    found = [s for s in status["originalStores"] if s["path"] == str(db)]
    rows = len((ORIGINAL / "expected" / f"{layout}.jsonl").read_text("utf-8").splitlines())
    assert len(found) == 1 and found[0]["layout"].startswith(layout)
    assert found[0]["original"] is True and found[0]["sessions"] == rows
    advice = [a for a in status["recommendations"] if str(db) in a]
    assert any(f"minsky sessiondb migrate to json --from sqlite --sqlite-path {db}" in a for a in advice), advice
    assert db.read_bytes() == before and not list(state_dir.glob("sessions.db-*")), "status only looks"


def test_status_on_the_original_json_store_says_what_to_run(minsky, minsky_json, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    state_dir.mkdir(parents=True)
    store = state_dir / "session-db.json"
    store.write_bytes((ORIGINAL / "json" / "session-db.json").read_bytes())
    status = minsky_json("sessiondb", "migrate", "status")
    assert status["sessions"] == 9
    [found] = status["originalStores"]
    assert found == {
        "path": str(store),
        "backend": "json",
        "layout": "the original's bare array",
        "original": True,
        "sessions": 9,
        "repeatedNames": {"task#064": 2},
    }
    text = minsky("sessiondb", "migrate", "status").stdout
    assert "minsky sessiondb migrate to sqlite --backup ./backups --verify --set-default" in text
    assert "'task#064' (2 copies)" in text and "--on-duplicate first|last|rename" in text
    assert store.read_bytes() == (ORIGINAL / "json" / "session-db.json").read_bytes()


def test_a_minsky_store_is_not_called_the_originals(minsky_json, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    minsky_json("session", "start", "mine", "--repo", "https://example.org/r.git")
    status = minsky_json("sessiondb", "migrate", "status")
    assert [s["original"] for s in status["originalStores"]] == [False]
    assert not any("original Minsky" in a for a in status["recommendations"])


@pytest.fixture
def original_config(isolated_home: Path) -> Path:
    path = isolated_home / ".config" / "minsky" / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(GLOBAL_YAML)
    return path


def test_every_command_notes_an_unimported_yaml_until_it_is_imported(original_config: Path, state_dir: Path) -> None:
    toml_path = original_config.with_name("config.toml")
    listed = run_minsky("session", "list")
    assert listed.returncode == 0
    note = f"minsky: note: {original_config} holds the original Minsky's settings"
    assert [line for line in listed.stderr.splitlines() if line.startswith("minsky: note:")] == [
        f"{note}, which minsky does not read; `minsky config import` writes them to {toml_path}"
    ]
    status = run_minsky("sessiondb", "migrate", "status", "--json")
    assert any(str(original_config) in a for a in json.loads(status.stdout)["recommendations"])
    imported = run_minsky("config", "import")
    assert imported.returncode == 0, imported.stderr
    for result in (listed, status, imported):
        assert PASSWORD not in result.stdout + result.stderr
        assert "ghp_notarealtoken" not in result.stdout + result.stderr
    assert "export MINSKY_POSTGRES_PASSWORD=" in imported.stdout
    assert "minsky: note:" not in run_minsky("session", "list").stderr


def test_config_import_writes_the_equivalent_toml_without_secrets(minsky, original_config: Path) -> None:  # type: ignore[no-untyped-def]
    toml_path = original_config.with_name("config.toml")
    dry = minsky("config", "import", "--dry-run")
    assert dry.exit_code == 0 and not toml_path.exists()
    result = minsky("config", "import", "--json")
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)["files"]
    text = toml_path.read_text("utf-8")
    assert text == report["toml"] and text in dry.stdout
    assert stat.S_IMODE(toml_path.stat().st_mode) == 0o600
    assert tomllib.loads(text) == {
        "sessiondb": {
            "backend": "postgres",
            "baseDir": "~/.local/state/minsky",
            "connectionString": "postgresql://team:${MINSKY_POSTGRES_PASSWORD}@db.example.com:5432/minsky",
        }
    }
    assert report["notImported"] == ["ai", "github", "version"]
    assert report["setEnvironment"] == ["MINSKY_POSTGRES_PASSWORD"]
    assert "#   line 2: Session database: the team server" in text
    assert "#   line 4: was sqlite until June" in text
    assert "sessiondb.sqlite.path names the sqlite file ~/.local/state/minsky/sessions.db" in text
    everything = text + result.output
    for secret in (PASSWORD, PASSWORD.replace(":", "%3A"), "ghp_notarealtoken", "sk-notarealkey"):
        assert secret not in everything
    # minsky now reads it: the password comes from the variable the user was told to set.
    shown = minsky("config", "get", "sessiondb.connectionString")
    assert "MINSKY_POSTGRES_PASSWORD" in shown.stdout and PASSWORD not in shown.stdout
    again = minsky("config", "import")
    assert again.exit_code == 3 and "already exist" in again.stderr
    assert toml_path.read_text("utf-8") == text, "an existing TOML file is never overwritten"


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("sessiondb:\n  backend: sqlite\n  dbPath: /data/s.db\n", {"backend": "sqlite", "dbPath": "/data/s.db"}),
        (
            "sessiondb:\n  backend: sqlite\n  sqlite:\n    path: '~/s.db'\n  baseDir: null\n  dbPath: null\n",
            {"backend": "sqlite", "dbPath": "~/s.db"},
        ),
        (
            "sessiondb: {backend: json-file}\npostgres:\n  connection_string: postgresql://u@h/db\n",
            {"backend": "json", "connectionString": "postgresql://u@h/db"},
        ),
        (
            "sessiondb:\n  backend: postgres\n  connectionString: 'host=h user=u password=''p w'' dbname=d'\n",
            # Still quoted: the variable may hold a space, as this password does.
            {
                "backend": "postgres",
                "connectionString": "host=h user=u password='${MINSKY_POSTGRES_PASSWORD}' dbname=d",
            },
        ),
        (
            "sessiondb:\n  backend: postgres\n  connectionString: ${TEAM_DB_URL}\n",
            {"backend": "postgres", "connectionString": "${TEAM_DB_URL}"},
        ),
        ("# only a comment\n", {}),
    ],
)
def test_config_import_maps_the_originals_shapes(minsky, tmp_path: Path, yaml_text: str, expected: dict) -> None:  # type: ignore[no-untyped-def,type-arg]
    source = tmp_path / "proj" / ".minsky" / "config.yaml"
    source.parent.mkdir(parents=True)
    source.write_text(yaml_text)
    result = minsky("config", "import", "--from", str(source))
    assert result.exit_code == 0, result.output
    assert tomllib.loads(source.with_name("config.toml").read_text("utf-8")).get("sessiondb", {}) == expected
    assert "p w" not in result.output


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("sessiondb: [unclosed\n", "invalid YAML in"),
        ("- a\n- b\n", "expected a mapping of settings"),
        (b"sessiondb:\n  backend: \xff\n", "is not UTF-8"),
    ],
)
def test_a_bad_yaml_file_is_one_line_and_writes_nothing(minsky, tmp_path: Path, yaml_text, message: str) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "config.yaml"
    source.write_bytes(yaml_text if isinstance(yaml_text, bytes) else yaml_text.encode())
    result = minsky("config", "import", "--from", str(source))
    assert result.exit_code == 3
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "config.toml").exists()


def test_nothing_to_import_is_said_plainly(minsky) -> None:  # type: ignore[no-untyped-def]
    result = minsky("config", "import")
    assert result.exit_code == 3 and "no config.yaml of the original Minsky found" in result.stderr


def test_the_corpus_is_there() -> None:
    assert len(SQLITE_LAYOUTS) == 5, f"shared fixtures not found at {ORIGINAL}: set MINSKY_SHARED_DIR"
