"""``evalkit route``: what if the tuned model answers the confident majority and the frontier the rest?"""

from __future__ import annotations

import json

import click

from evalkit.cli.options import db_option, default_db
from evalkit.report.terminal import render_route


@click.command()
@click.argument("run_id", default="latest")
@click.option("--small", help="The model that answers unless a sample is escalated (default: the suite's "
              "gates.candidate).")
@click.option("--large", help="The model escalations go to (default: the suite's gates.baseline).")
@click.option("--signal", "signal_model", help="Route on this model's stored confidence (a router); "
              "default: the small model's own.")
@click.option("--max-drop", default=0.01, show_default=True, type=click.FloatRange(min=0),
              help="Target: accuracy within this of the large model, at least cost.")
@click.option("--volume", type=click.FloatRange(min=0),
              help="Requests per day, for the monthly cost (default: the suite's run.volume_per_day, 100,000).")
@click.option("--gpu-usd-per-hour", type=click.FloatRange(min=0), help="Self-hosting price of one always-on GPU "
              "(default: the small model's cost.gpu_usd_per_hour in the suite).")
@click.option("--gpu-monthly-usd", type=click.FloatRange(min=0), help="A fixed monthly cost of one replica instead "
              "(e.g. a reserved instance).")
@click.option("--requests-per-second", type=click.FloatRange(min=0, min_open=True), help="Requests/s one replica of "
              "the small model sustains (default: its cost.requests_per_second, else the throughput measured in the run).")
@db_option()
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (format evalkit.route/1).")
def route(run_id: str, small: str | None, large: str | None, signal_model: str | None, max_drop: float, volume: float | None,
          gpu_usd_per_hour: float | None, gpu_monthly_usd: float | None, requests_per_second: float | None,
          db: str | None, seed: int,
          as_json: bool) -> None:
    """Sweep routing thresholds over a stored run: accuracy, cost and latency of every policy.

    Monthly costs are per call for API models and always-on replicas for self-hosted ones (cost.gpu_usd_per_hour):
    a cascade's small model serves every request, router-first splits them. Also APGR and CPT(50/80/95%)
    (RouteLLM's summary of the accuracy-vs-share-of-large-calls curve). The recommended threshold is chosen on
    one half of the samples (A or B, a seeded split by sample id) and judged on the other."""
    from evalkit.analysis.capacity import run_volume
    from evalkit.analysis.routing import analyse
    from evalkit.cli.sides import route_sides
    from evalkit.store import Store

    with Store(db or default_db()) as store:
        run_id = store.resolve_run_id(run_id)
        small, large = route_sides(store, run_id, small, large)
        volume = run_volume(store, run_id) if volume is None else volume
        result = analyse(store, run_id, small, large, signal_model, max_drop, volume, seed,
                         gpu_usd_per_hour=gpu_usd_per_hour, gpu_monthly_usd=gpu_monthly_usd,
                         requests_per_second=requests_per_second)
    click.echo(json.dumps(result, indent=2, default=str) if as_json else render_route(result))


COMMANDS = [route]
