"""Terminal renderings of analysis documents that are not verdicts: a run's metrics (``evalkit run`` and
``evalkit show``, from the ``evalkit.show/1`` document) and the routing sweep (``evalkit route``)."""

from __future__ import annotations

import io
from typing import Any

from evalkit.analysis.metrics import METRICS


def render_route(r: dict[str, Any]) -> str:
    """The ``evalkit.route/1`` document as tables: the Pareto thresholds, each model alone, the oracle, APGR and
    CPT, the recommendation of each fold (the halves named) and the self-hosting break-even."""
    from rich.console import Console
    from rich.table import Table

    from evalkit.report.numbers import count, ms, share, threshold_words, usd

    buffer = io.StringIO()
    console = Console(file=buffer, width=150, color_system=None, markup=False, highlight=False)
    table = Table(title=f"routing {r['small']} → {r['large']} on {r['signal']}'s confidence, cascade "
                        f"({count(r['n_pairs'])} samples; Pareto-optimal thresholds)")
    for col in ("policy", "escalated", "accuracy", "tail5", "cost/1k", f"monthly @ {count(r['volume_per_day'])}/day",
                "p50", "p95"):
        table.add_column(col, justify="right")
    seen: set[float] = set()
    for p in r["policies"]["cascade"]:
        if not p["pareto"] or p["share_escalated"] in seen:  # thresholds that escalate the same samples: one row
            continue
        seen.add(p["share_escalated"])
        table.add_row(threshold_words(p["threshold"]), share(p["share_escalated"]), f"{p['accuracy']:.3f}",
                      f"{p['tail5']:.3f}", usd(p["cost_per_1k"]), usd(p.get("monthly_cost_usd"), digits=0),
                      ms(p["latency_ms_p50"]), ms(p["latency_ms_p95"]))
    console.print(table)
    console.print(f"{r['small']} alone: accuracy {r['small_only']['accuracy']:.3f}, cost/1k {usd(r['small_only']['cost_per_1k'])}; "
                  f"{r['large']} alone: accuracy {r['large_only']['accuracy']:.3f}, cost/1k {usd(r['large_only']['cost_per_1k'])}; "
                  f"oracle routing: accuracy {r['oracle']['accuracy']:.3f} escalating {share(r['oracle']['share_escalated'])}")
    gap = r.get("gap_recovery")
    if gap:
        console.print(gap_line(gap, r["large"]))
    if r.get("halves"):
        console.print(f"recommendation folds: {r['halves']['how']}")
    for style, folds in r["recommendation"].items():
        for f in folds:
            if f.get("threshold") is None:
                console.print(f"{style} {f['fold']}: {f['note']}")
                continue
            console.print(f"{style} {f['fold']}: {threshold_words(f['threshold'])} (chosen on half {f['fold'][0]}) → "
                          f"accuracy on half {f['fold'][-1]} {f['accuracy_test']:.3f} ({f['delta_vs_large_test']:+.3f} "
                          f"vs {r['large']}, 95% CI [{f['delta_ci_low']:+.3f}, {f['delta_ci_high']:+.3f}]), escalating "
                          f"{share(f['share_escalated_test'])}, cost/1k {usd(f['cost_per_1k_test'])}, target "
                          f"{'met' if f['meets_target_test'] else 'missed'} (max drop {r['max_drop']})")
    console.print(f"monthly at {count(r['volume_per_day'])} requests/day: {r['small']} alone "
                  f"{usd(r['small_only'].get('monthly_cost_usd'), digits=0)}, {r['large']} alone "
                  f"{usd(r['large_only'].get('monthly_cost_usd'), digits=0)}")
    hosting = r["self_hosting"]
    line = cost_line(r["small"], hosting) if hosting.get("basis") == "always-on" else None
    console.print(line or f"break-even volume: — ({hosting['note']})")
    return buffer.getvalue().rstrip()


def gap_line(gap: dict[str, Any], large: str) -> str:
    """APGR and CPT in one sentence, against the random router and the oracle."""
    from evalkit.report.numbers import share

    if gap["apgr"] is None:
        return f"APGR/CPT: {gap['note']}"
    cpts = ", ".join(f"CPT({k}) {share(v)}" for k, v in gap["cpt"].items())
    return (f"APGR {gap['apgr']:.3f} (random router 0.500, oracle {gap['apgr_oracle']:.3f}): the share of the quality "
            f"gap to {large} recovered, averaged over every share of calls to it; {cpts} of calls to {large} "
            "recover 50/80/95% of the gap (random: 50/80/95%)")


def _fmt(metric: str, v: dict[str, Any] | None) -> str:
    from evalkit.report.numbers import interval, number

    if v is None or v["value"] is None:
        return "—"
    text = number(metric, v["value"])
    if v.get("ci_low") is not None and v.get("ci_high") is not None and not metric.startswith("cost"):
        text += " " + interval(metric, v["ci_low"], v["ci_high"])
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
