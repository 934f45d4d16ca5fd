"""Stage 9 — the ``evalkit`` command line. Thin: parse, call one function, print. Nothing imports it.

Exit codes: 0 success; 1 a gate failed or is inconclusive (``gate --allow-inconclusive``: 0); 2 a
problem with the input (suite, data, arguments, store) — one line on stderr, no traceback unless ``--debug``; 3 an internal error;
4 a run finished incomplete (a model was stopped after failing every call) or failed (no
metrics); 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from evalkit.errors import EvalkitError
from evalkit.version import __version__


class _Group(click.Group):
    """Turns evalkit errors into one line and an exit code; --debug shows the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = "--debug" in sys.argv or os.environ.get("EVALKIT_DEBUG") == "1"
        try:
            return super().invoke(ctx)
        except EvalkitError as exc:
            if debug:
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # an evalkit bug: say so plainly, keep the traceback for --debug
            if debug:
                raise
            click.echo(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the "
                       "traceback, and please report it)", err=True)
            ctx.exit(3)


    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command's whole first sentence (click cuts it with "..." to fit one line; here it wraps)."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.version_option(__version__, prog_name="evalkit")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def main(debug: bool) -> None:
    """evalkit: can a fine-tuned small model replace a frontier model on your task? Measure it."""


def _register_commands() -> None:
    """Each command module lists its click commands in ``COMMANDS``; they join the group here."""
    from evalkit.cli import ecosystem, finetune, gating, load, plan, pr_comment, report, route, run, transfer

    for module in (run, gating, plan, report, route, transfer, ecosystem, load, finetune, pr_comment):
        for command in module.COMMANDS:
            main.add_command(command)


_register_commands()
