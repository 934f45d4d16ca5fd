"""``evalkit report``: the self-contained HTML report of a run, or the history of a suite across runs."""

from __future__ import annotations

from pathlib import Path

import click

from evalkit.cli.options import default_db
from evalkit.errors import ConfigError


@click.command()
@click.argument("run_id", default="latest")
@click.option("--db", "dbs", multiple=True, help="DuckDB file (default: $EVALKIT_DB or ./evalkit.duckdb); with "
              "--history, repeat it to merge the runs of several stores.")
@click.option("--baseline", help="Baseline model (default: the suite's gates.baseline, else the first model).")
@click.option("--candidate", help="Candidate model (default: the suite's gates.candidate, else the second).")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False),
              help="HTML file to write (default: reports/<suite>-<run id>.html, or reports/<suite>-history.html).")
@click.option("--volume", "volume", type=click.FloatRange(min=0),
              help="Requests per day for the monthly cost, replicas and routing costs (default: the suite's "
              "run.volume_per_day, 100,000).")
@click.option("--history", "history", metavar="SUITE_NAME", help="Instead of one run: every run of this suite "
              "over time (metrics with CIs, gate verdicts, git commits, model versions).")
def report(run_id: str, dbs: tuple[str, ...], baseline: str | None, candidate: str | None, output: str | None,
           volume: float | None, history: str | None) -> None:
    """Write a self-contained HTML report of RUN_ID for stakeholders (or, with --history, of a suite's runs)."""
    from evalkit.report import write_report
    from evalkit.store import Store

    if history:
        from evalkit.report.history import write_history

        path = write_history([Path(d) for d in (dbs or (default_db(),))], history,
                             output or f"reports/{history}-history.html")
        click.echo(f"history written to {path} ({path.stat().st_size / 1024:,.0f} KiB)")
        return
    if len(dbs) > 1:
        raise ConfigError("one --db for a run's report (several only with --history SUITE_NAME)")
    with Store(dbs[0] if dbs else default_db(), read_only=True) as store:
        run_id = store.resolve_run_id(run_id)
        suite = store.get_run(run_id)["suite_name"]
        path = write_report(store, run_id, output or f"reports/{suite}-{run_id}.html", baseline=baseline,
                            candidate=candidate, volume_per_day=volume)
    click.echo(f"report written to {path} ({path.stat().st_size / 1024:,.0f} KiB)")


COMMANDS = [report]
