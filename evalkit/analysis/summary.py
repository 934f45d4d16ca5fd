"""A run's metrics as the public JSON contract (``evalkit show --json``); :mod:`evalkit.report.terminal` draws it.

Format ``evalkit.show/1``::

    {"format": "evalkit.show/1",
     "run": {"run_id", "suite", "suite_version", "status", "created_at", "finished_at",
             "n_samples", "repeats", "suite_hash", "dataset_hash", "git_commit", "git_dirty",
             "evalkit_version"},
     "models": {NAME: {"provider", "model_ref", "status", "error", "warmup_calls", "cold_start_ms",
                       "metrics": {METRIC: {"value", "ci_low", "ci_high", "n",
                                            "higher_is_better"}},
                       "cost": {"basis": "always-on" | "per-call", "volume_per_day",
                                "monthly_cost_usd", "replicas_needed", "min_replicas",
                                "requests_per_second", "throughput_source", "gpu_usd_per_hour",
                                "cost_per_call", "baseline", "break_even_requests_per_day",
                                "break_even_stays_cheaper_from", "break_even_note", "note"}}}}

``cold_start_ms`` is the latency of the model's first warm-up request (``run.warmup``; null without one),
kept out of every latency metric; ``warmup_calls`` counts the warm-up requests (not in ``n_calls``).
Metric names are listed in :data:`evalkit.analysis.metrics.METRICS`; a metric that does not apply (e.g.
``feasible_rate`` without feasibility checks) has ``value: null``. ``cost`` is the cost model at the suite's
``run.volume_per_day`` (:func:`evalkit.analysis.capacity.model_cost`): ``throughput_source`` says where the
replicas' requests/s come from ("stated", "goodput at SLO", "measured closed-loop throughput");
``break_even_note`` says why the break-even is null ("never: ...") or where the API is cheaper again.
A run scored by an LLM judge adds ``"judge": {"model", "scale", "pairwise", "human", "human_model",
"reference"}``; its figures are the models' ``judge_*`` metrics (:mod:`evalkit.analysis.judge_metrics`).
"""

from __future__ import annotations

import json
from typing import Any

from evalkit.analysis.capacity import stored_costs
from evalkit.analysis.judge_metrics import judge_summary
from evalkit.analysis.metrics import METRICS
from evalkit.store.db import Store

SHOW_FORMAT = "evalkit.show/1"
_RUN_KEYS = ("run_id", "suite_name", "suite_version", "status", "created_at", "finished_at", "n_samples",
             "repeats", "suite_hash", "dataset_hash", "git_commit", "git_dirty", "evalkit_version")


def run_payload(store: Store, run_id: str) -> dict[str, Any]:
    """The ``evalkit.show/1`` document of a run, read from the store."""
    run = store.get_run(run_id)
    run_info = {("suite" if k == "suite_name" else k): (str(run[k]) if k.endswith("_at") and run[k] else run[k])
                for k in _RUN_KEYS}
    models: dict[str, Any] = {}
    for m in store.run_models(run_id):
        models[m["model"]] = {"provider": m["provider"], "model_ref": m["model_ref"], "status": m["status"],
                              "error": m["error"], "warmup_calls": m.get("warmup_calls") or 0,
                              "cold_start_ms": m.get("cold_start_ms"), "metrics": {}}
    for row in store.metrics(run_id):
        entry = models.setdefault(row["model"], {"metrics": {}})
        info = METRICS.get(row["metric"])
        entry["metrics"][row["metric"]] = {
            "value": row["value"], "ci_low": row["ci_low"], "ci_high": row["ci_high"], "n": row["n"],
            "higher_is_better": info.higher_is_better if info else None}
    for name, block in stored_costs(store, run_id).items():
        models.setdefault(name, {"metrics": {}})["cost"] = block
    judge = judge_summary(json.loads(run["config"]) if isinstance(run.get("config"), str) else run.get("config") or {})
    return {"format": SHOW_FORMAT, "run": run_info, "models": models, **({"judge": judge} if judge else {})}


