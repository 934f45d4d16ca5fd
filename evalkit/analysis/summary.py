"""A run's metrics as the public JSON contract (``evalkit show --json``) and as a terminal table.

Format ``evalkit.show/1``::

    {"format": "evalkit.show/1",
     "run": {"run_id", "suite", "suite_version", "status", "created_at", "finished_at",
             "n_samples", "repeats", "suite_hash", "dataset_hash", "git_commit", "git_dirty",
             "evalkit_version"},
     "models": {NAME: {"provider", "model_ref", "status", "error",
                       "metrics": {METRIC: {"value", "ci_low", "ci_high", "n",
                                            "higher_is_better"}}}}}

Metric names are listed in :data:`evalkit.analysis.metrics.METRICS`; a metric that does not apply (e.g.
``feasible_rate`` without feasibility checks) has ``value: null``.
"""

from __future__ import annotations

import io
from typing import Any

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
                              "error": m["error"], "metrics": {}}
    for row in store.metrics(run_id):
        entry = models.setdefault(row["model"], {"metrics": {}})
        info = METRICS.get(row["metric"])
        entry["metrics"][row["metric"]] = {
            "value": row["value"], "ci_low": row["ci_low"], "ci_high": row["ci_high"], "n": row["n"],
            "higher_is_better": info.higher_is_better if info else None}
    return {"format": SHOW_FORMAT, "run": run_info, "models": models}


def _fmt(metric: str, v: dict[str, Any] | None) -> str:
    if v is None or v["value"] is None:
        return "—"
    value = v["value"]
    if metric.startswith(("latency", "ttft")):
        text = f"{value:,.0f} ms"
    elif metric.startswith("cost"):
        text = f"${value:,.4f}"
    elif metric in ("n", "n_errors", "n_score_errors", "prompt_tokens", "completion_tokens"):
        text = f"{value:,.0f}"
    elif metric.endswith("_mean") and "tokens" in metric:
        text = f"{value:,.1f}"
    else:
        text = f"{value:.3f}"
    if v.get("ci_low") is not None and v.get("ci_high") is not None and not metric.startswith("cost"):
        text += f" [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"
    return text


def render_table(payload: dict[str, Any]) -> str:
    """The metrics as a plain-text table, one column per model."""
    from rich.console import Console
    from rich.table import Table

    run = payload["run"]
    table = Table(title=f"{run['suite']} · run {run['run_id']} · {run['status']} · n={run['n_samples']}")
    table.add_column("metric")
    names = list(payload["models"])
    for name in names:
        m = payload["models"][name]
        table.add_column(f"{name}\n{m.get('model_ref') or ''}", justify="right")
    for metric in METRICS:
        cells = [_fmt(metric, payload["models"][n]["metrics"].get(metric)) for n in names]
        if all(c == "—" for c in cells):
            continue
        table.add_row(metric, *cells)
    buffer = io.StringIO()
    Console(file=buffer, width=160, color_system=None).print(table)
    return buffer.getvalue().rstrip()
