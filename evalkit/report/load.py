"""Open-loop load in words and pictures: the ``evalkit load`` table (text), and the report's
latency-against-rate curve per model (p50/p95/p99 against asked rate, the SLO line, the goodput marked),
drawn from the newest stored sweep of each of the run's models on the run's suite."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup
from matplotlib.ticker import MaxNLocator

from evalkit.report import svg_plot
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
    with svg_plot.figure(560, 380) as (fig, ax):
        ax.set_title(f"{model if len(model) <= 28 else model[:27] + '…'}: latency against asked rate", loc="left")
        if not usable:
            svg_plot.empty(ax, "no successful requests")
            return svg_plot.to_svg(fig, title)
        for key, label, dash in PERCENTILES:
            pts = [(p["rate_per_s"], p[key]) for p in usable if p[key] is not None]
            [line] = ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", markersize=4, color=color,
                             label=label, linestyle=(0, tuple(float(d) for d in dash.split())) if dash else "-")
            svg_plot.tag(line, series=label)
        if slo_p99_ms is not None:
            svg_plot.tag(ax.axhline(slo_p99_ms, color="#111827", linestyle=(0, (6, 4)), linewidth=1.5,
                                    label=f"SLO p99 {svg_plot.fmt('ms', slo_p99_ms)}"), slo=slo_p99_ms)
        if goodput_rps is not None:
            svg_plot.tag(ax.axvline(goodput_rps, color=svg_plot.MUTED, linewidth=1.5, label=f"goodput {goodput_rps:g}/s"),
                         goodput=goodput_rps)
        ax.set_xlim(0, max(p["rate_per_s"] for p in usable) * 1.05)
        ax.set_ylim(0, max([p["latency_ms_p99"] for p in usable] + [slo_p99_ms or 0.0]) * 1.1 or 1.0)
        ax.xaxis.set_major_locator(MaxNLocator(6))
        ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_major_formatter(svg_plot.tick_format("ms"))
        ax.set_xlabel("asked rate (requests/s)")
        ax.set_ylabel("latency")
        fig.legend(loc="outside lower center", ncols=5, handlelength=2.2, columnspacing=1.2)
        return svg_plot.to_svg(fig, title)


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
