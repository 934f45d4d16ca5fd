"""``evalkit export inspect``, ``evalkit import inspect`` and ``evalkit retention``: inspect-ai logs out
and in, and lm-eval capability-retention checks. The export / import groups live in cli.transfer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from evalkit.cli.options import db_option, default_db
from evalkit.cli.transfer import export_group, import_group
from evalkit.errors import ConfigError


@export_group.command("inspect")
@click.argument("run_id", default="latest")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the logs (one .eval file per model; open it with 'inspect view --log-dir').")
@click.option("--model", "models", multiple=True, help="Export only this model (repeatable).")
@db_option()
def export_inspect(run_id: str, out_dir: str, models: tuple[str, ...], db: str | None) -> None:
    """Write RUN_ID as inspect-ai eval logs, one per model, for 'inspect view'."""
    from evalkit.errors import require
    from evalkit.interop.inspect_log import export_run
    from evalkit.store import Store

    require("inspect_ai", "inspect")  # before the store: a missing extra is the first thing to fix
    with Store(db or default_db(), read_only=True) as store:
        written = export_run(store, store.resolve_run_id(run_id), Path(out_dir), list(models) or None)
    for path in written:
        click.echo(str(path))
    click.echo(f"view with: inspect view --log-dir {out_dir}", err=True)


@import_group.command("inspect")
@click.argument("log", type=click.Path(dir_okay=False))
@click.option("--suite", "suite", required=True, type=click.Path(dir_okay=False),
              help="Suite whose dataset holds the log's sample ids; its scorers judge the answers.")
@click.option("--model", "model", help="Name of the model in the run (default: from the log's model).")
@db_option(next_to_suite=True)
def import_inspect(log: str, suite: str, model: str | None, db: str | None) -> None:
    """Store the inspect-ai eval log LOG as a run of one model, paired by sample id with SUITE's dataset."""
    from evalkit.config.loader import load_suite
    from evalkit.interop.inspect_log import build_import, store_import
    from evalkit.store import Store

    imported = build_import(load_suite(suite), Path(log), model, sys.argv)  # checks everything, writes nothing
    db_path = db or default_db(suite)
    with Store(db_path) as store:
        store_import(store, imported)
    click.echo(f"imported {len(imported.results)} answers of '{imported.name}' as run {imported.run_id} into "
               f"{db_path}; gate against it with: evalkit gate {suite} --baseline {imported.run_id}:{imported.name} "
               "--candidate RUN:MODEL")


@click.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option("--run", "run_ref", help="Run to attach the results to (default: the latest complete run of the suite).")
@db_option(next_to_suite=True)
def retention(suite: str, run_ref: str | None, db: str | None) -> None:
    """Run the suite's lm-eval retention tasks on its baseline and candidate and store the metrics."""
    from evalkit.config.loader import load_suite
    from evalkit.store import Store

    loaded = load_suite(suite)
    if loaded.suite.retention is None:
        raise ConfigError("the suite has no 'retention' section", file=str(loaded.path), key="retention")
    with Store(db or default_db(suite)) as store:
        run_id = store.resolve_run_id(run_ref) if run_ref else store.latest_complete_run(loaded.suite.name)
        rows = _retention_with_servers(loaded, store, run_id)
    click.echo(f"retention of run {run_id} ({loaded.suite.retention.backend}):")
    for r in rows:
        stderr = f" ± {r['stderr']:.4f}" if r["stderr"] is not None else ""
        click.echo(f"  {r['model']:<24} {r['task']}/{r['metric']},{r['filter']}: {r['value']:.4f}{stderr} (n={r['n']})")


def _retention_with_servers(loaded: Any, store: Any, run_id: str) -> list[dict[str, Any]]:
    """Run the retention check, first starting the vLLM server of a launch-mode model it needs."""
    from evalkit.backends import create_backends, live_endpoints, release_servers
    from evalkit.config.resolve import model_kind
    from evalkit.config.suite import BASE_SUFFIX
    from evalkit.interop.lm_eval import plan_retention, run_retention

    plan = plan_retention(loaded)
    owners = {ep.name.removesuffix(BASE_SUFFIX) for ep in plan.endpoints}
    launch = sorted(m for m in owners if model_kind(loaded.suite.models[m]) == "vllm/launch")
    backends = create_backends(loaded, launch) if launch else {}
    try:
        return run_retention(loaded, store, run_id, plan, live_endpoints(backends))
    finally:
        release_servers(backends)


COMMANDS = [retention]  # the inspect subcommands join the export / import groups of cli.transfer
