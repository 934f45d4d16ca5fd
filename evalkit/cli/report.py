"""``evalkit report``: the self-contained HTML report of a run."""

from __future__ import annotations

import click

from evalkit.cli.options import db_option, default_db


@click.command()
@click.argument("run_id", default="latest")
@db_option()
@click.option("--baseline", help="Baseline model (default: the suite's gates.baseline, else the first model).")
@click.option("--candidate", help="Candidate model (default: the suite's gates.candidate, else the second).")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False),
              help="HTML file to write (default: reports/<suite>-<run id>.html).")
@click.option("--volume", "volume", type=click.FloatRange(min=0),
              help="Requests per day for the monthly cost, replicas and routing costs (default: the suite's "
              "run.volume_per_day, 100,000).")
def report(run_id: str, db: str | None, baseline: str | None, candidate: str | None, output: str | None,
           volume: float | None) -> None:
    """Write a self-contained HTML report of RUN_ID for stakeholders."""
    from evalkit.report import write_report
    from evalkit.store import Store

    with Store(db or default_db(), read_only=True) as store:
        run_id = store.resolve_run_id(run_id)
        suite = store.get_run(run_id)["suite_name"]
        path = write_report(store, run_id, output or f"reports/{suite}-{run_id}.html", baseline=baseline,
                            candidate=candidate, volume_per_day=volume)
    click.echo(f"report written to {path} ({path.stat().st_size / 1024:,.0f} KiB)")


COMMANDS = [report]
