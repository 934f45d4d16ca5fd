"""``evalkit route``: what if the tuned model answers the confident majority and the frontier the rest?"""

from __future__ import annotations

import io
import json

import click

from evalkit.cli.options import db_option, default_db


@click.command()
@click.argument("run_id", default="latest")
@click.option("--small", required=True, help="The model that answers unless a sample is escalated.")
@click.option("--large", required=True, help="The model escalations go to.")
@click.option("--signal", "signal_model", help="Route on this model's stored confidence (a router); "
              "default: the small model's own.")
@click.option("--max-drop", default=0.01, show_default=True, type=click.FloatRange(min=0),
              help="Target: accuracy within this of the large model, at least cost.")
@click.option("--volume", default=100_000, show_default=True, type=click.FloatRange(min=0),
              help="Requests per day, for the monthly cost.")
@click.option("--gpu-usd-per-hour", type=click.FloatRange(min=0), help="Self-hosting price of one always-on GPU "
              "(default: the small model's cost.gpu_usd_per_hour in the suite).")
@click.option("--gpu-monthly-usd", type=click.FloatRange(min=0), help="A fixed monthly self-hosting cost instead.")
@db_option()
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (format evalkit.route/1).")
def route(run_id: str, small: str, large: str, signal_model: str | None, max_drop: float, volume: float,
          gpu_usd_per_hour: float | None, gpu_monthly_usd: float | None, db: str | None, seed: int,
          as_json: bool) -> None:
    """Sweep routing thresholds over a stored run: accuracy, cost and latency of every policy."""
    from evalkit.analysis.routing import analyse
    from evalkit.store import Store

    with Store(db or default_db()) as store:
        result = analyse(store, store.resolve_run_id(run_id), small, large, signal_model, max_drop, volume, seed,
                         gpu_usd_per_hour=gpu_usd_per_hour, gpu_monthly_usd=gpu_monthly_usd)
    click.echo(json.dumps(result, indent=2, default=str) if as_json else render(result))


def _usd(v: float | None) -> str:
    return "—" if v is None else f"${v:,.4f}"


def render(r: dict) -> str:
    from rich.console import Console
    from rich.table import Table

    from evalkit.analysis.costs import monthly_cost

    buffer = io.StringIO()
    console = Console(file=buffer, width=150, color_system=None, markup=False, highlight=False)
    table = Table(title=f"routing {r['small']} → {r['large']} on {r['signal']}'s confidence, cascade "
                        f"({r['n_pairs']} samples; Pareto-optimal thresholds)")
    for col in ("threshold", "escalated", "accuracy", "tail5", "cost/1k", f"monthly @ {r['volume_per_day']:,.0f}/day",
                "p50 ms", "p95 ms"):
        table.add_column(col, justify="right")
    for p in r["policies"]["cascade"]:
        if not p["pareto"]:
            continue
        monthly = monthly_cost(p["cost_per_1k"], r["volume_per_day"])
        table.add_row(f"{p['threshold']:.4g}", f"{p['share_escalated']:.1%}", f"{p['accuracy']:.3f}",
                      f"{p['tail5']:.3f}", _usd(p["cost_per_1k"]), "—" if monthly is None else f"${monthly:,.0f}",
                      "—" if p["latency_ms_p50"] is None else f"{p['latency_ms_p50']:.0f}",
                      "—" if p["latency_ms_p95"] is None else f"{p['latency_ms_p95']:.0f}")
    console.print(table)
    console.print(f"{r['small']} alone: accuracy {r['small_only']['accuracy']:.3f}, cost/1k {_usd(r['small_only']['cost_per_1k'])}; "
                  f"{r['large']} alone: accuracy {r['large_only']['accuracy']:.3f}, cost/1k {_usd(r['large_only']['cost_per_1k'])}; "
                  f"oracle routing: accuracy {r['oracle']['accuracy']:.3f} escalating {r['oracle']['share_escalated']:.1%}")
    for style, folds in r["recommendation"].items():
        for f in folds:
            if f.get("threshold") is None:
                console.print(f"{style} {f['fold']}: {f['note']}")
                continue
            console.print(f"{style} {f['fold']}: threshold {f['threshold']:.4g} → held-out accuracy "
                          f"{f['accuracy_test']:.3f} ({f['delta_vs_large_test']:+.3f} vs {r['large']}, 95% CI "
                          f"[{f['delta_ci_low']:+.3f}, {f['delta_ci_high']:+.3f}]), escalating "
                          f"{f['share_escalated_test']:.1%}, cost/1k {_usd(f['cost_per_1k_test'])}, target "
                          f"{'met' if f['meets_target_test'] else 'missed'} (max drop {r['max_drop']})")
    hosting = r["self_hosting"]
    if hosting["break_even_calls_per_day"] is None:
        console.print(f"break-even volume: — ({hosting['note']})")
    else:
        console.print(f"self-hosting {r['small']} on one always-on GPU (${hosting['self_hosted_monthly_usd']:,.0f}/month) "
                      f"beats {r['large']}'s API (${hosting['api_cost_per_call']:.5f}/call) above "
                      f"{hosting['break_even_calls_per_day']:,.0f} calls/day")
    return buffer.getvalue().rstrip()


COMMANDS = [route]
