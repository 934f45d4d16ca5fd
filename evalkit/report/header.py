"""The report's header and labels: what the suite is for, each model's role and what it really is, the run
this one is compared with, which scorecard rows do not apply (and why), and configs as labelled tables."""

from __future__ import annotations

import json
from typing import Any

from evalkit.report.numbers import timestamp
from evalkit.store.db import Store

# why a scorecard row has no value for any model of the run
NOT_APPLICABLE = {
    "schema_valid_rate": "the output has no JSON schema",
    "feasible_rate": "the suite has no feasibility check",
    "valid_but_infeasible_rate": "the suite has no feasibility check",
    "brier": "no model has a confidence: confidence.source", "ece": "no model has a confidence: confidence.source",
    "tail5_brier": "no model has a confidence: confidence.source",
    "confident_error_rate": "no model has a confidence: confidence.source",
    "ttft_ms_p50": "no call was streamed", "cost_per_1k": "no model has a price or a cost block",
    "output_tokens_per_s": "no token counts were returned",
}


def _role(name: str, baseline: str | None, candidate: str | None) -> str:
    if name == baseline:
        return "baseline"
    if name == candidate:
        return "candidate"
    return "also run"


def rows(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A nested mapping as (dotted key, value) rows for a two-column table; lists joined, None as "—"."""
    out: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(rows(v, f"{prefix}{k}." if isinstance(v, dict) and v else f"{prefix}{k}"))
        return out
    if isinstance(value, list):
        text = ", ".join(json.dumps(v) if isinstance(v, dict | list) else str(v) for v in value)
    else:
        text = "—" if value is None else str(value)
    return [(prefix.rstrip("."), text)]


def header_context(store: Store, run: dict[str, Any], config: dict[str, Any], baseline: str | None,
                   candidate: str | None, metrics: dict[str, dict[str, Any]], labels: dict[str, str]) -> dict[str, Any]:
    """Description, roles, stand-in notes, the linked baseline run, rows that do not apply, config tables."""
    models = []
    tables = {}
    for m in store.run_models(run["run_id"]):
        cfg = json.loads(m["config"]) if m["config"] else {}
        models.append({"name": m["model"], "role": _role(m["model"], baseline, candidate), "provider": m["provider"],
                       "model_ref": m["model_ref"], "note": cfg.get("note")})
        adapter = json.loads(m["adapter"]) if m["adapter"] else None
        tables[m["model"]] = {"config": rows({k: v for k, v in cfg.items() if k != "note"}),
                              "adapter": rows(adapter) if adapter else None}
    hidden = [k for k in labels if all((metrics.get(n, {}).get(k) or {}).get("value") is None for n in metrics)]
    return {"description": (config or {}).get("description") or "", "models": models,
            "started": timestamp(run.get("created_at")), "finished": timestamp(run.get("finished_at")),
            "baseline_run": baseline_run(store, run, config), "config_tables": tables, "suite_rows": rows(config or {}),
            "hidden": hidden, "hidden_why": {k: f"{labels[k]}: {NOT_APPLICABLE.get(k, 'not measured in this run')}" for k in hidden}}


def baseline_run(store: Store, run: dict[str, Any], config: dict[str, Any]) -> dict[str, Any] | None:
    """The run this one is compared with: the gate's stored ``RUN:MODEL`` baseline, else the suite's previous run;
    linked by the file name ``evalkit report`` gives that run's report."""
    base = ((config or {}).get("gates") or {}).get("baseline") or ""
    suite = run["suite_name"]
    if ":" in base:
        ref = base.rpartition(":")[0]
        try:
            other = store.get_run(store.resolve_run_id(ref))
        except Exception:  # noqa: BLE001 (a baseline run kept in another store: named, not linked)
            return {"run_id": ref, "file": None, "why": "the gates' stored baseline (not in this store)",
                    "started": None}
        return {"run_id": other["run_id"], "file": f"{suite}-{other['run_id']}.html",
                "why": "the gates' stored baseline", "started": timestamp(other["created_at"])}
    previous = store.previous_run(suite, run["run_id"])
    if previous is None:
        return None
    return {"run_id": previous["run_id"], "file": f"{suite}-{previous['run_id']}.html",
            "why": "the previous run of this suite", "started": timestamp(previous["created_at"])}
