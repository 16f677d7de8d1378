"""The built-in backends run exactly the suite third-party backends run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from minsky.testing import StoreContract
from minsky_backend_json import SPEC as JSON_SPEC
from minsky_backend_sqlite import SPEC as SQLITE_SPEC


class TestJsonStore(StoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path):  # type: ignore[no-untyped-def]
        return lambda: JSON_SPEC.open({"path": tmp_path / "store" / "session-db.json"})

    def corrupt_one_record(self, store, name):  # type: ignore[no-untyped-def]
        path = Path(store.location)
        doc = json.loads(path.read_text("utf-8"))
        doc["sessions"] = [{"sessionn": name} if s["session"] == name else s for s in doc["sessions"]]
        path.write_text(json.dumps(doc))


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path):  # type: ignore[no-untyped-def]
        return lambda: SQLITE_SPEC.open({"path": tmp_path / "store" / "sessions.db"})

    def corrupt_one_record(self, store, name):  # type: ignore[no-untyped-def]
        with sqlite3.connect(store.location) as conn:
            conn.execute("UPDATE sessions SET record = '{\"truncated' WHERE session = ?", (name,))
        conn.close()


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def make_store(self, postgres_url: str):  # type: ignore[no-untyped-def]
        from minsky_backend_postgres import SPEC as POSTGRES_SPEC

        return lambda: POSTGRES_SPEC.open({"connection_string": postgres_url})

    def corrupt_one_record(self, store, name):  # type: ignore[no-untyped-def]
        import psycopg

        with psycopg.connect(self.url) as conn:
            conn.execute("UPDATE sessions SET record = '[1, 2]' WHERE session = %s", (name,))

    @pytest.fixture(autouse=True)
    def _url(self, postgres_url: str) -> None:
        self.url = postgres_url
