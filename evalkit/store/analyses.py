"""Store queries about what analyses and checks add to a run: routing sweeps (``routing_policies``,
``routing_recommendations``) and lm-eval capability retention (``retention``, ``retention_samples``)."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from evalkit.store.base import StoreBase, arrow_schema

RETENTION_SAMPLE_SCHEMA = arrow_schema(
    ("run_id", pa.string()), ("model", pa.string()), ("task", pa.string()), ("doc_id", pa.int32()),
    ("metric", pa.string()), ("filter", pa.string()), ("value", pa.float64()), ("target", pa.string()),
    ("response", pa.string()))
RETENTION_SCHEMA = arrow_schema(
    ("run_id", pa.string()), ("model", pa.string()), ("model_ref", pa.string()), ("task", pa.string()),
    ("metric", pa.string()), ("filter", pa.string()), ("value", pa.float64()), ("stderr", pa.float64()),
    ("n", pa.int32()), ("higher_is_better", pa.bool_()), ("backend", pa.string()),
    ("lm_eval_version", pa.string()), ("config", pa.string()), ("created_at", pa.timestamp("us")))
_ROUTING_KEY = "run_id = ? AND small = ? AND large = ? AND signal = ?"


class AnalysisQueries(StoreBase):
    """Routing and retention results, each replaced whole for its key."""

    # -- routing ------------------------------------------------------------------------------
    def replace_routing(self, key: tuple[str, str, str, str], policies: Any,
                        recommendations: list[dict[str, Any]]) -> None:
        """One (run, small, large, signal) sweep: its policy rows (a DataFrame) and recommendation folds.

        ``recommendations``: dicts with style, max_drop, fold, detail (JSON-able) and created_at.
        """
        with self.transaction():
            self.sql(f"DELETE FROM routing_policies WHERE {_ROUTING_KEY}", list(key))
            self.sql(f"DELETE FROM routing_recommendations WHERE {_ROUTING_KEY}", list(key))
            self.insert_batch("routing_policies", policies)
            for r in recommendations:
                self.sql("INSERT INTO routing_recommendations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [*key, r["style"], r["max_drop"], r["fold"], json.dumps(r["detail"]), r["created_at"]])

    def latest_routing(self, run_id: str, style: str) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                            list[dict[str, Any]]] | None:
        """The run's newest routing sweep in one style: (small, large, signal and created_at; its policy rows by
        share escalated; its recommendation folds), or None when the run has not been routed."""
        latest = self.dicts("SELECT small, large, signal, max(created_at) AS created_at FROM routing_policies "
                            "WHERE run_id = ? GROUP BY ALL ORDER BY created_at DESC LIMIT 1", [run_id])
        if not latest:
            return None
        key = [run_id, latest[0]["small"], latest[0]["large"], latest[0]["signal"], style]
        policies = self.dicts(f"SELECT * FROM routing_policies WHERE {_ROUTING_KEY} AND style = ? "
                              "ORDER BY share_escalated, threshold", key)
        folds = [json.loads(r[0]) for r in self.sql(
            f"SELECT detail FROM routing_recommendations WHERE {_ROUTING_KEY} AND style = ? ORDER BY fold", key)]
        return latest[0], policies, folds

    # -- retention ----------------------------------------------------------------------------
    def replace_retention(self, run_id: str, model: str, summary: list[dict[str, Any]],
                          docs: list[dict[str, Any]]) -> None:
        """One model's retention rows of a run, replaced in one transaction (batched Arrow inserts)."""
        with self.transaction():
            for table in ("retention", "retention_samples"):
                self.sql(f"DELETE FROM {table} WHERE run_id = ? AND model = ?", [run_id, model])
            self.insert_batch("retention", summary, RETENTION_SCHEMA)
            self.insert_batch("retention_samples", docs, RETENTION_SAMPLE_SCHEMA)

    def retention_metric(self, run_id: str, task: str, metric: str, models: tuple[str, str]) -> list[dict[str, Any]]:
        """Which filters and direction a retention metric has for these models of a run."""
        return self.dicts("SELECT model, filter, higher_is_better FROM retention WHERE run_id = ? AND task = ? "
                          "AND metric = ? AND model IN (?, ?)", [run_id, task, metric, *models])

    def retention_refs(self, run_id: str) -> list[str]:
        """Every ``TASK/METRIC,FILTER`` a run has retention results for."""
        return sorted(r[0] for r in self.sql(
            "SELECT DISTINCT task || '/' || metric || ',' || filter FROM retention WHERE run_id = ?", [run_id]))

    def retention_docs(self, run_id: str, task: str, metric: str, filt: str, baseline: str, candidate: str) -> Any:
        """Per-document values of both models on the documents both answered (columns b, c), by document."""
        return self.frame(
            "SELECT b.value AS b, c.value AS c FROM retention_samples b JOIN retention_samples c "
            "USING (run_id, task, doc_id, metric, filter) WHERE run_id = ? AND task = ? AND metric = ? "
            "AND filter = ? AND b.model = ? AND c.model = ? ORDER BY doc_id",
            [run_id, task, metric, filt, baseline, candidate])

    def retention_summary(self, run_id: str, task: str, metric: str, filt: str,
                          models: tuple[str, str]) -> dict[str, dict[str, Any]]:
        """lm-eval's own value, stderr and n of a metric for these models, by model."""
        return {r["model"]: r for r in self.dicts(
            "SELECT model, value, stderr, n FROM retention WHERE run_id = ? AND task = ? AND metric = ? "
            "AND filter = ? AND model IN (?, ?)", [run_id, task, metric, filt, *models])}
