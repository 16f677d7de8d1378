"""A migration reads its source in a forked child (``minsky.forked``) and writes in the parent.

What the target holds must not depend on where the source was read: every original layout,
hostile records and rows a foreign writer changed give byte-identical targets either way,
and the PostgreSQL COPY lines the child makes are what ``write_row`` would have sent. A
child that dies, a parent that fails or is interrupted, and a plugin wrapping the read hook
are each handled: one line naming what happened, nothing written, no process left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minsky import forked
from minsky.codec import canonical, record_from_canonical, record_from_dict, record_to_dict
from minsky.errors import StoreError
from minsky.forked.crossing import portable as crossing_form
from minsky.migrate import Endpoint, migrate
from minsky.model import SessionRecord
from minsky.testing.records import generated_records, sample_records
from minsky_backend_json.store import JsonStore
from minsky_backend_postgres.store import PostgresStore
from minsky_backend_sqlite.store import SqliteStore
from test_original_rows import hostile_records
from test_original_sql import LAYOUTS, build

READS = ["this process", "a forked child"]


@pytest.fixture
def core_writes_only() -> Iterator[None]:
    """No plugin but core on the write hook, as on an install with no plugin: the audit example,
    installed beside the tests, wraps it (and a wrapped write gets records in their key order)."""
    from minsky.plugins import registry

    manager = registry().manager
    others = [(impl.plugin_name, impl.plugin) for impl in manager.hook.write.get_hookimpls()]
    others = [(name, plugin) for name, plugin in others if name != "minsky.builtin"]
    for _, plugin in others:
        manager.unregister(plugin)
    try:
        yield
    finally:
        for name, plugin in others:
            manager.register(plugin, name=name)


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch, core_writes_only: None) -> list[int]:
    """Every source read in a forked child, however small; the list counts the forks."""
    monkeypatch.setenv("MINSKY_FORKED_READ_MIN", "0")
    calls: list[int] = []
    real = forked.read_in_child

    def counted(*args: Any, **kwargs: Any) -> Iterator[SessionRecord]:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(forked, "read_in_child", counted)
    return calls


def read_in(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINSKY_FORKED_READ_MIN", "0" if where == "a forked child" else "off")


def no_children_left() -> bool:
    try:
        return os.waitpid(-1, os.WNOHANG) == (0, 0) and False
    except ChildProcessError:
        return True


def storable(records: Iterator[dict[str, Any]]) -> list[SessionRecord]:
    """Records every backend holds exactly (the others are rejected by name, tested elsewhere)."""
    kept, names = [], set()
    for data in records:
        name = data.get("session")
        if not isinstance(name, str) or not name or "\x00" in name or name.casefold() in names:
            continue
        record = record_from_dict(data)
        try:
            canonical(record)
        except Exception:
            continue
        names.add(name.casefold())
        kept.append(record)
    return kept


def json_target(tmp_path: Path, where: str) -> Endpoint:
    return Endpoint("json", JsonStore(tmp_path / f"{where.replace(' ', '-')}.json"))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_original_sqlite_layout_gives_the_same_target_from_a_forked_reader(
    tmp_path: Path, layout: str, monkeypatch: pytest.MonkeyPatch, forks: list[int]
) -> None:
    source = Endpoint("sqlite", SqliteStore(build(tmp_path / "original.db", layout)))
    targets = {}
    for where in READS:
        read_in(where, monkeypatch)
        for kind in ("json", "sqlite"):
            path = tmp_path / f"{kind}-{where.replace(' ', '-')}"
            store = JsonStore(path) if kind == "json" else SqliteStore(path)
            report = migrate(source, Endpoint(kind, store), verify=True)
            assert report.ok, report.to_json()
            targets[kind, where] = path.read_bytes() if kind == "json" else _sqlite_rows(path)
    assert forks, "no read went through a forked child"
    for kind in ("json", "sqlite"):
        assert targets[kind, READS[0]] == targets[kind, READS[1]], (layout, kind)


def _sqlite_rows(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT * FROM sessions ORDER BY session").fetchall()
    finally:
        conn.close()


def _pg_rows(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT s::text FROM sessions s ORDER BY session")]


HOSTILE_TEXT = ["tab\there", "new\nline", "cr\rlf\r\n", "back\\slash", "\\N", "\\.", "end\\", "ü\t✓\n🚀", " \\t "]


def text_heavy_records() -> list[SessionRecord]:
    """Every column minsky writes holding what text-format COPY must escape."""
    out = []
    for i, text in enumerate(HOSTILE_TEXT):
        out.append(
            record_from_dict(
                {
                    "session": f"s{i}-{text}",
                    "repoName": text,
                    "repoUrl": text,
                    "createdAt": "2025-01-20T10:30:00.000Z",
                    "taskId": text,
                    "branch": text,
                    "prBranch": text,
                    "backendType": text,
                    "prState": {"branchName": text, "exists": True},
                    "pullRequest": {"number": i, "title": text},
                    "github": {"owner": text},
                    "remote": {"url": text},
                    "notes": text,
                }
            )
        )
    return out


@pytest.mark.postgres
@pytest.mark.parametrize("on_conflict", ["fail", "overwrite"])  # one COPY into the table / COPY into staging
def test_the_copy_lines_a_forked_reader_makes_are_what_write_row_would_send(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, forks: list[int], on_conflict: str
) -> None:
    records = storable(
        iter([*map(record_to_dict, text_heavy_records()), *hostile_records(), *map(record_to_dict, sample_records())])
    )
    source = SqliteStore(tmp_path / "source.db")
    with source.bulk_writer() as writer:
        writer.write(records)
    from psycopg.conninfo import make_conninfo

    rows = {}
    for where in READS:
        read_in(where, monkeypatch)
        name = f"forked_{where.split()[-1]}_{os.getpid()}"
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}"')
        url = make_conninfo(postgres_url, dbname=name)
        try:
            target = Endpoint("postgres", PostgresStore(url))
            report = migrate(Endpoint("sqlite", source), target, on_conflict=on_conflict, verify=True)
            assert report.ok and report.written == len(records), report.to_json()
            rows[where] = _pg_rows(url)
        finally:
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert forks
    assert rows[READS[0]] == rows[READS[1]]
    assert len(rows[READS[1]]) == len(records)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(min_value=-(2**70), max_value=2**70)
            | st.floats(allow_nan=False, allow_infinity=False)  # readers make non-finite ones Unrepresentable
            | st.text(max_size=10),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
            max_leaves=8,
        ),
        max_size=6,
    )
)
def test_a_record_rebuilt_from_what_the_child_sends_is_the_record_read(data: dict[str, Any]) -> None:
    record = record_from_dict({**data, "session": "s"})
    portable = crossing_form(record)
    import pickle

    item = pickle.loads(pickle.dumps(portable))
    if len(item) > 2:
        rebuilt = record_from_canonical(*item)
        assert item[2] == hashlib.sha256(canonical(record)).digest()
    else:
        rebuilt = record_from_dict(item[0], canonical_form=item[1])
    # The dict, key order included at every level, and the canonical form (or its refusal).
    assert json.dumps(record_to_dict(rebuilt), default=repr) == json.dumps(record_to_dict(record), default=repr)
    assert repr(record_to_dict(rebuilt)) == repr(record_to_dict(record))
    try:
        expected: object = canonical(record)
    except Exception as exc:
        expected = type(exc)
    try:
        got: object = canonical(rebuilt)
    except Exception as exc:
        got = type(exc)
    assert got == expected
    assert rebuilt.session == record.session and rebuilt.task_id == record.task_id


class Dying(SqliteStore):
    """A source whose reading process is killed outright after ``after`` records."""

    after = 3

    def read(self) -> Iterator[SessionRecord]:
        for n, record in enumerate(super().read()):
            if n == self.after and os.getpid() != PARENT:
                os.kill(os.getpid(), signal.SIGKILL)
            yield record


PARENT = os.getpid()


def sqlite_source(path: Path, records: list[SessionRecord], kind: type[SqliteStore] = SqliteStore) -> SqliteStore:
    store = SqliteStore(path)
    with store.bulk_writer() as writer:
        writer.write(records)
    return kind(path)


@pytest.mark.parametrize("target_kind", ["json", "sqlite"])
def test_a_reader_process_killed_midway_is_one_error_and_nothing_is_written(
    tmp_path: Path, forks: list[int], target_kind: str
) -> None:
    stores = tmp_path / "stores"
    stores.mkdir()
    source = sqlite_source(stores / "s.db", generated_records(50), Dying)
    target_path = stores / f"target.{target_kind}"
    target = JsonStore(target_path) if target_kind == "json" else SqliteStore(target_path)
    with pytest.raises(StoreError) as caught:
        migrate(Endpoint("sqlite", source), Endpoint(target_kind, target))
    assert forks
    message = str(caught.value)
    assert "ended before the end (killed by signal 9)" in message and str(source.path) in message
    assert "\n" not in message
    assert not target_path.exists()
    # A reader killed outright leaves SQLite's WAL beside the source, as any killed reader does.
    left = {p.name for p in stores.iterdir()} - {"s.db-wal", "s.db-shm", "target.json.lock"}
    assert left == {"s.db"}, f"a temp file was left behind: {left}"
    assert [r.session for r in SqliteStore(source.path).read()] == [r.session for r in generated_records(50)]
    assert no_children_left()


class Refusing(SqliteStore):
    """A source that fails, with a store error of its own, after ``after`` records."""

    after = 40

    def read(self) -> Iterator[SessionRecord]:
        for n, record in enumerate(super().read()):
            if n == self.after:
                raise StoreError(f"{self.path}: row {n} is damaged", hint="repair it")
            yield record


@pytest.mark.parametrize("where", READS)
def test_a_read_error_in_the_child_is_the_same_error_in_the_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    read_in(where, monkeypatch)
    source = sqlite_source(tmp_path / "s.db", generated_records(100), Refusing)
    target = tmp_path / "t.json"
    with pytest.raises(StoreError) as caught:
        migrate(Endpoint("sqlite", source), Endpoint("json", JsonStore(target)))
    assert type(caught.value) is StoreError
    assert str(caught.value) == f"{source.path}: row 40 is damaged" and caught.value.hint == "repair it"
    assert not target.exists()
    assert no_children_left()


class FailingTarget(SqliteStore):
    """A target whose writer fails on its second batch, while the child still has much to send."""

    def bulk_writer(self, on_conflict: Any = "overwrite") -> Any:
        import contextlib

        inner = super().bulk_writer(on_conflict)

        @contextlib.contextmanager
        def failing() -> Iterator[Any]:
            with inner as writer:
                calls = []

                class Writer:
                    conflicts = writer.conflicts

                    def write(self, batch: Any) -> None:
                        calls.append(1)
                        if len(calls) == 2:
                            raise StoreError("disk full (a test's)")
                        writer.write(batch)

                yield Writer()

        return failing()


def test_a_writer_failing_midway_stops_the_child_which_closes_its_source(tmp_path: Path, forks: list[int]) -> None:
    source = sqlite_source(tmp_path / "s.db", generated_records(20_000))
    wal = Path(f"{source.path}-wal")
    assert not wal.exists()
    token = source.change_token()
    started = time.monotonic()
    with pytest.raises(StoreError, match="disk full"):
        migrate(Endpoint("sqlite", source), Endpoint("sqlite", FailingTarget(tmp_path / "t.db")))
    assert forks
    assert no_children_left()
    assert time.monotonic() - started < forked.GRACE_SECONDS, "the child was not told to stop: it was waited for"
    assert not wal.exists(), "the child's read left its WAL: it did not close its source"
    assert SqliteStore(source.path).change_token() == token
    assert not (tmp_path / "t.db").exists()


def test_a_plugin_wrapping_the_read_hook_sees_every_record_in_this_process(tmp_path: Path, forks: list[int]) -> None:
    from minsky.hookspecs import hookimpl
    from minsky.plugins import registry

    seen: list[str] = []

    class Counting:
        @hookimpl(wrapper=True)
        def read(self, store: Any, where: Any, name: Any) -> Iterator[SessionRecord]:
            records = yield
            return (seen.append(r.session) or r for r in records)  # type: ignore[func-returns-value]

    manager = registry().manager
    plugin = Counting()
    manager.register(plugin, name="counting-test")
    try:
        source = sqlite_source(tmp_path / "s.db", generated_records(30))
        report = migrate(Endpoint("sqlite", source), json_target(tmp_path, "t"))
    finally:
        manager.unregister(plugin)
    assert report.written == 30 and len(seen) == 30
    assert not forks, "a wrapped read went to a child, where the wrapper's state is lost"


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return True
        if state == "Z":  # ended, waiting for whoever inherited it
            return True
        time.sleep(0.02)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the forked reader is Linux-only")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_migration_leaves_no_reader_process_and_no_target(
    tmp_path: Path, signum: int, make_large_sqlite: Callable[[Path, int], Path]
) -> None:
    source = make_large_sqlite(tmp_path / "s.db", 60_000)
    target = tmp_path / "t.json"
    env = {**os.environ, "MINSKY_FORKED_READ_MIN": "0", "MINSKY_LOAD_PLUGINS": "json,sqlite,postgres"}
    args = ["sessiondb", "migrate", "to", "json", "--from", "sqlite", "--sqlite-path", str(source)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "minsky", *args, "--json-path", str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
        text=True,
    )
    try:
        deadline, child = time.monotonic() + 60, None
        while child is None and time.monotonic() < deadline and proc.poll() is None:
            found = _children(proc.pid)
            child = found[0] if found else None
            time.sleep(0.01)
        assert child is not None, f"the migration never forked its reader (exit {proc.poll()})"
        time.sleep(0.2)
        os.killpg(proc.pid, signum) if signum == signal.SIGINT else os.kill(proc.pid, signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
    assert _gone(child), "the reader process outlived the migration"
    assert not target.exists()


@pytest.fixture
def make_large_sqlite() -> Callable[[Path, int], Path]:
    def make(path: Path, n: int) -> Path:
        sqlite_source(path, generated_records(n))
        return path

    return make


def test_a_reader_closed_before_its_first_record_stops_and_reaps_the_child(tmp_path: Path) -> None:
    source = sqlite_source(tmp_path / "s.db", generated_records(20_000))
    records = forked.read_in_child(source, None)
    child = records.pid  # type: ignore[attr-defined]
    assert _children(os.getpid()) == [child]
    records.close()  # type: ignore[attr-defined]
    assert no_children_left()
    assert not Path(f"{source.path}-wal").exists(), "the child did not close its source"


# -- found by an adversarial run (helper-23) ---------------------------------------


@pytest.fixture
def fresh_db(postgres_url: str) -> Iterator[Callable[..., str]]:
    from psycopg.conninfo import make_conninfo

    made: list[str] = []

    def make(name: str, setup: str = "") -> str:
        name = f"{name}_{os.getpid()}"
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        url = make_conninfo(postgres_url, dbname=name)
        if setup:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(setup)
        return url

    yield make
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        for name in made:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _json_source(tmp_path: Path, dicts: list[dict[str, Any]]) -> Endpoint:
    path = tmp_path / "source.json"  # a JSON store may repeat a name (the original's did)
    path.write_text(json.dumps({"sessions": dicts}), "utf-8")
    return Endpoint("json", JsonStore(path))


ORDERED = [  # keys in no sorted order, at the top and nested: what a JSON store's writer chose
    {"session": "b", "repoName": "r", "pullRequest": {"url": "u", "number": 1, "base": "m"}, "zeta": 1, "alpha": 2},
    {
        "session": "a",
        "repoName": "r",
        "github": {"repo": "x", "owner": "o"},
        "prState": {"z": 1, "a": [{"y": 1, "b": 2}]},
    },
    {"session": "b", "repoName": "s", "pullRequest": {"url": "v", "extra": {"y": 1, "b": [{"z": 0, "c": 1}]}}, "o": 0},
]


@pytest.mark.parametrize("repeated", [True, False])
def test_a_json_store_s_key_order_reaches_a_sql_target_the_same_from_a_forked_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int], repeated: bool
) -> None:
    # A record whose row the child made crosses as its canonical form alone; one whose row the
    # parent makes (a renamed copy) or whose dict a write hook sees must still have its own order.
    from minsky.hookspecs import hookimpl
    from minsky.plugins import registry

    seen: dict[str, list[list[str]]] = {}

    class Watching:
        @hookimpl(wrapper=True)
        def write(self, store: Any, batch: Any) -> Any:
            seen.setdefault(where, []).extend(list(record_to_dict(r)) for r in batch.records or ())
            return (yield)

    source = _json_source(
        tmp_path,
        (ORDERED if repeated else ORDERED[:2]) + [{"session": f"f{i}", "k": {"b": i, "a": i}} for i in range(4)],
    )
    rows = {}
    manager = registry().manager
    for where in READS:
        read_in(where, monkeypatch)
        for watched in (False, True):
            plugin = Watching()
            if watched:
                manager.register(plugin, name="watching-test")
            try:
                target = tmp_path / f"{where.split()[-1]}-{watched}.db"
                assert migrate(source, Endpoint("sqlite", SqliteStore(target)), on_duplicate="rename").ok
            finally:
                if watched:
                    manager.unregister(plugin)
            rows[where, watched] = _sqlite_rows(target)
    assert forks, "no read went through a forked child"
    assert rows[READS[1], False] == rows[READS[0], False] == rows[READS[0], True] == rows[READS[1], True]
    cells = {row[0]: row for row in rows[READS[1], False]}
    if repeated:
        assert '"extra":{"y":1,"b":[{"z":0,"c":1}]}' in cells["b~2"][12], "a renamed copy's cells lost its key order"
    assert seen[READS[1]] == seen[READS[0]] and ["session", "repoName", "github", "prState"] in seen[READS[1]]


def test_a_record_orjson_cannot_read_exactly_crosses_with_its_values(tmp_path: Path, core_writes_only: None) -> None:
    # Crossing as its canonical form alone, an integer past 64 bits would come back a float
    # the moment the parent decoded it (found by helper-28): such a record crosses as its dict.
    path = tmp_path / "big.json"
    big = 123456789012345678901234567890
    path.write_text('{"sessions": [\n{"session": "x", "n": ' + str(big) + ', "pullRequest": {"z": 1, "a": 2}}\n]}\n')
    records = forked.read_in_child(JsonStore(path), lambda record: ("a row",), key_order=False)
    assert records is not None
    (record,) = list(records)
    assert record_to_dict(record)["n"] == big and type(record_to_dict(record)["n"]) is int


@pytest.mark.postgres
def test_renamed_copies_keep_their_place_in_a_forked_read(
    tmp_path: Path, fresh_db: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A renamed copy has no line made by the child: mixing write_row (buffered) with write (sent
    # at once) put it after the records that follow it.
    dicts = [{"session": "a", "repoName": "1"}, {"session": "a", "repoName": "2"}]
    dicts += [{"session": f"f{i}", "repoName": "r"} for i in range(5)]
    source = _json_source(tmp_path, dicts)
    order = {}
    for where in READS:
        read_in(where, monkeypatch)
        url = fresh_db(f"forked_order_{where.split()[-1]}")
        migrate(source, Endpoint("postgres", PostgresStore(url)), on_duplicate="rename")
        with psycopg.connect(url) as conn:
            order[where] = [r[0] for r in conn.execute("SELECT session FROM sessions ORDER BY minsky_seq")]
    assert order[READS[0]] == ["a", "a~2", "f0", "f1", "f2", "f3", "f4"]
    assert order[READS[1]] == order[READS[0]]


@pytest.mark.postgres
def test_an_original_layout_table_gets_the_source_order_from_a_forked_read(
    tmp_path: Path, fresh_db: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_original_postgres import ORIGINAL

    setup = (ORIGINAL / "postgres" / "pg-head.sql").read_text("utf-8") + "; DELETE FROM sessions;"
    dicts = [
        {"session": f"s{i}", "repoName": "r", "repoUrl": "u", "createdAt": "2025-01-01T00:00:00.000Z"}
        | ({"commitCount": i} if i % 4 == 1 else {})  # an integer column: write_row formats it
        for i in range(12)
    ]
    source = _json_source(tmp_path, dicts)
    order = {}
    for where in READS:
        read_in(where, monkeypatch)
        url = fresh_db(f"forked_orig_{where.split()[-1]}", setup)
        migrate(source, Endpoint("postgres", PostgresStore(url)))
        with psycopg.connect(url) as conn:
            order[where] = [r[0] for r in conn.execute("SELECT session FROM sessions ORDER BY ctid")]
    assert order[READS[0]] == [f"s{i}" for i in range(12)]
    assert order[READS[1]] == order[READS[0]]


@pytest.mark.postgres
def test_a_refused_row_is_named_rightly_after_a_forked_read(
    tmp_path: Path, fresh_db: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from minsky.errors import MinskyError

    dicts = [{"session": "a", "repoName": "1"}, {"session": "a", "repoName": "2"}]
    dicts += [{"session": f"f{i}", "repoName": "r"} for i in range(5)]
    dicts += [{"session": "big", "taskId": os.urandom(4000).hex()}]  # over the btree row limit
    source = _json_source(tmp_path, dicts)
    for where in READS:
        read_in(where, monkeypatch)
        url = fresh_db(f"forked_named_{where.split()[-1]}")
        with pytest.raises(MinskyError) as caught:
            migrate(source, Endpoint("postgres", PostgresStore(url)), on_duplicate="rename")
        assert "session 'big'" in str(caught.value), (where, str(caught.value))


@pytest.mark.parametrize("where", READS)
@pytest.mark.parametrize("depth", [600, 950])
def test_a_deeply_nested_record_is_rejected_by_name_not_the_whole_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, depth: int
) -> None:
    read_in(where, monkeypatch)  # read by the JSON store, refused by canonical(); pickle nests deeper
    path = tmp_path / "source.json"
    path.write_text('{"sessions":[{"session":"a"},{"session":"deep","x":' + "[" * depth + "]" * depth + "}]}")
    report = migrate(Endpoint("json", JsonStore(path)), Endpoint("sqlite", SqliteStore(tmp_path / "t.db")))
    assert report.written == 1 and [r["session"] for r in report.rejected] == ["deep"]


def test_a_failed_fork_reads_in_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    monkeypatch.setenv("MINSKY_FORKED_READ_MIN", "0")

    def no_fork() -> int:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")  # pids.max, RLIMIT_NPROC

    monkeypatch.setattr(os, "fork", no_fork)
    fds = len(os.listdir("/proc/self/fd"))
    source = _json_source(tmp_path, [{"session": f"s{i}"} for i in range(10)])
    report = migrate(source, Endpoint("sqlite", SqliteStore(tmp_path / "t.db")))
    assert report.written == 10
    assert len(os.listdir("/proc/self/fd")) == fds, "the pipe was left open"


def test_no_thread_left_to_start_reads_in_this_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # RLIMIT_NPROC or a cgroup's pids.max counts threads too: with no fork and no read-ahead
    # thread, the migration reads in the main thread; it was an internal error.
    import threading

    monkeypatch.setenv("MINSKY_FORKED_READ_MIN", "off")

    def no_thread(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    records = [{"session": f"s{i}", "n": i} for i in range(3000)]
    source = _json_source(tmp_path, records)
    report = migrate(source, Endpoint("sqlite", SqliteStore(tmp_path / "t.db")), verify=True)
    assert report.ok and report.written == 3000
    assert [r.session for r in SqliteStore(tmp_path / "t.db").read()] == [f"s{i}" for i in range(3000)]


@pytest.mark.postgres
def test_a_source_role_limited_to_one_connection_is_read_by_the_child(
    tmp_path: Path, fresh_db: Callable[..., str], postgres_url: str, forks: list[int]
) -> None:
    # The parent's idle source connection is closed before the fork: the child's is the only one.
    from psycopg.conninfo import make_conninfo

    role = f"minsky_one_{os.getpid()}"
    url = fresh_db("forked_one_conn")
    source = Endpoint("sqlite", sqlite_source(tmp_path / "s.db", generated_records(20)))
    migrate(source, Endpoint("postgres", PostgresStore(url)))
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 1')
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
        limited = make_conninfo(url, user=role)
        back = migrate(Endpoint("postgres", PostgresStore(limited)), json_target(tmp_path, "back"), verify=True)
        assert back.ok and back.written == 20
        assert forks
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
            conn.execute(f'DROP OWNED BY "{role}"')
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    """A real minsky process in a session of its own, once it has forked its reader."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "minsky", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "MINSKY_FORKED_READ_MIN": "0", "MINSKY_LOAD_PLUGINS": "json,sqlite,postgres", **env},
        start_new_session=True,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        found = _children(proc.pid)
        if found:
            return proc, found[0]
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"the migration never forked its reader (exit {proc.poll()})")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_terminated_process_group_leaves_the_sqlite_source_as_it_was(
    tmp_path: Path, signum: int, make_large_sqlite: Callable[[Path, int], Path]
) -> None:
    source = make_large_sqlite(tmp_path / "s.db", 60_000)
    assert not Path(f"{source}-wal").exists()
    args = ["sessiondb", "migrate", "to", "json", "--from", "sqlite", "--sqlite-path", str(source)]
    proc, child = _start([*args, "--json-path", str(tmp_path / "t.json")], {})
    time.sleep(0.3)
    os.killpg(proc.pid, signum)  # what `timeout`, systemd or a closed terminal send
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert _gone(child)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("s.db")) == ["s.db"]
    assert not (tmp_path / "t.json").exists()


class Stuck(SqliteStore):
    """A source whose read stops answering after a batch and a half (a server waiting on a lock),
    and says in a file whether it was closed."""

    def read(self) -> Iterator[SessionRecord]:
        records = super().read()
        try:
            for _ in range(forked.BATCH * 3 // 2):
                yield next(records)
            if os.getpid() != PARENT:
                time.sleep(600)
            yield from records
        finally:
            records.close()
            Path(f"{self.path}.closed").write_text(str(os.getpid()))


def test_a_reader_stuck_waiting_is_stopped_and_unwinds_when_the_parent_stops(tmp_path: Path) -> None:
    # Blocked, the child writes nothing and never learns the pipe closed: SIGTERM unwinds it
    # (psycopg cancels a query on the SystemExit it raises), SIGKILL only after the grace period.
    source = sqlite_source(tmp_path / "s.db", generated_records(forked.BATCH * 4), Stuck)
    records = forked.read_in_child(source, None)
    assert records is not None
    assert len([next(records) for _ in range(forked.BATCH)]) == forked.BATCH
    time.sleep(0.2)
    started = time.monotonic()
    records.close()  # type: ignore[attr-defined]
    assert time.monotonic() - started < forked.GRACE_SECONDS
    assert no_children_left()
    assert Path(f"{source.path}.closed").read_text() != str(os.getpid()), "the child's read was not unwound"
    assert not Path(f"{source.path}-wal").exists()


def test_a_signal_in_the_forks_own_hooks_is_raised_not_lost(tmp_path: Path) -> None:
    """Adversary helper-40: SIGTERM landing in filelock's after-fork hook printed "Exception
    ignored in: <function _resume_parent_after_fork ...>" and a traceback, and the signal's
    exception was dropped. The ending signals are now held across the fork and raised after."""

    class Ended(Exception):
        pass

    def ended(_signum: int, _frame: object) -> None:
        raise Ended

    armed: list[int] = []

    def after_in_parent() -> None:  # cannot be unregistered: inert once disarmed
        if armed:
            armed.clear()
            os.kill(os.getpid(), signal.SIGHUP)

    os.register_at_fork(after_in_parent=after_in_parent)
    store = JsonStore(tmp_path / "s.json")
    with store.bulk_writer() as writer:
        writer.write(list(generated_records(10)))
    previous = signal.signal(signal.SIGHUP, ended)
    try:
        armed.append(1)
        with pytest.raises(Ended):
            forked.read_in_child(store, None)
    finally:
        signal.signal(signal.SIGHUP, previous)
    os.waitpid(-1, 0)  # the child read its ten records into the pipe and ended
