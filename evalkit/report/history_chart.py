"""One metric across runs (matplotlib, inline SVG): a line per model, the CI as error bars, runs in start order."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from evalkit.report.charts import PALETTE
from evalkit.report.numbers import unit
from evalkit.report.svg_plot import figure, to_svg


def metric_chart(metric: str, runs: list[dict[str, Any]], models: list[str]) -> Markup:
    labels = [f"{r['started'][5:19]}\n{r['run_id'].rpartition('-')[2][:8]}" for r in runs]
    with figure(640, 360) as (fig, ax):
        for i, model in enumerate(models):
            xs, ys, lo, hi = [], [], [], []
            for x, r in enumerate(runs):
                v = r["metrics"].get(model, {}).get(metric)
                if v is None or v["value"] is None:
                    continue
                xs.append(x)
                ys.append(v["value"])
                lo.append(v["value"] - v["ci_low"] if v["ci_low"] is not None else 0.0)
                hi.append(v["ci_high"] - v["value"] if v["ci_high"] is not None else 0.0)
            if xs:
                ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", ms=5, lw=1.8, capsize=3,
                            color=PALETTE[i % len(PALETTE)], label=model)
        ax.set_xticks(range(len(runs)), labels)
        ax.set_xlim(-0.5, len(runs) - 0.5)
        ax.set_xlabel("run (start time UTC, id)")
        kind = unit(metric)
        ax.set_ylabel(metric + {"ms": " (ms)", "usd": " (USD)", "usd_month": " (USD/month)"}.get(kind, ""))
        ax.legend(loc="best", frameon=True)
        return to_svg(fig, f"{metric} per run")
