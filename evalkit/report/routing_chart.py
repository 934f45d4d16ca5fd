"""The routing charts (matplotlib, inline SVG): accuracy against the share of calls to the large model with the
random-router line and the oracle curve (what APGR and CPT summarise), and accuracy against cost per 1k
requests with each model alone at its own cost. Marks are named in the legend, never next to each other."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from evalkit.report.svg_plot import figure, to_svg

ROUTER, RANDOM, ORACLE, SMALL, LARGE, PICK = "#2563eb", "#71717a", "#059669", "#d97706", "#dc2626", "#7c3aed"


def share_chart(gap: dict[str, Any], small: str, large: str) -> Markup:
    """Accuracy against the share of calls to ``large``: the router, the random router and the oracle."""
    with figure(640, 420) as (fig, ax):
        x, y = [100 * v for v in gap["curve"]["share"]], gap["curve"]["accuracy"]
        ax.plot(x, y, color=ROUTER, lw=2, label=f"confidence router (APGR {_num(gap['apgr'])})")
        ax.plot([0, 100], [gap["weak_accuracy"], gap["strong_accuracy"]], color=RANDOM, lw=1.5, ls="--",
                label="random router (APGR 0.500)")
        ox = [100 * v for v in gap["oracle_curve"]["share"]]
        ax.plot(ox, gap["oracle_curve"]["accuracy"], color=ORACLE, lw=1.5, ls=":",
                label=f"oracle (APGR {_num(gap['apgr_oracle'])})")
        ax.axhline(gap["weak_accuracy"], color=SMALL, lw=1, alpha=.7, label=f"{small} alone")
        ax.axhline(gap["strong_accuracy"], color=LARGE, lw=1, alpha=.7, label=f"{large} alone")
        for level, share in gap["cpt"].items():
            if share is not None:
                target = gap["weak_accuracy"] + float(level.rstrip("%")) / 100 * gap["gap"]
                ax.plot([100 * share], [target], marker="o", ms=5, color=ROUTER, ls="none")
        ax.set_xlabel(f"calls to {large} (% of requests)")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 100)
        ax.legend(loc="lower right", frameon=True)
        return to_svg(fig, f"routing: accuracy against the share of calls to {large}")


def cost_chart(policies: list[dict[str, Any]], marks: list[dict[str, Any]]) -> Markup:
    """Accuracy against cost per 1k requests: every threshold (line), the Pareto set (dots) and the marks."""
    usable = sorted((p for p in policies if p["cost_per_1k"] is not None), key=lambda p: p["share_escalated"])
    with figure(640, 420) as (fig, ax):
        if not usable:
            ax.text(.5, .5, "no cost data", ha="center", va="center", transform=ax.transAxes)
            return to_svg(fig, "routing policies: accuracy against cost")
        ax.plot([p["cost_per_1k"] for p in usable], [p["accuracy"] for p in usable], color="#a1a1aa", lw=1.5,
                label="every threshold (cascade)")
        pareto = [p for p in usable if p["pareto"]]
        ax.plot([p["cost_per_1k"] for p in pareto], [p["accuracy"] for p in pareto], "o", color=ROUTER, ms=4,
                label="Pareto-optimal thresholds")
        colors = [SMALL, LARGE, PICK, "#db2777", "#0891b2"]
        shapes = ["s", "s", "D", "D", "D"]
        for i, m in enumerate(marks):
            if m["cost"] is not None:
                ax.plot([m["cost"]], [m["accuracy"]], shapes[i % 5], color=colors[i % 5], ms=8, ls="none",
                        label=f"{m['label']}: ${m['cost']:,.4f}/1k, {m['accuracy']:.1%}")
        ax.set_xlabel("cost per 1k requests (USD)")
        ax.set_ylabel("accuracy")
        ax.set_xlim(left=0)
        ax.xaxis.set_major_formatter(_dollars)
        ax.legend(loc="lower right", frameon=True)
        return to_svg(fig, "routing policies: accuracy against cost")


def _dollars(value: float, _pos: int | None = None) -> str:
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:,.3f}"


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"
