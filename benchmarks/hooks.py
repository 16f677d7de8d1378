"""What the operation hooks cost: the pluggy call per batch, against calling the store directly.

    MINSKY_LOAD_PLUGINS=json,sqlite,postgres python benchmarks/hooks.py [--n 1000000]

A migration calls ``read`` once and ``write`` once per batch of 1,000 records, so the
hook layer's cost is (number of batches) x (one hook call minus one direct call).
Measured in-process with a writer that does nothing, so that only the call path is
timed (best of 5 rounds); also prints which modules ``minsky --help`` imports.
Set MINSKY_LOAD_PLUGINS to leave out plugins that do work in the hooks (an audit log).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from minsky import hooks
from minsky.model import SessionRecord
from minsky.testing.records import generated_records

BATCH = 1000


class NullWriter:
    def write(self, batch: Sequence[SessionRecord]) -> None:
        pass


def best(rounds: int, run: object) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000, help="records of the migration to cost")
    args = parser.parse_args()
    from minsky_backend_sqlite import SPEC

    store = SPEC.open({"path": Path(tempfile.mkdtemp()) / "never-created.db"})
    batch = generated_records(BATCH)
    writer = NullWriter()
    calls = max(1, args.n // BATCH)
    hooks.relay()  # load plugins outside the timing

    def direct() -> None:
        for _ in range(calls):
            list(batch)  # the engine builds each batch as a list either way
            writer.write(batch)

    def hooked() -> None:
        for _ in range(calls):
            hooks.stage(store, writer, list(batch))

    plain, through = best(5, direct), best(5, hooked)
    per_call_us = (through - plain) / calls * 1e6
    print(f"{args.n:,} records = {calls:,} write-hook calls (+1 read-hook call)")
    print(f"direct: {plain * 1000:.1f} ms   through pm.hook: {through * 1000:.1f} ms")
    print(f"hook layer: {per_call_us:.1f} µs a batch, {through - plain:.4f} s for the whole migration")
    modules = subprocess.run(
        [sys.executable, "-c", "import sys; from minsky.cli import main; sys.argv=['minsky','--help']\n"
         "try: main()\nexcept SystemExit: pass\n"
         "print(sorted(m for m in sys.modules if m.startswith(('pluggy','psycopg','minsky_'))), file=sys.stderr)"],
        capture_output=True, text=True, check=False,
    ).stderr.strip()  # fmt: skip
    print(f"`minsky --help` imports of pluggy/psycopg/plugins: {modules}")


if __name__ == "__main__":
    main()
