"""The report's charts as inline SVG drawn by matplotlib (``svg_plot``): reliability with bin counts, latency CDF,
cost vs quality. No JavaScript library, no network; matplotlib escapes every text it writes."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from markupsafe import Markup
from matplotlib.ticker import MaxNLocator, NullFormatter

from evalkit.report import svg_plot

PALETTE = svg_plot.PALETTE
MARKERS = ["o", "s", "D", "^", "v", "P", "X"]  # a second cue besides colour


FloatArray = npt.NDArray[np.float64]


def _short(name: str, limit: int = 36) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _count(n: int) -> str:
    """A bin count that fits over a tenth of the axis: 950, 9,500, 95k, 950k."""
    return f"{n:,}" if n < 10_000 else f"{n / 1000:,.0f}k"


def reliability(model: str, color: str, confidence: FloatArray, correct: FloatArray, bins: int = 10) -> Markup:
    """Accuracy per confidence bin (bars, the bin's count written over each) with each bin's mean confidence (dot)
    against the diagonal; below, how many samples each bin holds, so a bin of 9 never looks as solid as one of 300."""
    title = f"reliability diagram: {model}"
    with svg_plot.figure(560, 420, rows=2, sharex=True, gridspec_kw={"height_ratios": [3, 1]}) as (fig, (ax, hist)):
        ax.set_title(f"{_short(model, 24)}: {len(confidence):,} answers with a confidence", loc="left")
        ax.plot([0, 1], [0, 1], linestyle=(0, (4, 3)), color=svg_plot.MUTED, linewidth=1.2, label="perfect calibration")
        ax.set_ylim(0, 1.12)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1])
        ax.yaxis.set_major_formatter(svg_plot.tick_format("ratio"))
        ax.set_ylabel("accuracy")
        hist.set_xlim(0, 1)
        hist.set_xticks([0, 0.25, 0.5, 0.75, 1])
        hist.xaxis.set_major_formatter(svg_plot.tick_format("ratio"))
        hist.set_xlabel("stated confidence")
        hist.set_ylabel("samples")
        if len(confidence):
            idx = np.minimum((confidence * bins).astype(int), bins - 1)
            counts = np.bincount(idx, minlength=bins)
            edges = np.arange(bins) / bins
            hits = np.bincount(idx, weights=correct, minlength=bins)
            sums = np.bincount(idx, weights=confidence, minlength=bins)
            used = counts > 0
            acc = np.where(used, hits / np.maximum(counts, 1), 0.0)
            mean_conf = np.where(used, sums / np.maximum(counts, 1), 0.0)
            ax.bar(edges[used], acc[used], width=1 / bins, align="edge", color=color, alpha=0.35,
                   edgecolor=color, linewidth=1, label="accuracy in the bin")
            ax.plot(mean_conf[used], acc[used], "o", color="#111827", markersize=4, label="mean confidence")
            for b in np.flatnonzero(used):
                label = ax.annotate(_count(int(counts[b])), ((b + 0.5) / bins, acc[b]), xytext=(0, 5),
                                    textcoords="offset points", ha="center", va="bottom", fontsize=8, color="#111827")
                svg_plot.tag(label, bin=f"{b / bins:g}-{(b + 1) / bins:g}", count=int(counts[b]),
                             accuracy=round(float(acc[b]), 6), confidence=round(float(mean_conf[b]), 6))
            hist.bar(edges, counts, width=1 / bins, align="edge", color=color, alpha=0.8, edgecolor="white")
            hist.yaxis.set_major_locator(MaxNLocator(3, integer=True))
            fig.legend(loc="outside lower center", ncols=3, handlelength=1.5)
        else:
            svg_plot.empty(ax, "no confidences")
            hist.set_visible(False)  # no counts to show: no empty histogram axes either
        return svg_plot.to_svg(fig, title)


def latency_cdf(series: dict[str, FloatArray], colors: dict[str, str], points: int = 400) -> Markup:
    """Empirical CDF of successful-call latency per model (log scale when the range is wide)."""
    title = "latency CDF"
    values = [v for v in series.values() if len(v)]
    with svg_plot.figure(560, 380) as (fig, ax):
        ax.set_title("share of successful calls done within x", loc="left")
        if not values:
            svg_plot.empty(ax, "no successful calls")
            return svg_plot.to_svg(fig, title)
        lo, hi = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
        use_log = hi / max(lo, 1e-3) > 20
        for i, (model, v) in enumerate(series.items()):
            if not len(v):
                continue
            s = np.sort(np.maximum(v, 1e-3) if use_log else v)
            pick = np.unique(np.linspace(0, len(s) - 1, min(points, len(s))).astype(int))
            ax.step(s[pick], (pick + 1) / len(s), where="post", color=colors[model], label=_short(model),
                    linestyle=["-", "--", ":", "-."][i % 4])
        if use_log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.xaxis.set_major_formatter(svg_plot.tick_format("ms"))
        ax.set_xlabel("latency" + (" (log scale)" if use_log else ""))
        ax.set_ylim(0, 1.02)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1])
        ax.yaxis.set_major_formatter(svg_plot.tick_format("percent"))
        ax.set_ylabel("share of calls")
        fig.legend(loc="outside lower center", ncols=min(3, len(values)))
        return svg_plot.to_svg(fig, title)


def cost_quality(points: list[dict[str, Any]], colors: dict[str, str]) -> Markup:
    """Each model at (cost per 1k, accuracy) with its accuracy CI as a whisker; names in a legend off the data."""
    title = "cost vs quality"
    usable = [p for p in points if p["cost"] is not None and p["accuracy"] is not None]
    with svg_plot.figure(560, 380) as (fig, ax):
        ax.set_title("cost per 1k requests against accuracy", loc="left")
        if not usable:
            svg_plot.empty(ax, "no cost data")
            return svg_plot.to_svg(fig, title)
        for i, p in enumerate(usable):
            low = p["low"] if p["low"] is not None else p["accuracy"]
            high = p["high"] if p["high"] is not None else p["accuracy"]
            ax.errorbar([p["cost"]], [p["accuracy"]], yerr=[[p["accuracy"] - low], [high - p["accuracy"]]],
                        fmt=MARKERS[i % len(MARKERS)], color=colors[p["model"]], markersize=9, capsize=4,
                        elinewidth=2, label=f"{_short(p['model'])}: {svg_plot.fmt('usd', p['cost'])}, "
                                            f"{p['accuracy'] * 100:.1f}%")
        top = max(p["cost"] for p in usable)
        ax.set_xlim(0, top * 1.15 if top > 0 else 1.0)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.xaxis.set_major_formatter(svg_plot.tick_format("usd"))
        ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_major_formatter(svg_plot.tick_format("percent"))
        lows = [p["low"] if p["low"] is not None else p["accuracy"] for p in usable]
        highs = [p["high"] if p["high"] is not None else p["accuracy"] for p in usable]
        ax.set_ylim(max(0.0, min(lows) - 0.05), min(1.0, max(highs) + 0.05) + 0.005)
        ax.set_xlabel("cost per 1k requests")
        ax.set_ylabel("accuracy (95% CI)")
        fig.legend(loc="outside lower center", ncols=1 if len(usable) > 2 else len(usable))
        return svg_plot.to_svg(fig, title)


