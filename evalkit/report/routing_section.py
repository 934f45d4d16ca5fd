"""The report's routing section, from the newest stored ``evalkit route`` analysis of the run: the Pareto table
at the report's volume (report.js updates it when the volume changes), APGR and CPT with the random router and
the oracle, and both charts. Computed from stored rows only; nothing is re-swept."""

from __future__ import annotations

from typing import Any

from evalkit.analysis.paired import Side, flags, pair
from evalkit.analysis.routing_curve import summary
from evalkit.report import routing_chart
from evalkit.report.costs import routing_costs
from evalkit.report.numbers import threshold_words
from evalkit.store.db import Store


def routing_section(store: Store, run_id: str, volume_per_day: float) -> dict[str, Any] | None:
    """The newest stored routing analysis of this run (cascade style, and router-first for the large model alone)."""
    latest = store.latest_routing(run_id, "cascade")
    router = store.latest_routing(run_id, "router")
    if latest is None or router is None:
        return None
    key, policies, folds = latest
    small, large, signal = key["small"], key["large"], key["signal"]
    # the large model alone is router-first escalating everything, at its own cost (a cascade that escalates
    # everything still runs the small model on every request)
    ends = {"small": policies[0], "large": router[1][-1]}
    marks = [{"label": f"{small} only", "cost": ends["small"]["cost_per_1k"], "accuracy": ends["small"]["accuracy"]},
             {"label": f"{large} only", "cost": ends["large"]["cost_per_1k"], "accuracy": ends["large"]["accuracy"]}]
    for f in folds:
        if f.get("threshold") is not None:
            marks.append({"label": f"recommended ({f['fold']}, held out)", "cost": f["cost_per_1k_test"],
                          "accuracy": f["accuracy_test"]})
    rows = pair(store, Side(run_id, small), Side(run_id, large)).rows
    gap = summary(policies, flags(rows["correct_b"]), flags(rows["correct_c"]))
    seen: set[float] = set()
    pareto = []
    for p in policies:  # thresholds that escalate the same samples: one row
        if p["pareto"] and p["share_escalated"] not in seen:
            seen.add(p["share_escalated"])
            pareto.append({**p, "policy_words": threshold_words(p["threshold"])})
    folds = [{**f, "policy_words": threshold_words(f.get("threshold"))} for f in folds]
    return {"small": small, "large": large, "signal": signal, "pareto": pareto, "folds": folds,
            "volume_per_day": volume_per_day, "gap": gap, "n_pairs": int(len(rows)),
            "share_chart": routing_chart.share_chart(gap, small, large),
            "chart": routing_chart.cost_chart(policies, marks),
            "small_only": ends["small"], "large_only": ends["large"],
            **routing_costs(store, run_id, small, large, pareto, volume_per_day)}

