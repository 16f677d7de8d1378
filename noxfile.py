"""nox sessions: every distribution installed from its local path into one venv."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
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
