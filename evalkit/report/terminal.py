"""Terminal renderings of analysis documents that are not verdicts: a run's metrics (``evalkit run`` and
``evalkit show``, from the ``evalkit.show/1`` document) and the routing sweep (``evalkit route``)."""

from __future__ import annotations

import io
from typing import Any

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
        monthly = p.get("monthly_cost_usd")
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
    large_alone = r["large_only"].get("monthly_cost_usd")
    small_alone = r["small_only"].get("monthly_cost_usd")
    console.print(f"monthly at {r['volume_per_day']:,.0f} requests/day: {r['small']} alone "
                  f"{'—' if small_alone is None else f'${small_alone:,.0f}'}, {r['large']} alone "
                  f"{'—' if large_alone is None else f'${large_alone:,.0f}'}")
    hosting = r["self_hosting"]
    line = cost_line(r["small"], hosting) if hosting.get("basis") == "always-on" else None
    console.print(line or f"break-even volume: — ({hosting['note']})")
    return buffer.getvalue().rstrip()


def _fmt(metric: str, v: dict[str, Any] | None) -> str:
    if v is None or v["value"] is None:
        return "—"
    value = v["value"]
    if metric.startswith(("latency", "ttft")):
        text = f"{value:,.0f} ms"
    elif metric.startswith("client_lag"):
        text = f"{value:,.1f} ms"
    elif metric.startswith("cost") or metric == "judge_cost_usd":
        text = f"${value:,.4f}"
    elif metric in ("monthly_cost_usd",):
        text = f"${value:,.2f}"
    elif metric in ("throughput_rps", "output_tokens_per_s"):
        text = f"{value:,.2f}/s"
    elif metric in ("n", "n_errors", "n_score_errors", "prompt_tokens", "completion_tokens", "replicas_needed",
                    "break_even_requests_per_day", "judge_calls", "judge_errors"):
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
    console = Console(file=buffer, width=160, color_system=None, markup=False, highlight=False)
    console.print(table)
    for name in names:
        line = cost_line(name, payload["models"][name].get("cost"))
        if line:
            console.print(line)
    cold = [f"{n} {payload['models'][n]['cold_start_ms']:,.0f} ms" for n in names
            if payload["models"][n].get("cold_start_ms") is not None]
    if cold:
        console.print("cold start (first warm-up request, kept out of the latency figures): " + " · ".join(cold))
    return buffer.getvalue().rstrip()


def cost_line(name: str, c: dict[str, Any] | None) -> str | None:
    """One sentence on a self-hosted model's always-on cost: replicas, their throughput's source, break-even."""
    if not c or c.get("basis") != "always-on":
        return None
    volume = f"{c['volume_per_day']:,.0f} requests/day"
    if c["monthly_cost_usd"] is None:
        return f"{name}: always-on cost at {volume} unknown ({c['note']})"
    text = (f"{name}: always-on at {volume}: {c['replicas_needed']} replica(s) × ${c['gpu_usd_per_hour']:,.2f}/h "
            f"= ${c['monthly_cost_usd']:,.2f}/month (min {c['min_replicas']}; {c['requests_per_second']:,.2f} "
            f"requests/s per replica, {c['throughput_source']})")
    if c["break_even_requests_per_day"] is not None:
        text += (f"; break-even against {c['baseline']}: {c['break_even_requests_per_day']:,.0f} requests/day"
                 + ("" if c["break_even_stays_cheaper_from"] == c["break_even_requests_per_day"]
                    else f" ({c['break_even_note']})"))
    else:
        text += f"; break-even: {c['break_even_note']}"
    return text
