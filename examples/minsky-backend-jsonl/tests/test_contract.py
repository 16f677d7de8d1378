"""All it takes to check a backend against minsky's contract."""

from pathlib import Path

import pytest

from minsky.testing import StoreContract
from minsky_backend_jsonl import SPEC


class TestJsonlStore(StoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path):  # type: ignore[no-untyped-def]
        return lambda: SPEC.open({"path": tmp_path / "sessions.jsonl"})

    def corrupt_one_record(self, store, name):  # type: ignore[no-untyped-def]
        path = Path(store.location)
        lines = path.read_text("utf-8").splitlines()
        path.write_text("\n".join(line[:20] if f'"{name}"' in line else line for line in lines) + "\n")
