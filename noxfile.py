"""nox sessions: every distribution installed from its local path into one venv;
``build`` and ``wheels`` check the distributions as users get them."""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "wheels"]
nox.options.reuse_existing_virtualenvs = True

DISTRIBUTIONS = [
    "./core",
    "./plugins/minsky-backend-json",
    "./plugins/minsky-backend-sqlite",
    "./plugins/minsky-backend-postgres",
    "./examples/minsky-backend-jsonl",  # installed as a third party would: by entry point only
    "./examples/minsky-audit",  # a plugin that is not a backend: the write hook, by entry point only
]
TEST_DEPS = ["pytest>=8", "hypothesis>=6.100"]


def install_minsky(session: nox.Session) -> None:
    args: list[str] = []
    for dist in DISTRIBUTIONS:
        args += ["-e", dist]
    session.install(*args)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite."""
    install_minsky(session)
    session.install(*TEST_DEPS)
    session.run("pytest", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """The crash, concurrency and bad-input tests at 10x their CI size (on demand)."""
    install_minsky(session)
    session.install(*TEST_DEPS)
    session.env["MINSKY_SOAK"] = session.env.get("MINSKY_SOAK", "10")
    session.run(
        "pytest", "tests/test_crashes.py", "tests/test_concurrency.py", "tests/test_bad_input.py", *session.posargs
    )


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    install_minsky(session)
    session.install("mypy>=1.10", "types-PyYAML", *TEST_DEPS)
    session.run("mypy")


DIST = Path("dist")
# Third-party wheels the offline install test needs (pip download fills it, once).
WHEELHOUSE = Path(".nox/wheelhouse")


def build_dists(session: nox.Session) -> list[str]:
    """Build every distribution with PEP 517 into a clean dist/ and check its metadata."""
    session.install("build>=1.0", "twine>=5")
    shutil.rmtree(DIST, ignore_errors=True)
    for dist in DISTRIBUTIONS:
        session.run("python", "-m", "build", "--outdir", str(DIST), dist, silent=True)
    built = sorted(str(p) for p in DIST.iterdir())
    session.run("twine", "check", "--strict", *built)
    return built


@nox.session
def build(session: nox.Session) -> None:
    """Wheel and sdist of every distribution into dist/ (PEP 517), metadata checked."""
    build_dists(session)


# The subset that proves the wheels hold what the editable trees hold: the CLI as a user
# installs it (tests/test_wheels.py), the contract suite, and plugin discovery.
WHEEL_TESTS = [
    "tests/test_wheels.py",
    "tests/test_contract_builtin.py",
    "examples/minsky-backend-jsonl/tests",
    "tests/test_plugins.py",
    "tests/test_example_plugin.py",
]


@nox.session
def wheels(session: nox.Session) -> None:
    """Build, install the wheels (not the trees), and run the CLI smoke and contract tests on them."""
    wheels = [p for p in build_dists(session) if p.endswith(".whl")]
    session.install("--find-links", str(DIST), *wheels)
    session.install("--force-reinstall", "--no-deps", *wheels)  # a reused venv holds the last build
    session.install(*TEST_DEPS)
    # The tests must see the installed wheels, never the source trees.
    session.run("python", "-c", "import minsky, sys; sys.exit('site-packages' not in minsky.__file__)")
    # Third-party wheels for the offline fresh-venv test; minsky's own come from dist/ only.
    session.run("pip", "download", "--quiet", "--find-links", str(DIST), "--dest", str(WHEELHOUSE), *wheels)
    for own in WHEELHOUSE.glob("minsky*"):
        own.unlink()
    session.env["MINSKY_TEST_DIST"] = str(DIST.resolve())
    session.env["MINSKY_TEST_WHEELHOUSE"] = str(WHEELHOUSE.resolve())
    session.run("pytest", "-p", "no:cacheprovider", *WHEEL_TESTS, *session.posargs)
