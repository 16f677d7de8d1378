"""Figures benchmarks/ measured, quoted by ``migrate status`` advice (estimates, not promises).

Update them from docs/performance.md when its tables are re-measured; each block names the
benchmark, the code and the day. Nothing here is a target: targets live in benchmarks/.
"""

from __future__ import annotations

# benchmarks/migrate.py --n 100000 on minsky e097f34 (2026-12-06, 04:53 UTC), 2 vCPUs (AMD EPYC),
# quiet (load average 1.1-1.5; a migration of 5,000+ records reads its source in a second
# process): records per second of a plain migration, and what --verify and --backup added to it
# (a fraction of the plain time) in the same run. A busy machine is slower: at load 8-19 the
# same benchmark on older code measured a third to a half of these rates.
MEASURED_ON = "2026-12-06"
MIGRATION_RATE: dict[tuple[str, str], float] = {
    ("json", "sqlite"): 19_326,
    ("sqlite", "postgres"): 24_440,
    ("postgres", "json"): 27_015,
    ("json", "postgres"): 20_370,
    ("sqlite", "json"): 39_904,
    ("postgres", "sqlite"): 21_839,
}
VERIFY_ADDS: dict[tuple[str, str], float] = {
    ("json", "sqlite"): 0.17,
    ("sqlite", "postgres"): 1.68,
    ("postgres", "json"): 1.73,
    ("json", "postgres"): 0.65,
    ("sqlite", "json"): 2.43,
    ("postgres", "sqlite"): 1.95,
}
BACKUP_ADDS: dict[tuple[str, str], float] = {
    ("json", "sqlite"): 0.37,
    ("sqlite", "postgres"): 0.64,
    ("postgres", "json"): 1.01,
    ("json", "postgres"): 0.67,
    ("sqlite", "json"): 1.03,
    ("postgres", "sqlite"): 1.25,
}

# benchmarks/commands.py --runs 3 on minsky 02b0da1 (2026-11-28, 14:32 UTC, quiet): best-of-3
# ``session start`` (a fresh process) on a store of this many sessions. A JSON store rewrites the
# whole file on every write.
START_SECONDS: dict[str, dict[int, float]] = {
    "json": {1_000: 0.39, 10_000: 0.77, 100_000: 4.82},
    "sqlite": {1_000: 0.25, 10_000: 0.24, 100_000: 0.23},
}

# Past either, advise moving a JSON store to SQLite: by 10,000 sessions a JSON ``session start``
# takes several times SQLite's (START_SECONDS), and every write rewrites the file.
JSON_ADVICE_RECORDS = 5_000
JSON_ADVICE_BYTES = 5 * 1024 * 1024


def migration_seconds(source: str, target: str, count: int, verify: bool = False, backup: bool = False) -> float | None:
    """Estimated seconds to migrate ``count`` sessions, or None for a direction not measured."""
    rate = MIGRATION_RATE.get((source, target))
    if rate is None:
        return None
    factor = 1 + (VERIFY_ADDS[(source, target)] if verify else 0) + (BACKUP_ADDS[(source, target)] if backup else 0)
    return count / rate * factor


def about(seconds: float) -> str:
    """A duration as a person would say it: estimates are no more precise than that."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        whole = round(seconds)
        return f"about {whole} second{'s' if whole != 1 else ''}"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} minutes"
    return f"about {seconds / 3600:.1f} hours"
