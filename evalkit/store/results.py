"""Store queries about answers: the ``results`` and ``metrics`` tables.

A result row is keyed by (run, model, sample, repeat) and inserted with ``ON CONFLICT DO NOTHING``, so
a resumed run can never store a sample twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

from evalkit.store.base import StoreBase, arrow_schema

RESULT_SCHEMA = arrow_schema(
    ("run_id", pa.string()), ("model", pa.string()), ("sample_id", pa.string()),
    ("repeat", pa.int32()), ("status", pa.string()), ("output", pa.string()),
    ("parsed", pa.string()), ("parse_error", pa.string()), ("schema_valid", pa.bool_()),
    ("schema_errors", pa.string()), ("feasible", pa.bool_()), ("violations", pa.string()),
    ("quality", pa.float64()), ("correct", pa.bool_()), ("confidence", pa.float64()),
    ("score_error", pa.string()), ("latency_ms", pa.float64()), ("ttft_ms", pa.float64()),
    ("prompt_tokens", pa.int32()), ("completion_tokens", pa.int32()), ("cost_usd", pa.float64()),
    ("finish_reason", pa.string()), ("resolved_model", pa.string()), ("request_params", pa.string()),
    ("logprobs", pa.string()), ("error", pa.string()), ("error_kind", pa.string()),
    ("attempts", pa.int32()), ("cache_hit", pa.bool_()), ("cache_key", pa.string()),
    ("created_at", pa.timestamp("us")), ("client_lag_ms", pa.float64()),
)
SAMPLE_COLUMNS = ("position", "slice", "fields", "messages", "target")
JSON_RESULT_COLUMNS = ("parsed", "schema_errors", "violations", "request_params", "logprobs")
METRIC_SCHEMA = arrow_schema(
    ("run_id", pa.string()), ("model", pa.string()), ("metric", pa.string()),
    ("value", pa.float64()), ("ci_low", pa.float64()), ("ci_high", pa.float64()), ("n", pa.int64()))
# What a paired comparison reads of each side (joined with the sample's slice and target).
SIDE_COLUMNS = ("r.sample_id, r.repeat, r.status, r.correct, r.quality, r.schema_valid, r.feasible, r.confidence, "
                "r.latency_ms, r.ttft_ms, r.cost_usd, r.output, r.violations, r.error, s.slice, s.target")


class ResultQueries(StoreBase):
    """Per-sample answers and the metrics computed from them."""

    def insert_results(self, rows: list[dict[str, Any]]) -> int:
        """Insert a batch of result rows in one statement; returns how many were new."""
        return self.insert_batch("results", rows, RESULT_SCHEMA, on_conflict_skip=True)

    def done_keys(self, run_id: str, model: str) -> set[tuple[str, int]]:
        """(sample_id, repeat) pairs already stored for a model of a run."""
        return {(r[0], int(r[1])) for r in self.sql(
            "SELECT sample_id, repeat FROM results WHERE run_id = ? AND model = ?", [run_id, model])}

    def delete_failed_results(self, run_id: str, model: str) -> None:
        """Drop a model's error rows, so a resumed run tries them again (successful rows stay)."""
        self.sql("DELETE FROM results WHERE run_id = ? AND model = ? AND status = 'error'", [run_id, model])

    def count_results(self, run_id: str, model: str | None = None, called_only: bool = False) -> int:
        """Result rows of a run (of one model; ``called_only``: leaving out answers from the cache)."""
        query = "SELECT count(*) FROM results WHERE run_id = ?"
        params: list[Any] = [run_id]
        if model is not None:
            query += " AND model = ?"
            params.append(model)
        if called_only:
            query += " AND NOT cache_hit"
        row = self.one(query, params)
        return int(row[0]) if row else 0

    def fill_missing_cost(self, run_id: str, model: str, cost_per_row: float) -> None:
        """Give every unpriced row of a model the same cost (self-hosted: measured GPU time per row)."""
        self.sql("UPDATE results SET cost_usd = ? WHERE run_id = ? AND model = ? AND cost_usd IS NULL",
                 [cost_per_row, run_id, model])

    def cached_responses(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The newest successful stored answer for each cache key that has one."""
        key_list = sorted(set(keys))
        if not key_list:
            return {}
        rows = self.dicts(
            "SELECT cache_key, output, finish_reason, prompt_tokens, completion_tokens, latency_ms, "
            "ttft_ms, resolved_model, logprobs, cost_usd, request_params, client_lag_ms FROM results "
            "WHERE status = 'ok' AND cache_key IN (SELECT unnest(?::VARCHAR[])) "
            "QUALIFY row_number() OVER (PARTITION BY cache_key ORDER BY created_at DESC) = 1", [key_list])
        return {r["cache_key"]: r for r in rows}

    def results_frame(self, run_id: str, columns: Sequence[str] | None = None) -> Any:
        """A run's result rows as a pandas DataFrame (one row per model × sample × repeat), in dataset order.

        ``columns``: names of ``results`` columns, or of the sample's own (``slice``, ``target``, ...);
        every column of both when None.
        """
        if columns is None:
            select = "*"
        else:
            unknown = [c for c in columns if c not in RESULT_SCHEMA.names and c not in SAMPLE_COLUMNS]
            if unknown:
                raise ValueError(f"not a column of results or samples: {unknown}")
            select = ", ".join(f"{'s' if c in SAMPLE_COLUMNS else 'r'}.{c}" for c in columns)
        return self.frame(
            f"SELECT {select} FROM results r LEFT JOIN samples s USING (run_id, sample_id) "
            "WHERE r.run_id = ? ORDER BY r.model, s.position, r.repeat", [run_id])

    def report_frame(self, run_id: str) -> Any:
        """What the HTML report shows of each row, with ``batch_call``: the answer came from a batching engine
        (its ``request_params`` say ``latency_kind: batch``), so its latency is not one request's."""
        return self.frame(
            "SELECT r.model, r.sample_id, r.status, r.correct, r.quality, r.confidence, r.latency_ms, r.output, "
            "r.error, r.violations, s.target, s.slice, "
            "contains(r.request_params, '\"latency_kind\": \"batch\"') AS batch_call "
            "FROM results r LEFT JOIN samples s USING (run_id, sample_id) "
            "WHERE r.run_id = ? ORDER BY r.model, s.position, r.repeat", [run_id])

    def side_frame(self, run_id: str, model: str) -> Any:
        """One model's rows of one run for a paired comparison, in dataset order (:data:`SIDE_COLUMNS`)."""
        return self.frame(
            f"SELECT {SIDE_COLUMNS} FROM results r LEFT JOIN samples s USING (run_id, sample_id) "
            "WHERE r.run_id = ? AND r.model = ? ORDER BY s.position, r.repeat", [run_id, model])

    def model_results(self, run_id: str, model: str) -> list[dict[str, Any]]:
        """Every stored column of one model's rows of a run, by sample id and repeat."""
        return self.dicts("SELECT * FROM results WHERE run_id = ? AND model = ? ORDER BY sample_id, repeat",
                          [run_id, model])

    def confidences(self, run_id: str, model: str, repeat: int = 0) -> list[tuple[str, float | None]]:
        """(sample id, stored confidence) of one model's rows of one repeat."""
        return [(str(r[0]), r[1]) for r in self.sql(
            "SELECT sample_id, confidence FROM results WHERE run_id = ? AND model = ? AND repeat = ?",
            [run_id, model, repeat])]

    # -- metrics ------------------------------------------------------------------------------
    def replace_metrics(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """A run's metric rows, replaced in one transaction."""
        with self.transaction():
            self.sql("DELETE FROM metrics WHERE run_id = ?", [run_id])
            self.insert_batch("metrics", rows, METRIC_SCHEMA)

    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        return self.dicts("SELECT model, metric, value, ci_low, ci_high, n FROM metrics "
                          "WHERE run_id = ? ORDER BY model, metric", [run_id])

    def score_error_counts(self, run_id: str) -> list[tuple[str, str, int]]:
        """(model, score_error, rows) for every distinct score error of a run."""
        return [(str(m), str(e), int(n)) for m, e, n in self.sql(
            "SELECT model, score_error, count(*) FROM results WHERE run_id = ? AND score_error IS NOT NULL "
            "GROUP BY ALL ORDER BY model, score_error", [run_id])]

    def call_counts(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Per model of a run: its answers, how many were requested in this run (``called``, with their
        ``attempts``, retries included, and their ``cost_usd``) and how many came from the cache."""
        rows = self.dicts(
            "SELECT model, count(*) AS answers, count(*) FILTER (WHERE NOT cache_hit) AS called, "
            "count(*) FILTER (WHERE cache_hit) AS from_cache, "
            "coalesce(sum(attempts) FILTER (WHERE NOT cache_hit), 0) AS attempts, "
            "sum(cost_usd) FILTER (WHERE NOT cache_hit) AS cost_usd "
            "FROM results WHERE run_id = ? GROUP BY model ORDER BY model", [run_id])
        return {str(r.pop("model")): r for r in rows}
