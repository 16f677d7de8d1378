"""What users of git, gh and rustup expect of a CLI: bare values for `$(...)`, completion
scripts, conflicting flags refused, tables on a terminal and tabs in a pipe."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_config_get_prints_the_bare_value_and_show_origin_the_source(minsky, isolated_home: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = isolated_home / ".config" / "minsky" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('[sessiondb]\nbackend = "sqlite"\n')
    assert minsky("config", "get", "sessiondb.backend").stdout == "sqlite\n"
    shown = minsky("config", "get", "--show-origin", "sessiondb.backend").stdout
    assert shown == f"global {cfg}\tsqlite\n"
    assert minsky("config", "get", "sessiondb.backend", "--show-origin").stdout == shown


def test_completion_bash_prints_a_script_bash_can_use(tmp_path: Path) -> None:
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("bash") is None:
        pytest.skip("no bash on this machine")
    bindir = Path(sys.executable).parent
    script = (
        'eval "$(minsky completion bash)"; COMP_WORDS=(minsky sessi); COMP_CWORD=1; '
        '_minsky_completion minsky; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["session", "sessiondb"]


@pytest.mark.parametrize(("shell", "marker"), [("zsh", "#compdef minsky"), ("fish", "complete --no-files")])
def test_completion_zsh_and_fish(minsky, shell: str, marker: str) -> None:  # type: ignore[no-untyped-def]
    result = minsky("completion", shell)
    assert result.exit_code == 0 and marker in result.stdout and "_MINSKY_COMPLETE" in result.stdout


def test_completion_of_an_unknown_shell_is_a_usage_error(minsky) -> None:  # type: ignore[no-untyped-def]
    assert minsky("completion", "tcsh").exit_code == 2


@pytest.fixture
def one_session(minsky) -> None:  # type: ignore[no-untyped-def]
    assert minsky("session", "start", "s1", "--task", "1", "--repo", "https://example.org/r.git").exit_code == 0


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-o", "sqlite.path=B.db", "--sqlite-path", "A.db"], "--sqlite-path and -o sqlite.path"),
        (["-o", "path=B.db", "--sqlite-path", "A.db"], "--sqlite-path and -o path"),
        (["-o", "cache_size=1", "-o", "cache_size=2"], "-o cache_size is given twice"),
        (["-o", "cache_size=x"], "-o cache_size=x: not a value sqlite accepts"),
        (["--sqlite-path", "A.db", "-o", "busy_timeout=soon"], "-o busy_timeout=soon: not a value sqlite accepts"),
    ],
)
def test_conflicting_flags_and_bad_option_values_are_usage_errors(  # type: ignore[no-untyped-def]
    minsky, one_session: None, args: list[str], named: str
) -> None:
    result = minsky("sessiondb", "migrate", "to", "sqlite", *args)
    assert result.exit_code == 2, result.output
    assert named in result.stderr and "Traceback" not in result.stderr
    assert not Path("A.db").exists() and not Path("B.db").exists()


def read_through_pty(*args: str) -> str:
    """stdout of `minsky ARGS` when stdout is a terminal, as a user sees it."""
    import os
    import pty
    import subprocess
    import sys

    main, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "minsky", *args], stdout=secondary, stderr=subprocess.PIPE)
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    return seen.decode("utf-8").replace("\r\n", "\n")


def test_session_list_is_a_table_on_a_terminal_and_tabs_in_a_pipe(minsky) -> None:  # type: ignore[no-untyped-def]
    from conftest import run_minsky

    for name, task, repo in (
        ("a", "1", "https://example.org/widgets.git"),
        ("long-名前", "22", "https://example.org/r.git"),
    ):
        assert minsky("session", "start", name, "--task", task, "--repo", repo).exit_code == 0
    piped = run_minsky("session", "list").stdout.splitlines()
    assert [line.split("\t")[:3] for line in piped] == [["a", "md#1", "widgets"], ["long-名前", "md#22", "r"]]
    table = read_through_pty("session", "list").splitlines()
    assert table[0].split() == ["NAME", "TASK", "REPO", "CREATED", "STATUS"]
    assert "\t" not in "".join(table)
    # Columns line up in terminal cells: a wide character takes two.
    from minsky.cli.table import width

    starts = [[width(line[: line.index(cell)]) for cell in line.split()] for line in table]
    assert starts[0] == starts[1] == starts[2]
