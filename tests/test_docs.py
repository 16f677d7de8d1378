"""Documentation that must stay in step with the code."""

from __future__ import annotations

import runpy

from conftest import REPO


def test_hook_reference_matches_the_docstrings() -> None:
    generator = runpy.run_path(str(REPO / "docs" / "generate_reference.py"))
    page = (REPO / "docs" / "hook-reference.md").read_text("utf-8")
    assert page == generator["render"](), "run: python docs/generate_reference.py"


def test_every_exit_code_is_documented() -> None:
    from minsky import errors

    used = {cls.exit_code for cls in vars(errors).values() if isinstance(cls, type) and hasattr(cls, "exit_code")}
    table = (REPO / "docs" / "cli.md").read_text("utf-8")
    assert len(used) >= 10
    for code in sorted(used | {0, 2, 130}):
        assert f"| {code} |" in table, code


def test_readme_opens_with_the_two_commands() -> None:
    text = (REPO / "README.md").read_text("utf-8")
    blocks = [b.split("```", 1)[0].strip() for b in text.split("```bash\n")[1:3]]
    assert "pip install ./core" in blocks[0] and "minsky session" in blocks[0]
    assert "nox -s tests" in blocks[1]
    assert "nox -s tests" in (REPO / ".ci" / "run").read_text()
