"""Everything the report shows, read from the DuckDB store (nothing is computed from memory state)."""

from __future__ import annotations

import json
from typing import Any

from evalkit.analysis.capacity import projection
from evalkit.analysis.coverage import coverage_warnings
from evalkit.analysis.watch import add_counts_and_watch
from evalkit.config.gate_specs import WatchSpec
from evalkit.errors import ConfigError
from evalkit.report import charts
from evalkit.report.classification import classification_section
from evalkit.report.costs import cost_section
from evalkit.report.explorer import explorer_context
from evalkit.report.gallery import ORDER, tail5_note, worst_entries
from evalkit.report.header import header_context
from evalkit.report.heldout import heldout_section
from evalkit.report.judge import judge_section
from evalkit.report.load import load_curves
from evalkit.report.routing_section import routing_section
from evalkit.report.score_errors import score_error_section
from evalkit.store.db import Store

SCORECARD = [  # (metric, label, kind)
    ("accuracy", "Accuracy", "rate"), ("schema_valid_rate", "Schema-valid", "rate"),
    ("feasible_rate", "Feasible", "rate"), ("valid_but_infeasible_rate", "Valid but infeasible", "rate"),
    ("brier", "Brier score", "score"), ("ece", "ECE", "score"), ("tail5", "Worst-5% quality", "score"),
    ("tail5_brier", "Worst-5% Brier", "score"), ("confident_error_rate", "Confident errors", "rate"),
    ("latency_ms_p50", "Latency p50", "ms"), ("latency_ms_p95", "Latency p95", "ms"),
    ("latency_ms_p99", "Latency p99", "ms"), ("ttft_ms_p50", "Time to first token p50", "ms"),
    ("cold_start_ms", "Cold start (first warm-up request; not in the latencies)", "ms"),
    ("error_rate", "Error rate", "rate"), ("throughput_rps", "Throughput (requests/s of wall time)", "per_s"),
    ("output_tokens_per_s", "Output tokens/s", "per_s"),
    ("cost_per_1k", "Cost per 1k requests (per call; self-hosted: GPU time)", "usd"),
]
MAX_EXAMPLES = 200
MAX_WORST = 60
MAX_TEXT = 4000


def _clip(text: Any) -> str:
    value = "" if text is None else str(text)
    return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + f"… [{len(value) - MAX_TEXT} more characters]"


def _pick_sides(config: dict[str, Any], models: list[str], baseline: str | None,
                candidate: str | None) -> tuple[str | None, str | None]:
    gates = (config or {}).get("gates") or {}
    baseline = baseline or gates.get("baseline")
    candidate = candidate or gates.get("candidate")
    if baseline is None and candidate is None and len(models) >= 2:
        baseline, candidate = models[0], models[1]
    for name in (baseline, candidate):
        if name is not None and name not in models:
            raise ConfigError(f"model '{name}' is not in this run; models are {models}")
    return baseline, candidate


def collect(store: Store, run_id: str, baseline: str | None = None, candidate: str | None = None,
            volume_per_day: float | None = None, resamples: int = 2000) -> dict[str, Any]:
    """The report's context: run, provenance, scorecards, charts, verdict, regressions, gallery."""
    from evalkit.analysis.gates import evaluate
    from evalkit.analysis.heldout_checks import add_heldout
    from evalkit.analysis.paired import Side, pair
    from evalkit.analysis.retention import retention_pair_from_config
    from evalkit.config.gate_specs import GateRule

    run = store.get_run(run_id)
    config = json.loads(run["config"]) if run.get("config") else {}
    model_rows = store.run_models(run_id)
    names = [m["model"] for m in model_rows]
    colors = {name: charts.PALETTE[i % len(charts.PALETTE)] for i, name in enumerate(names)}
    metrics: dict[str, dict[str, dict[str, Any]]] = {n: {} for n in names}
    for row in store.metrics(run_id):
        metrics.setdefault(row["model"], {})[row["metric"]] = row
    baseline, candidate = _pick_sides(config, names, baseline, candidate)
    if volume_per_day is None:
        volume_per_day = projection(config)[0]  # the suite's run.volume_per_day

    frame = store.report_frame(run_id)
    models = []
    for m in model_rows:
        rows = frame[frame["model"] == m["model"]]
        has = rows["confidence"].notna()
        ok = rows["status"] == "ok"
        worst, n_worst = worst_entries(rows, frame[frame["model"] != m["model"]], MAX_WORST, _clip)
        models.append({
            "name": m["model"], "provider": m["provider"], "model_ref": m["model_ref"], "status": m["status"],
            "error": m["error"], "color": colors[m["model"]],
            "metrics": {**metrics[m["model"]], "cold_start_ms": {"value": m.get("cold_start_ms"), "n": None,
                                                                 "ci_low": None, "ci_high": None}},
            "config": json.dumps(json.loads(m["config"]) if m["config"] else {}, indent=2),
            "adapter": json.dumps(json.loads(m["adapter"]), indent=2) if m["adapter"] else None,
            "reliability": charts.reliability(m["model"], colors[m["model"]],
                                              rows.loc[has, "confidence"].to_numpy(float),
                                              rows.loc[has, "correct"].astype(float).to_numpy()),
            "worst": worst, "n_worst": n_worst, "tail5_note": tail5_note(rows),
            "batch_latency": bool(rows["batch_call"].fillna(False).any()),
            "latency": rows.loc[ok, "latency_ms"].dropna().to_numpy(float),
        })
    lat_chart = charts.latency_cdf({m["name"]: m.pop("latency") for m in models}, colors)
    cq_points = [{"model": m["name"], "cost": m["metrics"].get("cost_per_1k", {}).get("value"),
                  "accuracy": m["metrics"].get("accuracy", {}).get("value"),
                  "low": m["metrics"].get("accuracy", {}).get("ci_low"),
                  "high": m["metrics"].get("accuracy", {}).get("ci_high")} for m in models]

    comparison = None
    if baseline and candidate and baseline != candidate:
        pairing = pair(store, Side(run_id, baseline), Side(run_id, candidate))
        rules = [GateRule.model_validate(r) for r in ((config.get("gates") or {}).get("rules") or [])]
        comparison = evaluate(store, pairing, rules, int((config.get("run") or {}).get("seed", 0)), resamples,
                              retention_pair_from_config(config),
                              str((config.get("gates") or {}).get("correction") or "none"),
                              max_score_errors=int((config.get("scoring") or {}).get("max_score_errors", 0)))
        add_counts_and_watch(comparison, store, pairing, rules,
                             WatchSpec.model_validate((config.get("gates") or {}).get("watch") or {}),
                             int((config.get("run") or {}).get("seed", 0)), resamples)
        add_heldout(comparison, store, pairing, str((config.get("run") or {}).get("contamination", "warn")))
        for r in comparison["regressions"]:
            for key in ("baseline_output", "candidate_output", "target"):
                r[key] = _clip(r[key])
            r["candidate_violations"] = (json.loads(r["candidate_violations"])
                                         if isinstance(r["candidate_violations"], str) else [])
        comparison["regressions"] = comparison["regressions"][:MAX_EXAMPLES]
        comparison["has_rules"] = bool(rules)
    packages = json.loads(run["packages"]) if run.get("packages") else {}
    routing = routing_section(store, run_id, volume_per_day)
    return {
        "run": run, "packages": packages, "models": models, "scorecard": SCORECARD, "baseline": baseline,
        "candidate": candidate, "comparison": comparison, "volume_per_day": volume_per_day,
        "costs": cost_section(store, run_id, volume_per_day, baseline),
        "latency_chart": lat_chart, "cost_chart": charts.cost_quality(cq_points, colors),
        "suite_config": json.dumps(config, indent=2), "max_examples": MAX_EXAMPLES, "routing": routing,
        "confidence_warnings": coverage_warnings(store, run_id), "worst_order": ORDER,
        "load_curves": load_curves(store, run["suite_name"], names, colors),
        "score_errors": score_error_section(store, run_id),
        "header": header_context(store, run, config, baseline, candidate, {m["name"]: m["metrics"] for m in models},
                                {k: label for k, label, _ in SCORECARD}),
        "judge": judge_section(store, run_id, config, metrics), "models_by_name": {m["name"]: m for m in models},
        "classification": classification_section(store, run_id, config, baseline, candidate, metrics,
                                                 comparison["deltas"] if comparison else None),
        "heldout": heldout_section(store, run_id, names),
        **explorer_context(store, run_id, names, baseline, candidate, int((config.get("run") or {}).get("seed", 0))),
    }

