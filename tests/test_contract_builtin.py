"""The built-in backends run exactly the suite third-party backends run."""

from __future__ import annotations

from pathlib import Path

import pytest

from minsky.testing import StoreContract
from minsky_backend_json import SPEC as JSON_SPEC
from minsky_backend_sqlite import SPEC as SQLITE_SPEC


class TestJsonStore(StoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path):  # type: ignore[no-untyped-def]
        return lambda: JSON_SPEC.open({"path": tmp_path / "store" / "session-db.json"})


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path):  # type: ignore[no-untyped-def]
        return lambda: SQLITE_SPEC.open({"path": tmp_path / "store" / "sessions.db"})


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def make_store(self, postgres_url: str):  # type: ignore[no-untyped-def]
        from minsky_backend_postgres import SPEC as POSTGRES_SPEC

        return lambda: POSTGRES_SPEC.open({"connection_string": postgres_url})
