"""Open-loop load in words and pictures: the ``evalkit load`` table (text), and the report's
latency-against-rate curve per model (p50/p95/p99 against asked rate, the SLO line, the goodput marked),
drawn from the newest stored sweep of each of the run's models on the run's suite."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

from evalkit.report.charts import PAD, H, W, _frame, _svg
from evalkit.store.db import Store

PERCENTILES = (("latency_ms_p50", "p50", "4 3"), ("latency_ms_p95", "p95", "2 2"), ("latency_ms_p99", "p99", ""))


def _ms(v: Any) -> str:
    return "—" if v is None else f"{v:,.1f}"


def render_point(model: str, p: dict[str, Any], slo_p99_ms: float | None) -> str:
    """One finished rate as a progress line."""
    verdict = "" if slo_p99_ms is None else ("  within SLO" if p.get("meets_slo") else "  misses SLO")
    capped = f", {p['cap_waits']} held by the in-flight cap (max {_ms(p['cap_delay_ms_max'])} ms)" if p["cap_waits"] else ""
    return (f"{model} @ {p['rate_per_s']:g}/s: {p['n_sent']} sent, achieved {_ms(p['achieved_rps'])}/s, "
            f"p50/p99 {_ms(p['latency_ms_p50'])}/{_ms(p['latency_ms_p99'])} ms, errors "
            f"{(p['error_rate'] or 0):.1%}{capped}{verdict}")


def render_load(doc: dict[str, Any]) -> str:
    """The ``evalkit.load/1`` document as one table per model and its goodput."""
    import io

    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=160, color_system=None, markup=False, highlight=False)
    for s in doc["sweeps"]:
        table = Table(title=f"{s['model']} ({s['model_ref']}): open loop, {s['arrival']} arrivals, SLO p99 ≤ "
                            f"{s['slo_p99_ms']:g} ms from arrival, errors ≤ {s['max_error_rate']:.1%} — load {s['load_id']}")
        for col in ("asked /s", "achieved /s", "sent", "errors", "p50 ms", "p95 ms", "p99 ms", "p99 from arrival",
                    "TTFT p50", "TTFT p99", "cap waits", "max cap delay ms", "SLO"):
            table.add_column(col, justify="right")
        for p in s["points"]:
            table.add_row(f"{p['rate_per_s']:g}", _ms(p["achieved_rps"]), str(p["n_sent"]), f"{(p['error_rate'] or 0):.1%}",
                          _ms(p["latency_ms_p50"]), _ms(p["latency_ms_p95"]), _ms(p["latency_ms_p99"]),
                          _ms(p["e2e_ms_p99"]), _ms(p["ttft_ms_p50"]), _ms(p["ttft_ms_p99"]), str(p["cap_waits"]),
                          _ms(p["cap_delay_ms_max"]), "met" if p["meets_slo"] else "missed")
        console.print(table)
        if s["goodput_rps"] is None:
            console.print(f"goodput of {s['model']}: none — the lowest rate already misses the SLO")
        else:
            console.print(f"goodput of {s['model']}: {s['goodput_rps']:g} requests/s within p99 ≤ {s['slo_p99_ms']:g} ms")
    return buffer.getvalue().rstrip()


def latency_vs_rate(model: str, color: str, points: list[dict[str, Any]], slo_p99_ms: float | None,
                    goodput_rps: float | None) -> Markup:
    """p50/p95/p99 latency against asked rate for one model, the SLO as a dashed line, the goodput marked."""
    usable = [p for p in points if p["latency_ms_p99"] is not None]
    title = f"latency against arrival rate: {model}"
    if not usable:
        return _svg(_frame("asked rate (requests/s)", "latency (ms)", [], []) +
                    [f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="axis">no successful requests</text>'],
                    title, [])
    rates = [p["rate_per_s"] for p in usable]
    r_lo, r_hi = 0.0, max(rates) * 1.05
    top = max([p["latency_ms_p99"] for p in usable] + [slo_p99_ms or 0.0]) * 1.1 or 1.0

    def sx(v: float) -> float:
        return PAD + (v - r_lo) / (r_hi - r_lo or 1) * (W - PAD - 10)

    def sy(v: float) -> float:
        return H - PAD - min(v, top) / top * (H - PAD - 10)

    parts = _frame("asked rate (requests/s)", "latency (ms)", [(sx(r), f"{r:g}") for r in rates],
                   [(sy(top * t), f"{top * t:,.0f}") for t in (0, .25, .5, .75, 1)])
    for key, label, dash in PERCENTILES:
        pts = [(sx(p["rate_per_s"]), sy(p[key])) for p in usable if p[key] is not None]
        path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(pts))
        parts.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2" data-series="{label}"'
                     + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
        for p, (x, y) in zip([p for p in usable if p[key] is not None], pts):
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"><title>{escape(label)} at '
                         f'{p["rate_per_s"]:g}/s: {p[key]:,.1f} ms</title></circle>')
        x, y = pts[-1]
        parts.append(f'<text x="{min(x + 4, W - 30):.1f}" y="{y - 4:.1f}" class="tick">{label}</text>')
    if slo_p99_ms is not None:
        y = sy(slo_p99_ms)
        parts.append(f'<line x1="{PAD}" y1="{y:.1f}" x2="{W - 10}" y2="{y:.1f}" stroke="#dc2626" '
                     f'stroke-dasharray="6 4" data-slo="{slo_p99_ms}"/><text x="{W - 12}" y="{y - 4:.1f}" '
                     f'text-anchor="end" class="tick">SLO p99 {slo_p99_ms:g} ms</text>')
    if goodput_rps is not None:
        x = sx(goodput_rps)
        parts.append(f'<line x1="{x:.1f}" y1="10" x2="{x:.1f}" y2="{H - PAD}" stroke="#059669" stroke-width="1.5" '
                     f'data-goodput="{goodput_rps}"/><text x="{x + 4:.1f}" y="34" class="tick">goodput '
                     f'{goodput_rps:g}/s</text>')
    return _svg(parts, title, [(model, color)])


def load_curves(store: Store, suite_name: str, models: list[str], colors: dict[str, str]) -> list[dict[str, Any]]:
    """For each of the run's models with a stored sweep on this suite: its newest complete sweep and its chart."""
    curves = []
    for model in models:
        sweep = store.latest_load_sweep(suite_name, model)
        if sweep is None:
            continue
        points = store.load_points(sweep["load_id"])
        curves.append({"model": model, "load_id": sweep["load_id"], "created_at": sweep["created_at"],
                       "slo_p99_ms": sweep["slo_p99_ms"], "goodput_rps": sweep["goodput_rps"],
                       "arrival": sweep["arrival"], "points": points,
                       "chart": latency_vs_rate(model, colors.get(model, "#2563eb"), points, sweep["slo_p99_ms"],
                                                sweep["goodput_rps"])})
    return curves
