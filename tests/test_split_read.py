"""A forked read of a SQLite store is decoded by more processes than one (``minsky.forked``:
``SplitReadStore``): the reader fetches every batch and decodes its own turns, decoders the
others'. What the target holds, the order it is written in, each error and where it falls
must be what one process reading alone gives; a decoder that dies, or a writer that fails,
leaves one line of error and no process behind.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minsky import forked
from minsky.errors import MinskyError, StoreError
from minsky.migrate import Endpoint, migrate
from minsky.model import SessionRecord
from minsky.testing.records import generated_records
from minsky_backend_json.store import JsonStore
from minsky_backend_sqlite.store import SqliteStore
from test_forked_read import PARENT, FailingTarget, no_children_left, sqlite_source, storable
from test_original_rows import hostile_records

ROWS = forked.BATCH * 5 + 17  # six turns: the reader's and the decoders' alike, and a short last one
SETTINGS = {  # MINSKY_FORKED_READ_MIN, MINSKY_READ_DECODERS
    "a single process": ("off", "0"),
    "reader alone": ("0", "0"),
    "1 decoder": ("0", "1"),
    "3 decoders": ("0", "3"),
}


def read_by(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    least, decoders = SETTINGS[how]
    monkeypatch.setenv("MINSKY_FORKED_READ_MIN", least)
    monkeypatch.setenv("MINSKY_READ_DECODERS", decoders)


def ours_alive() -> list[int]:
    """Processes forked from this one (same command line and process group), orphans included."""
    me, group = os.getpid(), os.getpgrp()
    command = Path("/proc/self/cmdline").read_bytes()
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if (entry / "cmdline").read_bytes() == command and os.getpgid(int(entry.name)) == group and state != "Z":
                alive.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return alive


def none_left(seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while ours_alive():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return no_children_left()


def awkward_source(path: Path) -> SqliteStore:
    """Generated records with hostile ones among them, and rows a foreign writer changed since
    (their cells win over the record: the slow path), across every turn."""
    records = storable(hostile_records())
    names = {r.session for r in records}
    records += [r for r in generated_records(ROWS) if r.session not in names]
    store = sqlite_source(path, records)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE sessions SET repo_name = 'changed ' || rowid WHERE rowid % 97 = 0")
        conn.execute("UPDATE sessions SET task_id = NULL WHERE rowid % 89 = 0")
    conn.close()
    return store


def test_every_way_of_reading_gives_the_same_target_in_the_same_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = Endpoint("sqlite", awkward_source(tmp_path / "s.db"))
    targets = {}
    for how in SETTINGS:
        read_by(how, monkeypatch)
        path = tmp_path / f"{how.replace(' ', '-')}.json"
        report = migrate(source, Endpoint("json", JsonStore(path)), verify=True)
        assert report.ok, report.to_json()
        targets[how] = path.read_bytes()
        assert none_left(), how
    assert report.written > ROWS
    first = targets["a single process"]
    assert all(target == first for target in targets.values()), [h for h, t in targets.items() if t != first]


class Damaged(SqliteStore):
    """A source whose row ``bad`` no reader can decode: its record column is not JSON."""


def damaged_source(path: Path, bad: int) -> SqliteStore:
    store = sqlite_source(path, generated_records(ROWS))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE sessions SET record = '{not json' WHERE rowid = ?", (bad + 1,))
    conn.close()
    return store


@pytest.mark.parametrize("bad", [3, forked.BATCH + 3, forked.BATCH * 3 + 7, ROWS - 1])
def test_a_row_no_one_can_decode_is_the_same_error_whichever_process_meets_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: int
) -> None:
    source = Endpoint("sqlite", damaged_source(tmp_path / "s.db", bad))
    errors = {}
    for how in SETTINGS:
        read_by(how, monkeypatch)
        target = tmp_path / f"{how.replace(' ', '-')}.db"
        with pytest.raises(MinskyError) as caught:
            migrate(source, Endpoint("sqlite", SqliteStore(target)))
        errors[how] = (type(caught.value), str(caught.value))
        assert not target.exists(), how
        assert none_left(), how
    assert len(set(errors.values())) == 1, errors
    assert f"session 'gen-{bad:06d}'" in errors["1 decoder"][1]


class DamagedSlowDecoders(SqliteStore):
    """Its decoders (not the reader, a child of this process) take 2 ms a row."""

    def _decode(self, table: Any, row: tuple[object, ...]) -> SessionRecord:
        if os.getpid() != PARENT and os.getppid() != PARENT:
            time.sleep(0.002)
        return super()._decode(table, row)


def test_an_error_in_the_readers_turn_waits_for_the_decoders_turns_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader met a row it cannot decode while a decoder still held the turns before it:
    the reader killed the decoder, and the parent, reading those turns first, reported "a process
    decoding it ended before the end" instead of the row. The turns before are now passed on."""
    read_by("1 decoder", monkeypatch)  # the reader's turns: 0, 3, 6 (0, 2, 4, 6 in plain round robin)
    bad = forked.BATCH * 6 + 7
    source = sqlite_source(tmp_path / "s.db", generated_records(forked.BATCH * 7), DamagedSlowDecoders)
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("UPDATE sessions SET record = '{not json' WHERE rowid = ?", (bad + 1,))
    conn.close()
    with pytest.raises(MinskyError, match=f"session 'gen-{bad:06d}'"):
        migrate(Endpoint("sqlite", source), Endpoint("json", JsonStore(tmp_path / "t.json")))
    assert none_left()


class KilledDecoder(SqliteStore):
    """A source whose decoder process is killed outright while decoding ``victim``."""

    victim = f"gen-{forked.BATCH + 10:06d}"  # the second batch: a decoder's turn
    signum = signal.SIGKILL

    def _decode(self, table: Any, row: tuple[object, ...]) -> SessionRecord:
        if row[0] == self.victim and os.getpid() != PARENT:
            os.kill(os.getpid(), self.signum)
        return super()._decode(table, row)


class TerminatedDecoder(KilledDecoder):
    """Its decoder process is sent SIGTERM while decoding ``victim``: it unwinds and says so."""

    signum = signal.SIGTERM


@pytest.mark.parametrize(
    ("source_class", "said"),
    [
        (KilledDecoder, "a process decoding it ended before the end"),
        (TerminatedDecoder, "a process decoding it was stopped (SIGTERM)"),  # helper-41: "the process reading it"
    ],
)
def test_a_decoder_killed_midway_is_one_error_nothing_written_and_no_process_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source_class: type[SqliteStore], said: str
) -> None:
    read_by("1 decoder", monkeypatch)
    source = sqlite_source(tmp_path / "s.db", generated_records(ROWS), source_class)
    target = tmp_path / "t.json"
    with pytest.raises(StoreError) as caught:
        migrate(Endpoint("sqlite", source), Endpoint("json", JsonStore(target)))
    message = str(caught.value)
    assert said in message and str(source.path) in message
    assert "\n" not in message
    assert not target.exists()
    assert none_left()
    assert [r.session for r in SqliteStore(source.path).read()] == [r.session for r in generated_records(ROWS)]


@pytest.mark.parametrize("how", ["1 decoder", "3 decoders"])
def test_a_writer_failing_midway_ends_the_reader_and_every_decoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    read_by(how, monkeypatch)
    source = sqlite_source(tmp_path / "s.db", generated_records(forked.BATCH * 40))
    started = time.monotonic()
    with pytest.raises(StoreError, match="disk full"):
        migrate(Endpoint("sqlite", source), Endpoint("sqlite", FailingTarget(tmp_path / "t.db")))
    assert time.monotonic() - started < forked.GRACE_SECONDS, "a process was waited for, not told to stop"
    assert none_left()
    assert not Path(f"{source.path}-wal").exists(), "the reader did not close its source"
    assert not (tmp_path / "t.db").exists()


class Overridden(SqliteStore):
    """A subclass that changes ``read()``: its read must not be split past it."""

    def read(self) -> Iterator[SessionRecord]:
        for record in super().read():
            if record.session != "gen-000005":
                yield record


def test_a_store_whose_read_a_subclass_changed_is_read_through_that_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_by("1 decoder", monkeypatch)
    source = sqlite_source(tmp_path / "s.db", generated_records(ROWS), Overridden)
    assert source.read_split() is None
    report = migrate(Endpoint("sqlite", source), Endpoint("json", JsonStore(tmp_path / "t.json")))
    assert report.written == ROWS - 1
    assert none_left()


class SlowDecode(SqliteStore):
    """A source whose rows take 40 ms each to decode outside the parent (a 1 MB record's cost)."""

    DELAY = 0.04

    def _decode(self, table: Any, row: tuple[object, ...]) -> SessionRecord:
        if os.getpid() != PARENT:
            time.sleep(self.DELAY)
        return super()._decode(table, row)


def test_a_read_stopped_while_decoders_are_busy_ends_at_once_and_leaves_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Adversary helper-33: nothing signalled a decoder. The reader, told to stop, waited for them
    # with no deadline, the parent waited its whole grace period (5.5 s) and killed it, and the
    # decoders decoded on as orphans, holding the command's stderr.
    read_by("1 decoder", monkeypatch)
    source = sqlite_source(tmp_path / "s.db", generated_records(forked.BATCH * 8), SlowDecode)
    records = forked.read_in_child(source, None)
    assert records is not None
    assert len([next(records) for _ in range(forked.BATCH + 10)]) == forked.BATCH + 10  # into a decoder's turn
    started = time.monotonic()
    records.close()  # type: ignore[attr-defined]
    assert time.monotonic() - started < 2.0
    assert none_left(seconds=1.0)


@pytest.mark.parametrize("pipes", [0, 1, 2, 5, 7])
def test_out_of_file_descriptors_means_fewer_processes_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pipes: int
) -> None:
    read_by("3 decoders", monkeypatch)
    source = sqlite_source(tmp_path / "s.db", generated_records(ROWS))
    real, made = os.pipe, []

    def pipe() -> tuple[int, int]:  # EMFILE after ``pipes`` pipes, in this process and the reader
        if len(made) >= pipes:
            raise OSError(24, "Too many open files")
        made.append(1)
        return real()

    monkeypatch.setattr(os, "pipe", pipe)
    target = tmp_path / "t.json"
    report = migrate(Endpoint("sqlite", source), Endpoint("json", JsonStore(target)))
    monkeypatch.setattr(os, "pipe", real)
    assert report.written == ROWS
    assert [s["session"] for s in json.loads(target.read_text("utf-8"))["sessions"]] == [
        r.session for r in generated_records(ROWS)
    ]
    assert none_left()


class SlowerDecode(SlowDecode):
    """Rows take 2 ms each to decode outside the parent: a read still going when it is killed."""

    DELAY = 0.002


@pytest.mark.parametrize(
    ("signum", "said"),
    [
        (signal.SIGKILL, "the process reading it ended before the end (killed by signal 9)"),
        (signal.SIGTERM, "the process reading it was stopped (SIGTERM)"),
    ],
)
def test_a_reader_killed_or_stopped_is_named_not_a_decoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: int, said: str
) -> None:
    """Adversary helper-36: its decoders end with it, and their pipes were met first: the error
    blamed "a process decoding it", without the reader's status."""
    read_by("3 decoders", monkeypatch)
    source = sqlite_source(tmp_path / "s.db", generated_records(forked.BATCH * 12), SlowerDecode)
    records = forked.read_in_child(source, None)
    assert records is not None
    assert len([next(records) for _ in range(forked.BATCH + 10)]) == forked.BATCH + 10  # into a decoder's turn
    os.kill(records.pid, signum)  # type: ignore[attr-defined]
    with pytest.raises(StoreError) as caught:
        for _ in records:
            pass
    assert said in str(caught.value)
    assert none_left(seconds=2.0)


@pytest.mark.parametrize(
    ("cpu_max", "cores"),
    [
        ("50000 100000\n", 1),  # --cpus 0.5: one core's worth, so no decoder
        ("150000 100000\n", 2),
        ("max 100000\n", None),  # no quota: the affinity
        ("garbage\n", None),
        (None, None),  # no cgroup v2 file
    ],
)
def test_decoders_are_counted_from_the_cgroups_cpu_quota_as_well_as_the_affinity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cpu_max: str | None, cores: int | None
) -> None:
    """A container limited to one CPU on a host of many forked a decoder for each host core (up
    to three), all taking turns on that one CPU."""
    decoders_module = importlib.import_module("minsky.forked.decoders")  # the package names its function so
    monkeypatch.setattr(decoders_module, "CGROUP_ROOT", tmp_path)
    monkeypatch.delenv("MINSKY_READ_DECODERS", raising=False)
    if cpu_max is not None:
        (tmp_path / "cpu.max").write_text(cpu_max)
    affinity = len(os.sched_getaffinity(0))
    expected = affinity if cores is None else min(cores, affinity)
    assert decoders_module.usable_cores() == expected
    store = SqliteStore(tmp_path / "s.db")
    assert forked.decoders(store) == (min(expected, forked.MAX_DECODERS) if expected > 1 else 0)
