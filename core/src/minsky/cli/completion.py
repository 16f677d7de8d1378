"""``minsky completion SHELL``: print the shell's completion script, as gh and rustup do."""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  eval "$(minsky completion bash)"   (in ~/.bashrc)
    zsh:   eval "$(minsky completion zsh)"    (in ~/.zshrc)
    fish:  minsky completion fish > ~/.config/fish/completions/minsky.fish
    """
    from click.shell_completion import get_completion_class

    from minsky.cli import cli

    cls = get_completion_class(shell)
    assert cls is not None  # click ships all three
    click.echo(cls(cli, {}, "minsky", "_MINSKY_COMPLETE").source())
