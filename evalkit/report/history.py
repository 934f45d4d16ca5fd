"""``evalkit report --history SUITE``: one suite's runs over time, from one store or several.

Per run: each model's headline metrics with their CIs, the gate verdict the suite's stored gates give that run,
the git commit it ran at and each model's version (what was called, and the LoRA adapter's identity). Every
number is a stored value or recomputed from stored rows (the gates, with the suite stored with the run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalkit.errors import ConfigError, EvalkitError
from evalkit.report import history_chart
from evalkit.report.numbers import interval, number, timestamp
from evalkit.store.db import Store

HEADLINE = ["accuracy", "schema_valid_rate", "feasible_rate", "brier", "ece", "tail5", "latency_ms_p50",
            "latency_ms_p95", "error_rate", "cost_per_1k", "monthly_cost_usd"]


def model_version(row: dict[str, Any]) -> str:
    """What a model of a run was: its reference, and the adapter's name and sha256 prefix when it had one."""
    ref = str(row.get("model_ref") or "")
    adapter = json.loads(row["adapter"]) if row.get("adapter") else None
    if not adapter:
        return ref
    digest = str(adapter.get("weights_sha256") or "")[:12]
    name = adapter.get("name") or Path(str(adapter.get("path") or "")).name or "adapter"
    return f"{ref} + LoRA {name}" + (f" @{digest}" if digest else "")


def run_verdict(store: Store, run_id: str, config: dict[str, Any]) -> dict[str, Any]:
    """The verdict of the suite's stored gates on this run (baseline and candidate of this run), or why none."""
    from evalkit.analysis.gates import evaluate
    from evalkit.analysis.paired import pair, parse_side
    from evalkit.analysis.retention import retention_pair_from_config
    from evalkit.config.gate_specs import GateRule

    gates = config.get("gates") or {}
    rules = [GateRule.model_validate(r) for r in (gates.get("rules") or [])]
    if not rules or not gates.get("baseline") or not gates.get("candidate"):
        return {"verdict": "none", "why": "the suite declares no gates"}
    run = config.get("run") or {}
    try:
        pairing = pair(store, parse_side(gates["baseline"], run_id, store), parse_side(gates["candidate"], run_id, store))
        report = evaluate(store, pairing, rules, int(run.get("seed", 0)), int(run.get("bootstrap") or 1000),
                          retention_pair_from_config(config), str(gates.get("correction") or "none"),
                          max_score_errors=int((config.get("scoring") or {}).get("max_score_errors", 0)))
    except EvalkitError as exc:
        return {"verdict": "error", "why": str(exc)}
    failed = [g["metric"] for g in report["gates"] if g["verdict"] in ("fail", "error", "inconclusive")]
    return {"verdict": report["verdict"], "why": ", ".join(failed) or f"{len(report['gates'])} gates passed",
            "baseline": gates["baseline"], "candidate": gates["candidate"]}


def collect_history(stores: list[Path], suite: str) -> dict[str, Any]:
    """The runs of ``suite`` in every store, oldest first; a run found in two stores is shown once."""
    runs: dict[str, dict[str, Any]] = {}
    for path in stores:
        if not path.exists():
            raise ConfigError(f"no store at {path}", file=str(path))
        with Store(path, read_only=True) as store:
            for run in store.suite_runs(suite):
                if run["run_id"] in runs:
                    runs[run["run_id"]]["stores"].append(str(path))
                    continue
                config = json.loads(run["config"]) if run.get("config") else {}
                models = store.run_models(run["run_id"])
                metrics: dict[str, dict[str, dict[str, Any]]] = {}
                for m in store.metrics(run["run_id"]):
                    metrics.setdefault(m["model"], {})[m["metric"]] = m
                runs[run["run_id"]] = {
                    "run_id": run["run_id"], "started": timestamp(run["created_at"]), "created_at": run["created_at"],
                    "status": run["status"], "n_samples": run["n_samples"], "suite_version": run["suite_version"],
                    "git_commit": run["git_commit"], "git_dirty": bool(run["git_dirty"]),
                    "evalkit_version": run["evalkit_version"], "stores": [str(path)],
                    "models": {m["model"]: model_version(m) for m in models}, "metrics": metrics,
                    "gate": run_verdict(store, run["run_id"], config),
                    "report_file": f"{suite}-{run['run_id']}.html"}
    if not runs:
        raise ConfigError(f"no run of suite '{suite}' in {', '.join(str(p) for p in stores)}")
    ordered = sorted(runs.values(), key=lambda r: (r["created_at"], r["run_id"]))
    names = sorted({m for r in ordered for m in r["models"]})
    present = [k for k in HEADLINE if any(r["metrics"].get(m, {}).get(k, {}).get("value") is not None
                                          for r in ordered for m in names)]
    points = [{"run_id": r["run_id"], "model": m, "metric": k, "value": v["value"], "ci_low": v["ci_low"],
               "ci_high": v["ci_high"], "text": number(k, v["value"]),
               "ci_text": interval(k, v["ci_low"], v["ci_high"])}
              for r in ordered for m in names for k in present
              if (v := r["metrics"].get(m, {}).get(k)) is not None and v["value"] is not None]
    charts = [{"metric": k, "svg": history_chart.metric_chart(k, ordered, names)} for k in present]
    versions = {m: [r["models"].get(m) for r in ordered] for m in names}
    return {"suite": suite, "runs": ordered, "models": names, "metrics": present, "points": points,
            "charts": charts, "stores": [str(p) for p in stores],
            "changed_versions": {m: len({v for v in vs if v}) > 1 for m, vs in versions.items()}}


def render_history(stores: list[Path], suite: str) -> str:
    from evalkit.report.render import environment

    return environment().get_template("history.html.j2").render(**collect_history(stores, suite))


def write_history(stores: list[Path], suite: str, output: str | Path) -> Path:
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_history(stores, suite), encoding="utf-8")
    return path
