"""The optional capabilities of issue 12, checked for every store that has them: the moved
mark with its write lock (``LockableStore``) and the conflict rule at commit time
(``ConflictAwareStore``). A store without one skips its tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import attrs
import pytest

from minsky.backend import LockableStore, MovedMark, Store, accepts_on_conflict
from minsky.codec import canonical
from minsky.errors import ConflictError, MinskyError, MovedError, StoreError
from minsky.testing.records import generated_records

MARK = MovedMark(
    "sqlite", "/elsewhere/sessions.db", "2026-01-01T00:00:00Z", "minsky config set sessiondb.backend sqlite"
)


def _load(store: Store, records: list) -> None:  # type: ignore[type-arg]
    with store.bulk_writer() as writer:
        writer.write(records)


def _state(store: Store) -> list[bytes]:
    return [canonical(record) for record in store.read()]


class LiveStoreContract:
    def test_a_moved_store_refuses_every_writer(self, store: Store) -> None:
        if not isinstance(store, LockableStore):
            pytest.skip("no write_lock()/moved(): optional")
        _load(store, generated_records(2))
        with store.write_lock() as lock:
            lock.mark_moved(MARK)
        assert store.moved() == MARK
        before = _state(store)
        writes: list[Callable[[], object]] = [
            lambda: store.insert(generated_records(1, "new")[0]),
            lambda: store.update("gen-000000", lambda r: attrs.evolve(r, branch="x")),
            lambda: store.delete("gen-000001"),
        ]
        for write in writes:
            with pytest.raises(MovedError) as info:
                write()
            assert "/elsewhere/sessions.db" in str(info.value) and "\n" not in str(info.value)
        assert _state(store) == before, "a refused writer changed the store"
        with store.bulk_writer() as writer:  # a migration may move back into a marked store
            writer.write(generated_records(1, "back"))
        with store.write_lock() as lock:
            lock.mark_moved(None)
        assert store.moved() is None
        store.insert(generated_records(1, "new")[0])

    def test_a_writer_waiting_for_the_lock_sees_the_mark(self, store: Store, make_store: Callable[[], Store]) -> None:
        if not isinstance(store, LockableStore):
            pytest.skip("no write_lock()/moved(): optional")
        _load(store, generated_records(1))
        outcome: list[BaseException | None] = []

        def writer() -> None:
            other = make_store()
            try:
                other.insert(generated_records(1, "late")[0])
                outcome.append(None)
            except MinskyError as exc:
                outcome.append(exc)
            finally:
                other.close()

        with store.write_lock() as lock:
            thread = threading.Thread(target=writer)
            thread.start()
            time.sleep(0.3)  # time enough to write, were the lock not keeping it waiting
            lock.mark_moved(MARK)
        thread.join()
        assert len(outcome) == 1 and isinstance(outcome[0], MovedError), f"the waiting writer got {outcome}"
        assert [r.session for r in store.read()] == ["gen-000000"]

    def test_the_conflict_rule_holds_at_commit(self, store: Store) -> None:
        if not accepts_on_conflict(store):
            pytest.skip("bulk_writer() takes no on_conflict: optional")
        _load(store, generated_records(1))
        kept = _state(store)
        theirs = [attrs.evolve(generated_records(1)[0], branch="theirs"), *generated_records(1, "b")]
        with pytest.raises(ConflictError), store.bulk_writer(on_conflict="fail") as writer:  # type: ignore[call-arg]
            writer.write(theirs)
        assert _state(store) == kept, "fail wrote something"
        with store.bulk_writer(on_conflict="skip") as writer:  # type: ignore[call-arg]
            writer.write(theirs)
        assert writer.conflicts == ["gen-000000"]  # type: ignore[attr-defined]
        got = store.get("gen-000000")
        assert got is not None and got.branch != "theirs" and store.get("b-000000") is not None
        with store.bulk_writer(on_conflict="overwrite") as writer:  # type: ignore[call-arg]
            writer.write(theirs[:1])
        got = store.get("gen-000000")
        assert got is not None and got.branch == "theirs"

    @pytest.mark.parametrize("before", [0, 1], ids=["new store", "store holding a session"])
    def test_a_name_twice_in_one_write_is_never_dropped_silently(self, store: Store, before: int) -> None:
        """A name given twice in one write (the engine removes duplicates first; this is its
        backstop). The second copy is a conflict like any other, or the whole write is
        refused: never one copy kept and both counted written."""
        if not accepts_on_conflict(store):
            pytest.skip("bulk_writer() takes no on_conflict: optional")
        if before:
            _load(store, generated_records(before, "held"))
        held = _state(store)
        first, other = generated_records(2)
        again = attrs.evolve(first, branch="again")
        for split in (False, True):  # in one batch, and across two
            batches = [[first, other], [again]] if split else [[first, other, again]]
            with pytest.raises((ConflictError, StoreError)), store.bulk_writer(on_conflict="fail") as writer:  # type: ignore[call-arg]
                for batch in batches:
                    writer.write(batch)
            assert _state(store) == held, f"fail wrote something (split={split})"
        try:
            with store.bulk_writer(on_conflict="skip") as writer:  # type: ignore[call-arg]
                writer.write([first, other, again])
        except StoreError:
            assert _state(store) == held, "a refused write wrote something"
            return
        assert writer.conflicts == [first.session]  # type: ignore[attr-defined]
        assert sorted(_state(store)) == sorted([*held, canonical(first), canonical(other)])
