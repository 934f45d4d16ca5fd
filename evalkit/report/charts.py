"""Inline SVG charts (no JavaScript library, no network): reliability, latency CDF, cost vs quality.

Every text that reaches the SVG (model names) is escaped here, because the SVG is inserted as markup.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from markupsafe import Markup, escape

PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777"]
W, H, PAD = 420, 300, 46


FloatArray = npt.NDArray[np.float64]


def _frame(x_label: str, y_label: str, x_ticks: list[tuple[float, str]], y_ticks: list[tuple[float, str]]) -> list[str]:
    parts = [f'<rect x="{PAD}" y="10" width="{W - PAD - 10}" height="{H - PAD - 10}" fill="#fff" stroke="#d4d4d8"/>']
    for x, label in x_ticks:
        parts.append(f'<line x1="{x:.1f}" y1="{H - PAD}" x2="{x:.1f}" y2="{H - PAD + 4}" stroke="#71717a"/>'
                     f'<text x="{x:.1f}" y="{H - PAD + 16}" text-anchor="middle" class="tick">{escape(label)}</text>')
    for y, label in y_ticks:
        parts.append(f'<line x1="{PAD - 4}" y1="{y:.1f}" x2="{W - 10}" y2="{y:.1f}" stroke="#f4f4f5"/>'
                     f'<text x="{PAD - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{escape(label)}</text>')
    parts.append(f'<text x="{(W + PAD) / 2:.0f}" y="{H - 8}" text-anchor="middle" class="axis">{escape(x_label)}</text>')
    parts.append(f'<text x="12" y="{(H - PAD) / 2 + 10:.0f}" text-anchor="middle" class="axis" '
                 f'transform="rotate(-90 12 {(H - PAD) / 2 + 10:.0f})">{escape(y_label)}</text>')
    return parts


def _sx(v: float, lo: float, hi: float) -> float:
    return PAD + (v - lo) / (hi - lo or 1) * (W - PAD - 10)


def _sy(v: float, lo: float, hi: float) -> float:
    return H - PAD - (v - lo) / (hi - lo or 1) * (H - PAD - 10)


def _svg(parts: list[str], title: str, legend: list[tuple[str, str]]) -> Markup:
    items = "".join(f'<g transform="translate({PAD + 8 + i * 130},{22})"><rect width="10" height="10" fill="{c}"/>'
                    f'<text x="14" y="9" class="legend">{escape(name)}</text></g>' for i, (name, c) in enumerate(legend))
    body = "".join(parts)
    return Markup(f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}" class="chart">'
                  f"<title>{escape(title)}</title>{body}{items}</svg>")


def reliability(model: str, color: str, confidence: FloatArray, correct: FloatArray, bins: int = 10) -> Markup:
    """Accuracy per confidence bin against the diagonal; bar width shows how many samples a bin holds."""
    parts = _frame("confidence", "accuracy", [(_sx(t, 0, 1), f"{t:.1f}") for t in (0, .2, .4, .6, .8, 1)],
                   [(_sy(t, 0, 1), f"{t:.1f}") for t in (0, .25, .5, .75, 1)])
    parts.append(f'<line x1="{_sx(0, 0, 1)}" y1="{_sy(0, 0, 1)}" x2="{_sx(1, 0, 1)}" y2="{_sy(1, 0, 1)}" '
                 'stroke="#a1a1aa" stroke-dasharray="4 4"/>')
    if len(confidence):
        idx = np.minimum((confidence * bins).astype(int), bins - 1)
        total = len(confidence)
        for b in range(bins):
            members = idx == b
            n = int(members.sum())
            if not n:
                continue
            acc, conf = float(correct[members].mean()), float(confidence[members].mean())
            x0, x1 = _sx(b / bins, 0, 1), _sx((b + 1) / bins, 0, 1)
            opacity = 0.25 + 0.75 * math.sqrt(n / total)
            parts.append(f'<rect x="{x0 + 1:.1f}" y="{_sy(acc, 0, 1):.1f}" width="{x1 - x0 - 2:.1f}" '
                         f'height="{_sy(0, 0, 1) - _sy(acc, 0, 1):.1f}" fill="{color}" fill-opacity="{opacity:.2f}">'
                         f"<title>confidence {b / bins:.1f}–{(b + 1) / bins:.1f}: {n} samples, accuracy {acc:.3f}, "
                         f"mean confidence {conf:.3f}</title></rect>")
            parts.append(f'<circle cx="{_sx(conf, 0, 1):.1f}" cy="{_sy(acc, 0, 1):.1f}" r="3" fill="#18181b"/>')
    else:
        parts.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="axis">no confidences</text>')
    return _svg(parts, f"reliability diagram: {model}", [(model, color)])


def latency_cdf(series: dict[str, FloatArray], colors: dict[str, str], points: int = 200) -> Markup:
    """Empirical CDF of successful-call latency per model (log scale when the range is wide)."""
    values = [v for v in series.values() if len(v)]
    if not values:
        return _svg(_frame("latency (ms)", "share of calls", [], []), "latency CDF", [])
    lo, hi = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
    use_log = hi / max(lo, 1e-3) > 20
    tx = (lambda v: math.log10(max(v, 1e-3))) if use_log else (lambda v: v)
    a, b = tx(max(lo, 1e-3)), tx(hi)
    ticks = sorted({10 ** e for e in range(math.floor(a), math.ceil(b) + 1)}) if use_log else list(np.linspace(lo, hi, 5))
    parts = _frame("latency (ms)" + (", log scale" if use_log else ""), "share of calls ≤ x",
                   [(_sx(tx(t), a, b), f"{t:,.0f}") for t in ticks if a <= tx(t) <= b],
                   [(_sy(t, 0, 1), f"{t:.2f}") for t in (0, .25, .5, .75, 1)])
    for model, v in series.items():
        if not len(v):
            continue
        s = np.sort(v)
        pick = np.unique(np.linspace(0, len(s) - 1, min(points, len(s))).astype(int))
        path = " ".join(f"{'M' if i == 0 else 'L'}{_sx(tx(float(s[j])), a, b):.1f},{_sy((j + 1) / len(s), 0, 1):.1f}"
                        for i, j in enumerate(pick))
        parts.append(f'<path d="{path}" fill="none" stroke="{colors[model]}" stroke-width="2"/>')
    return _svg(parts, "latency CDF", [(m, colors[m]) for m in series])


def cost_quality(points: list[dict[str, Any]], colors: dict[str, str]) -> Markup:
    """Each model at (cost per 1k, accuracy) with its accuracy CI as a whisker."""
    usable = [p for p in points if p["cost"] is not None and p["accuracy"] is not None]
    if not usable:
        return _svg(_frame("cost per 1k requests (USD)", "accuracy", [], []) +
                    [f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="axis">no cost data</text>'],
                    "cost vs quality", [])
    costs = [p["cost"] for p in usable]
    accs = [v for p in usable for v in (p["accuracy"], p["low"] or p["accuracy"], p["high"] or p["accuracy"])]
    c_lo, c_hi = 0.0, max(costs) * 1.15 or 1.0
    a_lo, a_hi = max(0.0, min(accs) - 0.05), min(1.0, max(accs) + 0.05)
    parts = _frame("cost per 1k requests (USD)", "accuracy",
                   [(_sx(t, c_lo, c_hi), f"${t:,.3g}") for t in np.linspace(c_lo, c_hi, 5)],
                   [(_sy(t, a_lo, a_hi), f"{t:.2f}") for t in np.linspace(a_lo, a_hi, 5)])
    for p in usable:
        x, y = _sx(p["cost"], c_lo, c_hi), _sy(p["accuracy"], a_lo, a_hi)
        if p["low"] is not None:
            parts.append(f'<line x1="{x:.1f}" y1="{_sy(p["low"], a_lo, a_hi):.1f}" x2="{x:.1f}" '
                         f'y2="{_sy(p["high"], a_lo, a_hi):.1f}" stroke="{colors[p["model"]]}" stroke-width="2"/>')
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{colors[p["model"]]}"/>'
                     f'<text x="{x + 9:.1f}" y="{y - 8:.1f}" class="legend">{escape(p["model"])}</text>')
    return _svg(parts, "cost vs quality", [(p["model"], colors[p["model"]]) for p in usable])


def routing(policies: list[dict[str, Any]], marks: list[dict[str, Any]]) -> Markup:
    """Accuracy against cost of every routing threshold (line), Pareto points, and marked policies."""
    usable = [p for p in policies if p["cost_per_1k"] is not None]
    if not usable:
        return _svg(_frame("cost per 1k requests (USD)", "accuracy", [], []), "routing policies", [])
    costs = [p["cost_per_1k"] for p in usable] + [m["cost"] for m in marks if m["cost"] is not None]
    accs = [p["accuracy"] for p in usable] + [m["accuracy"] for m in marks]
    c_lo, c_hi = 0.0, max(costs) * 1.1 or 1.0
    a_lo, a_hi = max(0.0, min(accs) - 0.03), min(1.0, max(accs) + 0.03)
    parts = _frame("cost per 1k requests (USD)", "accuracy",
                   [(_sx(t, c_lo, c_hi), f"${t:,.3g}") for t in np.linspace(c_lo, c_hi, 5)],
                   [(_sy(t, a_lo, a_hi), f"{t:.2f}") for t in np.linspace(a_lo, a_hi, 5)])
    ordered = sorted(usable, key=lambda p: p["share_escalated"])
    path = " ".join(f"{'M' if i == 0 else 'L'}{_sx(p['cost_per_1k'], c_lo, c_hi):.1f},{_sy(p['accuracy'], a_lo, a_hi):.1f}"
                    for i, p in enumerate(ordered))
    parts.append(f'<path d="{path}" fill="none" stroke="#a1a1aa" stroke-width="1.5"/>')
    for p in usable:
        if p["pareto"]:
            parts.append(f'<circle cx="{_sx(p["cost_per_1k"], c_lo, c_hi):.1f}" cy="{_sy(p["accuracy"], a_lo, a_hi):.1f}" '
                         f'r="3" fill="#2563eb"><title>escalate {p["share_escalated"]:.0%}: accuracy {p["accuracy"]:.3f}, '
                         f'${p["cost_per_1k"]:.4f}/1k</title></circle>')
    for i, m in enumerate(marks):
        if m["cost"] is None:
            continue
        x, y = _sx(m["cost"], c_lo, c_hi), _sy(m["accuracy"], a_lo, a_hi)
        parts.append(f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="{PALETTE[(i + 1) % len(PALETTE)]}">'
                     f'<title>{escape(m["label"])}: ${m["cost"]:.6f} per 1k, accuracy {m["accuracy"]:.3f}</title></rect>'
                     f'<text x="{x + 8:.1f}" y="{y + 4 + (i % 2) * 10:.1f}" class="legend">{escape(m["label"])}</text>')
    return _svg(parts, "routing policies: accuracy against cost", [("Pareto-optimal thresholds", "#2563eb")])
