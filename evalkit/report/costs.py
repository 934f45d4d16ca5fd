"""The report's cost section: every model's monthly cost, replicas and break-even at the report's volume, and
the routing table's monthly costs, with the inputs report.js needs to recompute them when the volume changes."""

from __future__ import annotations

import json
from typing import Any

from evalkit.analysis.capacity import js_params, model_costs, policy_monthly, stored_inputs
from evalkit.analysis.costs import DAYS_PER_MONTH, HOURS_PER_MONTH, SECONDS_PER_DAY
from evalkit.store.db import Store


def cost_section(store: Store, run_id: str, volume_per_day: float, baseline: str | None) -> dict[str, Any]:
    """Per model: its ``cost`` block at the volume (break-even against the report's baseline) and its JS inputs."""
    inputs = stored_inputs(store, run_id)
    blocks = model_costs(inputs, baseline, volume_per_day)
    return {"volume_per_day": volume_per_day, "days_per_month": DAYS_PER_MONTH, "hours_per_month": HOURS_PER_MONTH,
            "seconds_per_day": SECONDS_PER_DAY, "baseline": baseline,
            "models": {name: {**block, "params": json.dumps(js_params(inputs[name]))} for name, block in blocks.items()},
            "any_self_hosted": any(b["basis"] == "always-on" for b in blocks.values())}


def routing_costs(store: Store, run_id: str, small: str, large: str, policies: list[dict[str, Any]],
                  volume_per_day: float) -> dict[str, Any]:
    """The routing rows' monthly cost at the report's volume from the suite's cost blocks (``evalkit route``'s
    --gpu-usd-per-hour what-ifs are not stored), and both sides' JS inputs."""
    inputs = stored_inputs(store, run_id)
    s, lg = inputs[small], inputs[large]
    for p in policies:
        p["monthly_at_volume"] = policy_monthly(p["style"], p["share_escalated"], s, lg, volume_per_day)
    return {"small_params": json.dumps(js_params(s)), "large_params": json.dumps(js_params(lg)),
            "large_alone": policy_monthly("router", 1.0, s, lg, volume_per_day),
            "small_alone": policy_monthly("cascade", 0.0, s, lg, volume_per_day)}
