"""``evalkit compare`` and ``evalkit gate``: paired evidence, and the verdict CI acts on."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from evalkit.cli.options import db_option, default_db
from evalkit.errors import ConfigError
from evalkit.report.ci import render_compare

EXIT_REGRESSION = 1  # a rule failed, or the verdict is inconclusive (without --allow-inconclusive)

@click.command()
@click.argument("run_id", default="latest")
@click.option("--baseline", help="MODEL of RUN_ID, or RUN:MODEL of another run (default: the run's suite's "
              "gates.baseline).")
@click.option("--candidate", help="MODEL of RUN_ID, or RUN:MODEL of another run (default: the run's suite's "
              "gates.candidate).")
@db_option()
@click.option("--seed", default=0, show_default=True, help="Bootstrap seed.")
@click.option("--resamples", default=2000, show_default=True, type=click.IntRange(min=0))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (format evalkit.compare/1).")
def compare(run_id: str, baseline: str | None, candidate: str | None, db: str | None, seed: int, resamples: int,
            as_json: bool) -> None:
    """Paired comparison of two models of a run, or of one model across two runs."""
    from evalkit.analysis.paired import compare_document, pair, parse_side
    from evalkit.analysis.watch import add_counts_and_watch
    from evalkit.cli.sides import compare_sides
    from evalkit.store import Store

    with Store(db or default_db(), read_only=True) as store:
        both_other = run_id == "latest" and ":" in (baseline or "") and ":" in (candidate or "")
        run = None if both_other else store.resolve_run_id(run_id)
        baseline, candidate = compare_sides(store, run, baseline, candidate)
        pairing = pair(store, parse_side(baseline, run, store), parse_side(candidate, run, store))
        report = compare_document(pairing, seed, resamples)
        add_counts_and_watch(report, store, pairing, seed=seed, resamples=resamples)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(render_compare(report))


@click.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option("--run", "run_ref", help="Run to gate (default: the latest complete run of this suite).")
@click.option("--baseline", help="MODEL or RUN:MODEL (default: the suite's gates.baseline).")
@click.option("--candidate", help="MODEL or RUN:MODEL (default: the suite's gates.candidate).")
@click.option("--run-first", is_flag=True, help="Run the suite first, then gate that run (what CI does).")
@click.option("--no-cache", is_flag=True, help="With --run-first: call the models even when a stored answer exists "
              "(refreshes a stored baseline).")
@db_option(next_to_suite=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (format evalkit.gate/1).")
@click.option("--markdown", "markdown", type=click.Path(dir_okay=False), help="Write a Markdown summary here "
              "(e.g. \"$GITHUB_STEP_SUMMARY\"; appended to).")
@click.option("--junit", "junit", type=click.Path(dir_okay=False), help="Write JUnit XML here (one case per gate).")
@click.option("--seed", type=int, help="Bootstrap seed (default: the suite's run.seed).")
@click.option("--resamples", default=2000, show_default=True, type=click.IntRange(min=0))
@click.option("--allow-inconclusive", is_flag=True, help="Exit 0 when the verdict is INCONCLUSIVE (the summary "
              "still says so); a failed rule still exits 1.")
def gate(suite: str, run_ref: str | None, baseline: str | None, candidate: str | None, run_first: bool,
         no_cache: bool, db: str | None, as_json: bool, markdown: str | None, junit: str | None, seed: int | None,
         resamples: int, allow_inconclusive: bool) -> None:
    """Check the suite's gates: exit 0 pass, 1 fail or inconclusive, 2 bad input."""
    from evalkit.analysis.gates import check_rules, evaluate
    from evalkit.analysis.heldout_checks import add_heldout
    from evalkit.analysis.paired import pair, parse_side
    from evalkit.analysis.watch import add_counts_and_watch, check_watch
    from evalkit.config.loader import line_of_key, load_suite
    from evalkit.engine.progress import default_progress
    from evalkit.report.ci import render_junit, render_markdown, render_text
    from evalkit.store import Store

    # Gating stored results calls no model: the suite's ${VAR} endpoints are only needed to run first.
    loaded = load_suite(suite, expand_env=run_first)
    spec = loaded.suite.gates
    if not spec.rules:
        raise ConfigError("the suite declares no gates.rules", file=str(loaded.path), key="gates")
    check_rules(spec.rules, str(loaded.path), lambda path: line_of_key(loaded, path))
    check_watch(spec.watch, str(loaded.path))
    baseline = baseline or spec.baseline
    candidate = candidate or spec.candidate
    if not baseline or not candidate:
        raise ConfigError("name the models to compare: gates.baseline and gates.candidate in the suite, or "
                          "--baseline/--candidate", file=str(loaded.path), key="gates")
    db_path = db or default_db(suite)
    if no_cache and not run_first:
        raise click.UsageError("--no-cache only applies with --run-first (gating stored results calls no model)")
    if run_first:
        from evalkit.engine.runner import run_suite

        models = sorted({s.rpartition(":")[2] for s in (baseline, candidate) if ":" not in s} or set())
        summary = run_suite(loaded, db_path, models or None, use_cache=not no_cache,
                            progress=default_progress(as_json), argv=sys.argv)
        run_ref = summary.run_id
    with Store(db_path, read_only=True) as store:
        run_id = store.resolve_run_id(run_ref) if run_ref else store.latest_complete_run(loaded.suite.name)
        pairing = pair(store, parse_side(baseline, run_id, store), parse_side(candidate, run_id, store))
        report = evaluate(store, pairing, spec.rules, loaded.suite.run.seed if seed is None else seed, resamples,
                          loaded.suite.retention_pair(), spec.correction,
                          max_score_errors=loaded.suite.scoring.max_score_errors)
        add_counts_and_watch(report, store, pairing, spec.rules, spec.watch,
                             loaded.suite.run.seed if seed is None else seed, resamples)
        report.setdefault("run_id", run_id)
        report["model_calls"] = store.call_counts(run_id)  # what this run paid for, and what the cache answered
        add_heldout(report, store, pairing, loaded.suite.run.contamination)
    record_gate(db_path, pairing, loaded.suite.name, report["verdict"])
    report["allow_inconclusive"] = allow_inconclusive
    if markdown:
        with Path(markdown).open("a", encoding="utf-8") as fh:
            fh.write(render_markdown(report))
    if junit:
        Path(junit).write_text(render_junit(report, loaded.suite.name), encoding="utf-8")
    click.echo(json.dumps(report, indent=2, default=str) if as_json else render_text(report))
    if report["verdict"] == "fail" or (report["verdict"] == "inconclusive" and not allow_inconclusive):
        sys.exit(EXIT_REGRESSION)


def record_gate(db_path: str, pairing: Any, suite_name: str, verdict: str) -> None:
    """Remember that this run's held-out set gated a model (``gate_checks``): ``evalkit export finetune``
    keeps its samples out of training data. A store that cannot be written is said, not fatal."""
    from evalkit.errors import StoreError
    from evalkit.store import Store

    try:
        with Store(db_path) as store:
            for run_id in dict.fromkeys((pairing.baseline.run_id, pairing.candidate.run_id)):
                store.record_gate_check(run_id, suite_name, str(pairing.baseline), str(pairing.candidate), verdict)
    except StoreError as exc:
        click.echo(f"warning: the gate check was not recorded in {db_path} ({exc}); evalkit export finetune will "
                   "not know this held-out set", err=True)


COMMANDS = [compare, gate]
