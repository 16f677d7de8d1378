"""The ``minsky`` command. Kept thin: each group lives in its own module, loaded
only when used, and errors become one line and an exit code here, in one place."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

import click

from minsky import __version__

# name -> (module:attribute, one-line help). Help text lives here so that
# ``minsky --help`` lists the groups without importing them.
COMMANDS: dict[str, tuple[str, str]] = {
    "session": ("minsky.cli.session:session", "Start, list, end and clean sessions."),
    "sessiondb": ("minsky.cli.sessiondb:sessiondb", "Inspect, check and migrate the session store."),
    "config": ("minsky.cli.config:config", "Read and change configuration."),
    "plugins": ("minsky.cli.plugins:plugins", "List, install and uninstall plugins."),
    "completion": ("minsky.cli.completion:completion", "Print the shell completion script (bash, zsh, fish)."),
}


class MinskyGroup(click.Group):
    """Lazy subcommands, and the single place where errors become exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, attr = COMMANDS[cmd_name][0].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.UsageError as exc:
            report_usage_error(exc)
            ctx.exit(2)

    def invoke(self, ctx: click.Context) -> Any:
        from minsky.errors import MinskyError

        try:
            return super().invoke(ctx)
        except MinskyError as exc:
            report_error(exc)
            ctx.exit(exc.exit_code)
        except click.exceptions.UsageError as exc:
            report_usage_error(exc)
            ctx.exit(2)
        except click.exceptions.ClickException as exc:
            report_error(exc)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt as exc:
            from minsky.signals import interrupted_exit_code

            code, what = interrupted_exit_code(exc)
            from minsky.cli.output import echo

            echo(f"minsky: {what}; nothing half-written was left behind", err=True)
            ctx.exit(code)
        except BrokenPipeError:
            # The reader went away (`minsky session list | head`): stop quietly, as a process
            # killed by SIGPIPE would, and keep the interpreter from complaining at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(141)
        except Exception as exc:
            report_error(exc, internal=True)
            ctx.exit(1)


def debug_enabled() -> bool:
    return os.environ.get("MINSKY_DEBUG", "") not in ("", "0")


def report_usage_error(exc: click.exceptions.UsageError) -> None:
    """click's usage errors, in minsky's one format: the message may quote a stray argument
    or an option's value, which may be a connection string, so it is redacted too."""
    from minsky.cli.output import echo, printable
    from minsky.redact import redact_text

    where = exc.ctx.command_path if exc.ctx is not None else "minsky"
    echo(f"minsky: error: {printable(redact_text(exc.format_message()))}", err=True)
    echo(f"minsky: hint: see `{printable(where)} --help`", err=True)


def report_error(exc: BaseException, *, internal: bool = False) -> None:
    from minsky.cli.output import echo, printable
    from minsky.redact import redact_text

    if debug_enabled():
        echo(redact_text(traceback.format_exc()), err=True, nl=False)
    if internal:
        text = f"{type(exc).__name__}: {exc}"
        first = text.splitlines()[0] if text.strip() else type(exc).__name__
        echo(f"minsky: internal error: {printable(redact_text(first))} (rerun with --debug)", err=True)
        return
    message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
    echo(f"minsky: error: {printable(redact_text(message))}", err=True)
    hint = getattr(exc, "hint", None)
    if hint:
        echo(f"minsky: hint: {printable(redact_text(hint))}", err=True)


@click.group(cls=MinskyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="minsky", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs (secrets stay masked).")
def cli(debug: bool) -> None:
    """minsky keeps session records in a pluggable store (JSON, SQLite, PostgreSQL…)
    and moves them between stores without losing a byte."""
    if debug:
        os.environ["MINSKY_DEBUG"] = "1"
    level = "DEBUG" if debug else os.environ.get("MINSKY_LOG_LEVEL")
    if level:
        from minsky.logs import configure

        configure(level)


def main() -> None:
    from minsky.signals import interrupt_on_termination

    interrupt_on_termination()
    cli.main(prog_name="minsky")
    sys.exit(0)
