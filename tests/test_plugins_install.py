"""`minsky plugins install/uninstall`: names, refusals and pip failures (the real install is
exercised from dist/ in a fresh venv by tests/test_wheels.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from minsky.installer import expand


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("postgres", "minsky-backend-postgres"),
        ("postgres>=0.1,<0.3", "minsky-backend-postgres>=0.1,<0.3"),
        ("postgres[extra]", "minsky-backend-postgres[extra]"),
        ("minsky-backend-mysql", "minsky-backend-mysql"),
        ("Minsky_Backend_Jsonl==0.1.0", "Minsky_Backend_Jsonl==0.1.0"),
        ("./plugins/minsky-backend-postgres", "./plugins/minsky-backend-postgres"),
        ("git+https://example.org/x.git", "git+https://example.org/x.git"),
        ("x @ https://example.org/x.whl", "x @ https://example.org/x.whl"),
    ],
)
def test_short_names_name_backends_and_anything_else_goes_to_pip_as_given(given: str, meant: str) -> None:
    assert expand(given) == meant


def test_a_file_in_the_current_directory_is_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine-0.1-py3-none-any.whl").write_bytes(b"")
    assert expand("mine-0.1-py3-none-any.whl") == "mine-0.1-py3-none-any.whl"


@pytest.mark.parametrize("name", ["minsky", "Minsky", "minsky-backend-json", "sqlite"])
def test_uninstall_refuses_core_and_its_builtin_backends(minsky, name: str) -> None:  # type: ignore[no-untyped-def]
    result = minsky("plugins", "uninstall", "postgres", name)
    assert result.exit_code == 2
    assert "refusing to uninstall" in result.stderr and "minsky needs it" in result.stderr
    from minsky.plugins import registry

    assert {"json", "sqlite"} <= set(registry().backends)


def test_a_failed_pip_install_is_one_line_and_exit_10(minsky, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "wheelhouse"
    empty.mkdir()
    result = minsky("plugins", "install", "nosuchbackend", "--no-index", "--find-links", str(empty))
    assert result.exit_code == 10
    assert "minsky: error: pip install failed" in result.stderr
    assert "Traceback" not in result.stderr


def test_install_needs_a_name(minsky) -> None:  # type: ignore[no-untyped-def]
    result = minsky("plugins", "install")
    assert result.exit_code == 2 and "name at least one plugin" in result.stderr
