"""``evalkit load``: sweep open-loop arrival rates against a model and find its goodput under a p99 SLO."""

from __future__ import annotations

import json
import sys

import click

from evalkit.cli.options import db_option, default_db


def parse_rates(text: str) -> tuple[float, ...]:
    """``1,2,4.5`` → (1.0, 2.0, 4.5); every rate positive."""
    try:
        rates = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers (e.g. 1,2,4,8)",
                                 param_hint="--rates") from None
    if not rates or any(not r > 0 or r != r or r == float("inf") for r in rates):
        raise click.BadParameter(f"{text!r}: every rate must be a positive number of requests per second",
                                 param_hint="--rates")
    return rates


@click.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option("--model", "models", multiple=True, required=True, help="The model to load (repeatable: one "
              "after another, never at once).")
@click.option("--rates", required=True, help="Asked arrival rates in requests/s, comma-separated: 1,2,4,8,16.")
@click.option("--slo-p99-ms", required=True, type=click.FloatRange(min=0, min_open=True),
              help="The SLO: p99 latency from scheduled arrival (queueing included), in ms.")
@click.option("--max-error-rate", default=0.01, show_default=True, type=click.FloatRange(0, 1),
              help="A rate meets the SLO only with at most this share of failed calls.")
@click.option("--duration-s", type=click.FloatRange(min=0, min_open=True),
              help="Seconds of arrivals per rate (default 30): rate × duration requests.")
@click.option("--requests", type=click.IntRange(min=1), help="Requests per rate, instead of --duration-s.")
@click.option("--arrival", type=click.Choice(["poisson", "constant"]),
              help="Arrival process (default: the suite's run.load.arrival, else poisson).")
@click.option("--max-in-flight", type=click.IntRange(min=1),
              help="Safety cap on requests in flight (default: the suite's run.load.max_in_flight, else 256).")
@click.option("--seed", type=int, help="Seed of the Poisson arrivals (default: run.load.seed, else 0).")
@click.option("--warmup", default=4, show_default=True, type=click.IntRange(min=0),
              help="Unmeasured requests, one at a time, before the first rate.")
@click.option("--limit", type=click.IntRange(min=1), help="Cycle through only the first N samples.")
@click.option("--all-rates", is_flag=True, help="Keep sweeping after the first rate that misses the SLO.")
@db_option(next_to_suite=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (format evalkit.load/1).")
def load(suite: str, models: tuple[str, ...], rates: str, slo_p99_ms: float, max_error_rate: float,
         duration_s: float | None, requests: int | None, arrival: str | None, max_in_flight: int | None,
         seed: int | None, warmup: int, limit: int | None, all_rates: bool, db: str | None, as_json: bool) -> None:
    """Send SUITE's prompts to a model open loop at each rate; store latency, TTFT, errors and throughput per
    rate, and report the goodput: the highest rate within the SLO."""
    from evalkit.config.loader import load_suite
    from evalkit.engine.load import SweepOptions, run_sweep
    from evalkit.report.load import render_load, render_point

    if duration_s is not None and requests is not None:
        raise click.UsageError("give --duration-s or --requests, not both")
    asked = parse_rates(rates)
    loaded = load_suite(suite)
    spec = loaded.suite.run.load
    options = SweepOptions(
        rates=asked, slo_p99_ms=slo_p99_ms, max_error_rate=max_error_rate, duration_s=duration_s,
        requests=requests, arrival=arrival or (spec.arrival if spec else "poisson"),
        max_in_flight=max_in_flight or (spec.max_in_flight if spec else 256),
        seed=seed if seed is not None else (spec.seed if spec else 0), warmup=warmup, limit=limit, all_rates=all_rates)

    def progress(model: str, point: dict[str, object]) -> None:
        if not as_json:
            click.echo(render_point(model, point, slo_p99_ms), err=True)

    doc = run_sweep(loaded, db or default_db(suite), list(models), options, sys.argv, progress)
    click.echo(json.dumps(doc, indent=2, default=str) if as_json else render_load(doc))


COMMANDS = [load]
