"""nox sessions: every distribution installed from its local path into one venv;
``build`` and ``wheels`` check the distributions as users get them."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

nox.options.sessions = ["tests", "lint", "typecheck", "wheels", "compat"]
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
    "examples/minsky-audit/tests",
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


# -- compatibility: each plugin against the lowest core version it declares, and the current one --

PLUGIN_TESTS = {
    "./plugins/minsky-backend-json": ["tests/test_json_store.py", "tests/test_contract_builtin.py::TestJsonStore"],
    "./plugins/minsky-backend-sqlite": [
        "tests/test_sqlite_store.py",
        "tests/test_contract_builtin.py::TestSqliteStore",
    ],
    "./plugins/minsky-backend-postgres": [
        "tests/test_postgres.py",
        "tests/test_contract_builtin.py::TestPostgresStore",
    ],
    "./examples/minsky-backend-jsonl": ["examples/minsky-backend-jsonl/tests", "tests/test_example_plugin.py"],
    "./examples/minsky-audit": ["examples/minsky-audit/tests"],
}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def core_releases() -> dict[str, str | None]:
    """Every core version in git history -> the last commit that carried it (None: the work tree).

    There are no release tags: a version's code is its state just before the commit that
    changed core/pyproject.toml's version to the next one.
    """
    if git("rev-parse", "--is-shallow-repository").strip() == "true":
        # A shallow clone hides the older versions: the "lowest" run would silently be the current.
        raise RuntimeError("nox -s compat needs the whole history: git fetch --unshallow")
    releases: dict[str, str | None] = {}
    previous: str | None = None
    for commit in git("log", "--reverse", "--format=%H", "--", "core/pyproject.toml").split():
        version = tomllib.loads(git("show", f"{commit}:core/pyproject.toml"))["project"]["version"]
        if previous is not None and version != previous:
            releases[previous] = git("rev-parse", f"{commit}^").strip()
        previous = version
    current = tomllib.loads(Path("core/pyproject.toml").read_text())["project"]["version"]
    if previous is not None and previous != current:  # bumped in the work tree, not yet committed
        releases[previous] = git("rev-parse", "HEAD").strip()
    releases[current] = None
    return releases


def declared_core(plugin: str) -> SpecifierSet:
    """The `minsky` versions a plugin's pyproject declares it supports."""
    for dep in tomllib.loads((Path(plugin) / "pyproject.toml").read_text())["project"]["dependencies"]:
        req = Requirement(dep)
        if canonicalize_name(req.name) == "minsky":
            return req.specifier
    raise ValueError(f"{plugin} does not declare the minsky versions it supports")


def core_wheel(session: nox.Session, version: str, commit: str | None) -> str:
    """A wheel of core at ``version``: the work tree's, or built from git history."""
    out = Path(session.create_tmp()) / f"core-{version}"
    shutil.rmtree(out, ignore_errors=True)
    source = Path("core")
    if commit is not None:
        source = out / "src"
        source.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", commit, "core"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
        source = source / "core"
    session.run("python", "-m", "build", "--wheel", "--outdir", str(out / "dist"), str(source), silent=True)
    return str(next((out / "dist").glob("minsky-*.whl")))


@nox.session
@nox.parametrize("core", ["lowest", "current"])
def compat(session: nox.Session, core: str) -> None:
    """Every plugin's tests and the contract suite against the lowest core it declares, and the current."""
    session.install("build>=1.0", *TEST_DEPS)
    try:
        releases = core_releases()
    except RuntimeError as exc:
        session.error(str(exc))
    current = next(v for v, c in releases.items() if c is None)
    groups: dict[str, list[str]] = {}
    for plugin in PLUGIN_TESTS:
        supported = [v for v in releases if Version(v) in declared_core(plugin)]
        if current not in supported:
            session.error(f"{plugin} does not declare the current core {current} ({declared_core(plugin)})")
        version = min(supported, key=Version) if core == "lowest" else current
        groups.setdefault(version, []).append(plugin)
    if core == "lowest" and list(groups) == [current]:
        session.log(f"every plugin's lowest supported core is the current one ({current}): nothing older to test")
        return
    for version, plugins in sorted(groups.items()):
        session.log(f"core {version} ({releases[version] or 'work tree'}): {', '.join(plugins)}")
        wheel = core_wheel(session, version, releases[version])
        # Every plugin is installed (core needs json and sqlite); the group's tests are what runs.
        session.install(wheel, *DISTRIBUTIONS[1:])
        session.install("--force-reinstall", "--no-deps", wheel)  # a reused venv may hold another build
        session.run("python", "-c", f"import minsky; assert minsky.__version__ == {version!r}, minsky.__version__")
        tests = [test for plugin in plugins for test in PLUGIN_TESTS[plugin]]
        session.run("pytest", "-p", "no:cacheprovider", *tests, *session.posargs)
