"""The backend contract suite, for built-in and third-party backends alike.

A backend author writes::

    from minsky.testing import StoreContract

    class TestMyBackend(StoreContract):
        @pytest.fixture
        def make_store(self, tmp_path):
            return lambda: my_backend.SPEC.open({"path": tmp_path / "db"})

and runs pytest: every rule a store must keep is checked (see ``contract.py``).
``make_store`` must return a factory; each call opens the *same* store afresh
(a new connection or handle), as another process would.
"""

from minsky.testing.contract import StoreContract
from minsky.testing.records import sample_records

__all__ = ["StoreContract", "sample_records"]
