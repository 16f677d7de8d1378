"""The rules every store keeps. Subclass ``StoreContract`` and give ``make_store``."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import attrs
import pytest

from minsky.backend import ChangeTokenStore, SessionFilter, Store, VerifyReport
from minsky.codec import StoreDigest, canonical, canonical_stream
from minsky.errors import ConflictError, MinskyError, NotFoundError, UsageError
from minsky.testing.live_contract import LiveStoreContract
from minsky.testing.records import generated_records, sample_records

StoreFactory = Callable[[], Store]


class _Boom(Exception):
    pass


def _load(store: Store, records: list) -> None:  # type: ignore[type-arg]
    with store.bulk_writer() as writer:
        writer.write(records)


class StoreContract(LiveStoreContract):
    @pytest.fixture
    def make_store(self) -> StoreFactory:
        raise NotImplementedError("give a make_store fixture returning a Store factory")

    def corrupt_one_record(self, store: Store, name: str) -> None:
        """Damage the stored record ``name`` behind the store's back (bytes on disk, a row…).

        Override it: the suite checks that ``verify()`` then reports the damage.
        """
        raise NotImplementedError("override corrupt_one_record to show how a record of this backend gets damaged")

    @pytest.fixture
    def store(self, make_store: StoreFactory) -> Iterator[Store]:
        store = make_store()
        yield store
        store.close()

    # -- reading ---------------------------------------------------------------

    def test_new_store_reads_empty(self, store: Store) -> None:
        assert list(store.read()) == []
        assert store.count() == 0
        assert store.get("nothing") is None

    def test_read_streams(self, store: Store) -> None:
        _load(store, generated_records(10))
        stream = store.read()
        assert isinstance(stream, Iterator), "read() must return an iterator, not a materialised list"
        assert next(stream).session == "gen-000000"

    # -- fidelity --------------------------------------------------------------

    def test_round_trip_is_byte_identical(self, store: Store, make_store: StoreFactory) -> None:
        records = sample_records()
        _load(store, records)
        back = {r.session: canonical(r) for r in make_store().read()}
        assert back == {r.session: canonical(r) for r in records}
        assert StoreDigest.of(make_store().read()).hexdigest == StoreDigest.of(records).hexdigest

    def test_falsy_and_unknown_fields_survive(self, store: Store) -> None:
        _load(store, sample_records())
        falsy = store.get("falsy-values")
        assert falsy is not None
        assert falsy.pr_approved is False and falsy.task_id == "" and falsy.branch is None
        unicode = next(r for r in store.read() if r.session.startswith("unicode"))
        assert unicode.extra["notes"] == "written by a newer minsky: keep me"
        assert unicode.extra["big"] == 123456789012345678901234567890
        assert unicode.created_at == "2025-04-10T12:00:00.000001Z"

    # -- bulk writes -----------------------------------------------------------

    def test_failed_bulk_write_leaves_nothing(self, store: Store, make_store: StoreFactory) -> None:
        with pytest.raises(_Boom), store.bulk_writer() as writer:
            writer.write(generated_records(50))
            raise _Boom
        assert make_store().count() == 0
        _load(store, generated_records(3, "kept"))
        with pytest.raises(_Boom), store.bulk_writer() as writer:
            writer.write(generated_records(50))
            raise _Boom
        assert sorted(make_store().keys()) == ["kept-000000", "kept-000001", "kept-000002"]

    def test_bulk_write_upserts(self, store: Store) -> None:
        _load(store, generated_records(5))
        changed = [attrs.evolve(r, branch="changed") for r in generated_records(5)[:2]]
        _load(store, changed + generated_records(2, "more"))
        assert store.count() == 7
        first = store.get("gen-000000")
        assert first is not None and first.branch == "changed"

    def test_change_token_moves_with_every_write(self, store: Store) -> None:
        """``change_token()`` (optional): after a read, equal or None; after any write, different or
        None. (A file store's token is None this soon after a write: its timestamps cannot tell.)"""
        if not callable(getattr(store, "change_token", None)):
            pytest.skip("no change_token(): every migration reads this store a second time")
        tokens = cast(ChangeTokenStore, store)
        _load(store, generated_records(5))
        token = tokens.change_token()
        assert sum(1 for _ in store.read()) == 5
        assert tokens.change_token() in (token, None), "a read moved the change token"
        writes: list[Callable[[], object]] = [
            lambda: store.insert(generated_records(1, "new")[0]),
            lambda: store.update("gen-000001", lambda r: attrs.evolve(r, branch="changed")),
            lambda: store.delete("gen-000002"),
            lambda: _load(store, [attrs.evolve(generated_records(1)[0], branch="bulk")]),
        ]
        for write in writes:
            before = tokens.change_token()
            write()
            after = tokens.change_token()
            assert after is None or after != before, "a write left the change token as it was"

    # -- single records ----------------------------------------------------------

    def test_insert_get_conflict(self, store: Store) -> None:
        record = sample_records()[0]
        store.insert(record)
        assert store.get(record.session) == record
        with pytest.raises(ConflictError):
            store.insert(record)
        assert store.count() == 1

    def test_update_and_delete(self, store: Store) -> None:
        store.insert(sample_records()[0])
        updated = store.update("plain", lambda r: attrs.evolve(r, ended_at="2025-01-01T00:00:00.000Z"))
        assert updated.active is False
        got = store.get("plain")
        assert got is not None and got.ended_at == "2025-01-01T00:00:00.000Z"
        with pytest.raises(NotFoundError):
            store.update("absent", lambda r: r)
        assert store.delete("plain") is True
        assert store.delete("plain") is False
        assert store.get("plain") is None

    def test_list_filters(self, store: Store) -> None:
        _load(store, sample_records())

        def names(where: SessionFilter) -> list[str]:
            return [r.session for r in store.list(where)]

        assert names(SessionFilter(task_id="102")) == ["nested-pr"]
        assert names(SessionFilter(task_id="md#101")) == ["plain"]
        assert names(SessionFilter(task_id="#123")) == [sample_records()[4].session]
        assert "ended" not in names(SessionFilter(active=True))
        assert names(SessionFilter(active=False)) == ["ended"]
        assert names(SessionFilter(repo="acme/widgets")) == ["plain", "nested-pr"]
        assert len(names(SessionFilter(limit=2, offset=1))) == 2

    # -- integrity ---------------------------------------------------------------

    def test_verify_passes_on_a_good_store(self, store: Store) -> None:
        _load(store, sample_records())
        report = store.verify()
        assert report.ok, report.problems
        assert report.checked == len(sample_records())

    def test_backup_and_restore_round_trip(self, store: Store, make_store: StoreFactory, tmp_path: Path) -> None:
        from minsky.backup import open_backup, write_backup
        from minsky.migrate import Endpoint, migrate

        records = sample_records()
        _load(store, records)
        path, digest = write_backup(
            tmp_path / "backups", store.read(), source_backend="under-test", source_location=store.location, base_dir=""
        )
        for record in records:
            assert store.delete(record.session)
        assert make_store().count() == 0
        with open_backup(path) as backup:
            backup.check()
            assert backup.digest.hexdigest == digest.hexdigest
            report = migrate(Endpoint("backup", backup), Endpoint("under-test", make_store()), verify=True)
        assert report.written == len(records) and report.verification is not None and report.verification.ok
        assert {r.session: canonical(r) for r in make_store().read()} == {r.session: canonical(r) for r in records}

    def test_native_backup_and_restore_agree_with_the_generic_ones(self, store: Store, tmp_path: Path) -> None:
        """Through the hooks, as commands call them: a native backup (if a plugin has one for
        this store) holds what the portable JSON backup holds, and each restores it all."""
        from minsky import hooks

        records = sample_records()
        _load(store, records)
        expected = {r.session: canonical(r) for r in records}
        made = [hooks.backup("under-test", store, tmp_path / "json")]
        with contextlib.suppress(UsageError):  # no native backup for this backend: the generic one is all
            made.append(hooks.backup("under-test", store, tmp_path / "native", backup_format="native"))
        for backup in made:
            assert (backup.count, backup.digest) == (len(records), StoreDigest.of(records).hexdigest), backup.format
            source = hooks.restore(backup.path, "under-test")
            assert {r.session: canonical(r) for r in source.read()} == expected, backup.format

    def test_native_verify_agrees_with_the_generic_one(self, store: Store, make_store: StoreFactory) -> None:
        """Every ``verify`` implementation passes a good store; a damaged record still fails the
        merged check (a native check never hides what the generic one finds)."""
        from minsky import hooks
        from minsky.plugins import registry

        _load(store, sample_records())
        for impl in registry().manager.hook.verify.get_hookimpls():
            if not impl.opts.get("wrapper") and not impl.opts.get("hookwrapper"):
                report = cast("VerifyReport | None", impl.function(store=store))
                assert report is None or report.ok, (impl.plugin_name, report.problems)
        self.corrupt_one_record(store, "plain")
        assert not hooks.verify(make_store()).ok

    def test_verify_reports_a_corrupted_record(self, store: Store, make_store: StoreFactory) -> None:
        _load(store, sample_records())
        self.corrupt_one_record(store, "plain")
        report = make_store().verify()
        assert not report.ok
        assert report.problems and all("\n" not in problem for problem in report.problems)

    def test_canonical_fast_path_agrees_with_read(self, store: Store, make_store: StoreFactory) -> None:
        _load(store, sample_records())
        fresh = make_store()
        assert list(canonical_stream(fresh)) == [canonical(r) for r in make_store().read()]

    def test_concurrent_writers_lose_nothing(self, make_store: StoreFactory) -> None:
        errors: list[BaseException] = []

        def worker(n: int) -> None:
            store = make_store()
            try:
                for record in generated_records(15, f"t{n}"):
                    store.insert(record)
            except BaseException as exc:
                errors.append(exc)
            finally:
                store.close()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert make_store().count() == 60

    def test_errors_are_minsky_errors(self, store: Store) -> None:
        store.insert(sample_records()[0])
        with pytest.raises(MinskyError) as info:
            store.insert(sample_records()[0])
        assert "\n" not in str(info.value)
        assert "plain" in str(info.value)
