"""The ``evalkit`` command line. Thin: parse, call one function, print.

Exit codes: 0 success; 1 a gate found a regression; 2 a problem with the input (suite, data,
arguments, store) — one line on stderr, no traceback unless ``--debug``; 3 an internal error;
4 a run finished incomplete (a model was stopped after failing every call); 130 interrupted.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from evalkit import __version__
from evalkit.errors import EvalkitError

DEFAULT_DB_NAME = "evalkit.duckdb"
EXIT_INCOMPLETE = 4


def _default_db(suite_path: str | None = None) -> str:
    """``$EVALKIT_DB``, else evalkit.duckdb next to the suite (run) or in the current folder."""
    if os.environ.get("EVALKIT_DB"):
        return os.environ["EVALKIT_DB"]
    if suite_path:
        return str(Path(suite_path).resolve().parent / DEFAULT_DB_NAME)
    return DEFAULT_DB_NAME


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


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evalkit")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def main(debug: bool) -> None:
    """evalkit: can a fine-tuned small model replace a frontier model on your task? Measure it."""


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option("--model", "models", multiple=True, help="Run only this model (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N samples.")
@click.option("--db", "db", help="DuckDB file (default: $EVALKIT_DB or evalkit.duckdb next to the suite).")
@click.option("--no-cache", is_flag=True, help="Call the models even when a stored answer exists.")
@click.option("--resume", "resume", metavar="RUN_ID", help="Finish an interrupted run.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's metrics as JSON (show --json).")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--shard", "shard", metavar="I/N", help="Run only part I of N of the samples (stable hash of the "
              "sample id); merge the parts with 'evalkit import parquet'.")
def run(suite: str, models: tuple[str, ...], limit: int | None, db: str | None, no_cache: bool,
        resume: str | None, as_json: bool, quiet: bool, shard: str | None) -> None:
    """Run every model of SUITE over its dataset, score each sample and store everything."""
    from evalkit.progress import default_progress
    from evalkit.runner import run_suite
    from evalkit.shards import parse_shard
    from evalkit.store import Store
    from evalkit.suite import load_suite
    from evalkit.summary import render_table, run_payload

    loaded = load_suite(suite)
    db_path = db or _default_db(suite)
    summary = run_suite(loaded, db_path, list(models) or None, limit, not no_cache, resume,
                        default_progress(quiet or as_json), sys.argv, parse_shard(shard) if shard else None)
    with Store(db_path, read_only=True) as store:
        payload = run_payload(store, summary.run_id)
    if as_json:
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(render_table(payload))
        click.echo(f"run {summary.run_id} stored in {db_path}; details: evalkit show {summary.run_id} --db {db_path}")
    for outcome in summary.outcomes:
        if outcome.status != "complete":
            click.echo(f"error: model '{outcome.model}' {outcome.status}: {outcome.error}", err=True)
    if summary.status != "complete":
        sys.exit(EXIT_INCOMPLETE)


@main.command()
@click.argument("run_id", default="latest")
@click.option("--db", "db", help="DuckDB file (default: $EVALKIT_DB or ./evalkit.duckdb).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (format evalkit.show/1).")
def show(run_id: str, db: str | None, as_json: bool) -> None:
    """Show the metrics of RUN_ID (an id, a unique prefix, or 'latest')."""
    from evalkit.store import Store
    from evalkit.summary import render_table, run_payload

    with Store(db or _default_db(), read_only=True) as store:
        payload = run_payload(store, store.resolve_run_id(run_id))
    click.echo(json.dumps(payload, indent=2) if as_json else render_table(payload))


@main.command()
@click.option("--db", "db", help="DuckDB file (default: $EVALKIT_DB or ./evalkit.duckdb).")
@click.option("--limit", default=50, type=click.IntRange(min=1), help="How many runs to list.")
@click.option("--json", "as_json", is_flag=True)
def runs(db: str | None, limit: int, as_json: bool) -> None:
    """List the runs in the store, newest first."""
    from evalkit.store import Store

    with Store(db or _default_db(), read_only=True) as store:
        rows = store.list_runs(limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no runs yet")
    for r in rows:
        click.echo(f"{r['run_id']}  {r['created_at']:%Y-%m-%d %H:%M}  {r['status']:<11} {r['suite_name']}  "
                   f"n={r['n_samples']}  models: {r['models'] or '-'}")


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option("--limit", type=click.IntRange(min=1), help="Check only the first N samples.")
def validate(suite: str, limit: int | None) -> None:
    """Check SUITE without calling any model: schema, dataset, every prompt rendered, scorers."""
    from evalkit.runner import prepare
    from evalkit.suite import load_suite

    loaded = load_suite(suite)
    prepared = prepare(loaded, None, limit)
    click.echo(f"ok: suite '{loaded.suite.name}' v{loaded.suite.version}: {len(prepared.rendered)} samples "
               f"rendered from {prepared.dataset.path.name} (sha256 {prepared.dataset.sha256[:12]}), "
               f"models: {', '.join(prepared.models)}")
    for name, spec in loaded.suite.models.items():
        env = spec.api_key_env
        if env and not os.environ.get(env):
            click.echo(f"warning: models.{name}.api_key_env: ${env} is not set; 'evalkit run' will stop",
                       err=True)


@main.command()
def schema() -> None:
    """Print the JSON Schema of the suite format (for editors)."""
    from evalkit.suite import dump_schema

    click.echo(dump_schema())


def _register_command_modules() -> None:
    """Commands that live in their own modules (evalkit/commands/) join the group here."""
    import importlib
    import pkgutil

    import evalkit.commands as commands

    for info in pkgutil.iter_modules(commands.__path__):
        module = importlib.import_module(f"evalkit.commands.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            main.add_command(command)


_register_command_modules()

if __name__ == "__main__":
    main()
