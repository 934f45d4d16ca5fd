"""Terminal renderings of analysis documents that are not verdicts: a run's metrics (``evalkit run`` and
``evalkit show``, from the ``evalkit.show/1`` document) and the routing sweep (``evalkit route``)."""

from __future__ import annotations

import io
from typing import Any

from evalkit.analysis.costs import monthly_cost
from evalkit.analysis.metrics import METRICS


def _usd(v: float | None) -> str:
    return "—" if v is None else f"${v:,.4f}"


def render_route(r: dict[str, Any]) -> str:
    """The ``evalkit.route/1`` document as tables: the Pareto thresholds, each model alone, the oracle, the
    recommendation of each fold and the self-hosting break-even."""
    from rich.console import Console
    from rich.table import Table

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


def _fmt(metric: str, v: dict[str, Any] | None) -> str:
    if v is None or v["value"] is None:
        return "—"
    value = v["value"]
    if metric.startswith(("latency", "ttft")):
        text = f"{value:,.0f} ms"
    elif metric.startswith("client_lag"):
        text = f"{value:,.1f} ms"
    elif metric.startswith("cost"):
        text = f"${value:,.4f}"
    elif metric in ("n", "n_errors", "n_score_errors", "prompt_tokens", "completion_tokens"):
        text = f"{value:,.0f}"
    elif metric.endswith("_mean") and "tokens" in metric:
        text = f"{value:,.1f}"
    else:
        text = f"{value:.3f}"
    if v.get("ci_low") is not None and v.get("ci_high") is not None and not metric.startswith("cost"):
        text += f" [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"
    return text


def render_table(payload: dict[str, Any]) -> str:
    """The metrics as a plain-text table, one column per model."""
    from rich.console import Console
    from rich.table import Table

    run = payload["run"]
    table = Table(title=f"{run['suite']} · run {run['run_id']} · {run['status']} · n={run['n_samples']}")
    table.add_column("metric")
    names = list(payload["models"])
    for name in names:
        m = payload["models"][name]
        table.add_column(f"{name}\n{m.get('model_ref') or ''}", justify="right")
    for metric in METRICS:
        cells = [_fmt(metric, payload["models"][n]["metrics"].get(metric)) for n in names]
        if all(c == "—" for c in cells):
            continue
        table.add_row(metric, *cells)
    buffer = io.StringIO()
    Console(file=buffer, width=160, color_system=None).print(table)
    cold = [f"{n} {payload['models'][n]['cold_start_ms']:,.0f} ms" for n in names
            if payload["models"][n].get("cold_start_ms") is not None]
    note = ("\ncold start (first warm-up request, kept out of the latency figures): " + " · ".join(cold)
            if cold else "")
    return buffer.getvalue().rstrip() + note
