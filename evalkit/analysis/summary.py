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
                                "break_even_stays_cheaper_from", "break_even_note",
                                "throughput_measured_in_run", "note"},
                       "load": {"paced": [POINT], "sweep": null | {"load_id", "status", "arrival",
                                "slo_p99_ms", "max_error_rate", "goodput_rps", "max_in_flight",
                                "created_at", "points": [POINT]}},
                       "classification": {"kind": "label" | "labels", "classes", "n", "n_invalid",
                                          "per_class": [{"label", "precision", "recall", "f1", "support",
                                                         "predicted", "missed", "false_alarms"}],
                                          "confusion": {"targets", "answers", "counts"}}}}}

``classification`` is there for label and labels outputs only (``confusion``: single-label only; rows are the
target classes, columns the answers, the last one ``(invalid)``; :mod:`evalkit.analysis.classification`).

``throughput_measured_in_run``: a fully cached rerun requested nothing, so its throughput (and every
figure resting on it) is the one measured in this earlier run, the one that requested the cached answers
(null: measured in this run). ``load.paced``: the open-loop phase of this run (``run.load``), one POINT per
rate (the ``load_points`` columns: ``rate_per_s``, ``n_sent``, ``achieved_rps``, ``latency_ms_p50/p95/p99``,
``ttft_ms_p50/p99``, ``error_rate``, ``queue_ms_*``, ``cap_waits``, ``peak_in_flight``, ``meets_slo``, ...);
``load.sweep``: the newest complete ``evalkit load`` sweep of the suite's model, whose goodput sizes the
replicas.

``cold_start_ms`` is the latency of the model's first warm-up request (``run.warmup``; null without one),
kept out of every latency metric; ``warmup_calls`` counts the warm-up requests (not in ``n_calls``).
Metric names are listed in :data:`evalkit.analysis.metrics.METRICS`; a metric that does not apply (e.g.
``feasible_rate`` without feasibility checks) has ``value: null``. ``cost`` is the cost model at the suite's
``run.volume_per_day`` (:func:`evalkit.analysis.capacity.model_cost`): ``throughput_source`` says where the
replicas' requests/s come from ("stated", "goodput at SLO", "measured closed-loop throughput");
``break_even_note`` says why the break-even is null ("never: ...") or where the API is cheaper again.
A run scored by an LLM judge adds ``"judge": {"model", "scale", "pairwise", "human", "human_model",
"reference"}``; its figures are the models' ``judge_*`` metrics (:mod:`evalkit.analysis.judge_metrics`).

``heldout_overlap`` ({MODEL: {"policy", "training_path", "training_sha256", "training_source",
"training_format", "n_heldout", "n_training", "exact", "near", "contaminated", "max_jaccard", "threshold",
"ngram", "num_perm", "candidates", "examples"}}) holds the held-out overlap check of each model that named
training data; ``leakage`` ({MODEL: {PROBE: {"n", "hits", "rate", "k", "examples"}}}) the leakage probes
(:mod:`evalkit.analysis.heldout_checks`).
"""

from __future__ import annotations

import json
from typing import Any

from evalkit.analysis.capacity import stored_costs
from evalkit.analysis.classification import REPORT_COLUMNS, label_spec, run_class_reports
from evalkit.analysis.heldout_checks import show_blocks
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
    for name, load in load_payload(store, run_id, str(run["suite_name"]), list(models)).items():
        models[name]["load"] = load
    config = json.loads(run["config"]) if isinstance(run.get("config"), str) else run.get("config")
    kind, labels = label_spec(config)
    if kind in ("label", "labels"):
        for name, block in run_class_reports(store.results_frame(run_id, REPORT_COLUMNS), kind, labels).items():
            models.setdefault(name, {"metrics": {}})["classification"] = block
    judge = judge_summary(config or {})
    return {"format": SHOW_FORMAT, "run": run_info, "models": models, **({"judge": judge} if judge else {}),
            **show_blocks(store, run_id)}


_SWEEP_KEYS = ("load_id", "status", "arrival", "slo_p99_ms", "max_error_rate", "goodput_rps", "max_in_flight",
               "created_at")


def _point(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("load_id", "model", "created_at")}


def load_payload(store: Store, run_id: str, suite: str, models: list[str]) -> dict[str, dict[str, Any]]:
    """Per model, the ``load`` block of ``evalkit.show/1``: the run's paced phase and the suite's newest sweep."""
    paced: dict[str, list[dict[str, Any]]] = {}
    for row in store.run_load_points(run_id):
        paced.setdefault(str(row["model"]), []).append(_point(row))
    out: dict[str, dict[str, Any]] = {}
    for model in models:
        sweep = store.latest_load_sweep(suite, model)
        block = None if sweep is None else {
            **{k: (str(sweep[k]) if k == "created_at" and sweep[k] else sweep.get(k)) for k in _SWEEP_KEYS},
            "points": [_point(p) for p in store.load_points(str(sweep["load_id"]))]}
        out[model] = {"paced": paced.get(model, []), "sweep": block}
    return out
