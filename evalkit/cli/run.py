"""``evalkit run``, ``show``, ``runs``, ``validate`` and ``schema``: running a suite and reading what it stored."""

from __future__ import annotations

import json
import sys

import click

from evalkit.cli.options import db_option, default_db

EXIT_INCOMPLETE = 4


@click.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option("--model", "models", multiple=True, help="Run only this model (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N samples.")
@db_option(next_to_suite=True)
@click.option("--no-cache", is_flag=True, help="Call the models even when a stored answer exists.")
@click.option("--resume", "resume", metavar="RUN_ID", help="Finish an interrupted run.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's metrics as JSON (show --json).")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--shard", "shard", metavar="I/N", help="Run only part I of N of the samples (stable hash of the "
              "sample id); merge the parts with 'evalkit import parquet'.")
def run(suite: str, models: tuple[str, ...], limit: int | None, db: str | None, no_cache: bool,
        resume: str | None, as_json: bool, quiet: bool, shard: str | None) -> None:
    """Run every model of SUITE over its dataset, score each sample and store everything."""
    from evalkit.analysis.coverage import coverage_warnings
    from evalkit.analysis.summary import run_payload
    from evalkit.config.loader import load_suite
    from evalkit.config.shards import parse_shard
    from evalkit.engine.progress import default_progress
    from evalkit.engine.runner import run_suite
    from evalkit.report.terminal import render_table
    from evalkit.store import Store

    loaded = load_suite(suite)
    db_path = db or default_db(suite)
    summary = run_suite(loaded, db_path, list(models) or None, limit, not no_cache, resume,
                        default_progress(quiet or as_json), sys.argv, parse_shard(shard) if shard else None)
    with Store(db_path, read_only=True) as store:
        payload = run_payload(store, summary.run_id)
        unconfident = coverage_warnings(store, summary.run_id)
        paced = store.run_load_points(summary.run_id)
    if paced:  # run.load: the asked and achieved rate, and whether the in-flight cap held arrivals back
        from evalkit.report.load import render_point

        for point in paced:
            click.echo("open loop: " + render_point(point["model"], point, None), err=True)
    if as_json:
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(render_table(payload))
        click.echo(f"run {summary.run_id} stored in {db_path}; details: evalkit show {summary.run_id} --db {db_path}")
    for line in unconfident:
        click.echo(f"warning: {line}", err=True)
    for group in summary.score_errors:  # exit 0, but said: these rows were scored 0 by a failing function
        click.echo(f"warning: score errors: {group.line()}", err=True)
    for outcome in summary.outcomes:
        if outcome.status != "complete":
            click.echo(f"error: model '{outcome.model}' {outcome.status}: {outcome.error}", err=True)
    if summary.status != "complete":
        sys.exit(EXIT_INCOMPLETE)


@click.command()
@click.argument("run_id", default="latest")
@db_option()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (format evalkit.show/1).")
def show(run_id: str, db: str | None, as_json: bool) -> None:
    """Show the metrics of RUN_ID (an id, a unique prefix, or 'latest')."""
    from evalkit.analysis.summary import run_payload
    from evalkit.report.terminal import render_table
    from evalkit.store import Store

    with Store(db or default_db(), read_only=True) as store:
        payload = run_payload(store, store.resolve_run_id(run_id))
    click.echo(json.dumps(payload, indent=2) if as_json else render_table(payload))


@click.command()
@db_option()
@click.option("--limit", default=50, type=click.IntRange(min=1), help="How many runs to list.")
@click.option("--json", "as_json", is_flag=True)
def runs(db: str | None, limit: int, as_json: bool) -> None:
    """List the runs in the store, newest first."""
    from evalkit.store import Store

    with Store(db or default_db(), read_only=True) as store:
        rows = store.list_runs(limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no runs yet")
    for r in rows:
        click.echo(f"{r['run_id']}  {r['created_at']:%Y-%m-%d %H:%M}  {r['status']:<11} {r['suite_name']}  "
                   f"n={r['n_samples']}  models: {r['models'] or '-'}")


@click.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option("--limit", type=click.IntRange(min=1), help="Check only the first N samples.")
@click.option("--json", "as_json", is_flag=True, help="Print what was checked as JSON (format evalkit.validate/1: "
              "the suite's name, version and sha256, the dataset's sha256, the samples, models and gate pair).")
def validate(suite: str, limit: int | None, as_json: bool) -> None:
    """Check SUITE without calling any model: schema, dataset, every prompt rendered, scorers, gates."""
    from evalkit.analysis.gates import check_rules
    from evalkit.analysis.watch import check_watch
    from evalkit.config.loader import line_of_key, load_suite
    from evalkit.config.resolve import missing_api_key
    from evalkit.scoring.prepare import prepare

    loaded = load_suite(suite)
    check_watch(loaded.suite.gates.watch, str(loaded.path))  # what `evalkit gate` rejects, rejected here too
    prepared = prepare(loaded, None, limit)
    slices = {s.slice for s in prepared.dataset.samples if s.slice is not None}
    check_rules(loaded.suite.gates.rules, str(loaded.path), lambda path: line_of_key(loaded, path), slices)
    for name, spec in loaded.suite.models.items():
        missing = missing_api_key(name, spec, str(loaded.path))
        if missing is not None:
            click.echo(f"warning: {missing} ('evalkit run' will stop)", err=True)
    if as_json:  # what CI keys a stored baseline by (action.yml): the same hashes a run records
        click.echo(json.dumps({"format": "evalkit.validate/1", "suite": loaded.suite.name,
                               "version": loaded.suite.version, "suite_sha256": loaded.content_hash(),
                               "dataset_path": str(prepared.dataset.path), "dataset_sha256": prepared.dataset.sha256,
                               "samples": len(prepared.rendered), "models": list(prepared.models),
                               "baseline": loaded.suite.gates.baseline, "candidate": loaded.suite.gates.candidate,
                               "null_targets": prepared.null_targets}))
        return
    click.echo(f"ok: suite '{loaded.suite.name}' v{loaded.suite.version}: {len(prepared.rendered)} samples "
               f"rendered from {prepared.dataset.path.name} (sha256 {prepared.dataset.sha256[:12]}), "
               f"models: {', '.join(prepared.models)}")
    if prepared.null_targets:
        many = prepared.null_targets > 1
        click.echo(f"note: {prepared.null_targets} sample{'s have' if many else ' has'} a null target "
                   "(target.allow_null): the custom scorer gets None for "
                   f"{'them' if many else 'it'}")


@click.command()
def schema() -> None:
    """Print the JSON Schema of the suite format (for editors)."""
    from evalkit.config.loader import dump_schema

    click.echo(dump_schema())


COMMANDS = [run, show, runs, validate, schema]
