"""Store queries of the LLM judge: the ``judgements`` table, and the judged quality written into ``results``.

A judgement is keyed by (run, model, sample, repeat, kind, pair_order) and inserted with ``ON CONFLICT
DO NOTHING``; its ``cache_key`` (judge identity, messages, parameters) lets an unchanged rerun reuse the
verdict without calling the judge.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from evalkit.store.base import StoreBase, arrow_schema

JUDGEMENT_SCHEMA = arrow_schema(
    ("run_id", pa.string()), ("model", pa.string()), ("sample_id", pa.string()), ("repeat", pa.int32()),
    ("kind", pa.string()), ("pair_order", pa.string()), ("other_model", pa.string()),
    ("judge_model", pa.string()), ("status", pa.string()), ("raw", pa.string()), ("verdict", pa.string()),
    ("reasoning", pa.string()), ("score", pa.float64()), ("error", pa.string()), ("latency_ms", pa.float64()),
    ("prompt_tokens", pa.int32()), ("completion_tokens", pa.int32()), ("cost_usd", pa.float64()),
    ("attempts", pa.int32()), ("cache_hit", pa.bool_()), ("cache_key", pa.string()), ("messages", pa.string()),
    ("created_at", pa.timestamp("us")),
)
JUDGE_ERROR_PREFIX = "judge "  # every judge score error starts so (results.score_error)


class JudgementQueries(StoreBase):
    """The judge's verdicts per row, and the judged quality of the rows."""

    def insert_judgements(self, rows: list[dict[str, Any]]) -> int:
        return self.insert_batch("judgements", rows, JUDGEMENT_SCHEMA, on_conflict_skip=True)

    def forget_failed_judgements(self, run_id: str) -> None:
        """A resumed run asks the judge again where it failed: its error verdicts and their score errors go."""
        with self.transaction():
            self.sql("DELETE FROM judgements WHERE run_id = ? AND status = 'error'", [run_id])
            self.sql("UPDATE results SET score_error = NULL WHERE run_id = ? AND starts_with(score_error, ?)",
                     [run_id, JUDGE_ERROR_PREFIX])

    def pointwise_todo(self, run_id: str, model: str, skip_infeasible: bool) -> list[dict[str, Any]]:
        """A model's answered, usable rows that have no verdict yet (sample_id, repeat, output)."""
        return self.dicts(
            "SELECT r.sample_id, r.repeat, r.output FROM results r LEFT JOIN samples s USING (run_id, sample_id) "
            "WHERE r.run_id = ? AND r.model = ? AND r.status = 'ok' AND r.schema_valid IS DISTINCT FROM false "
            "AND r.parsed IS NOT NULL AND NOT (? AND r.feasible IS NOT DISTINCT FROM false) "
            "AND NOT EXISTS (SELECT 1 FROM judgements j WHERE j.run_id = r.run_id AND j.model = r.model "
            "AND j.sample_id = r.sample_id AND j.repeat = r.repeat AND j.kind = 'pointwise') "
            "ORDER BY s.position, r.repeat", [run_id, model, skip_infeasible])

    def pairwise_todo(self, run_id: str, baseline: str, candidate: str) -> list[dict[str, Any]]:
        """(sample_id, repeat, baseline_output, candidate_output) where both answered and no verdict is stored."""
        return self.dicts(
            "SELECT c.sample_id, c.repeat, b.output AS baseline_output, c.output AS candidate_output "
            "FROM results c JOIN results b ON b.run_id = c.run_id AND b.sample_id = c.sample_id "
            "AND b.repeat = c.repeat AND b.model = ? LEFT JOIN samples s ON s.run_id = c.run_id "
            "AND s.sample_id = c.sample_id WHERE c.run_id = ? AND c.model = ? AND c.status = 'ok' "
            "AND b.status = 'ok' AND NOT EXISTS (SELECT 1 FROM judgements j WHERE j.run_id = c.run_id "
            "AND j.model = c.model AND j.sample_id = c.sample_id AND j.repeat = c.repeat AND j.kind = 'pairwise') "
            "ORDER BY s.position, c.repeat", [baseline, run_id, candidate])

    def cached_judgements(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The newest readable verdict stored for each cache key that has one (from any run)."""
        key_list = sorted(set(keys))
        if not key_list:
            return {}
        rows = self.dicts(
            "SELECT cache_key, raw, latency_ms, prompt_tokens, completion_tokens, cost_usd FROM judgements "
            "WHERE status = 'ok' AND cache_key IN (SELECT unnest(?::VARCHAR[])) "
            "QUALIFY row_number() OVER (PARTITION BY cache_key ORDER BY created_at DESC) = 1", [key_list])
        return {r["cache_key"]: r for r in rows}

    def apply_judgements(self, run_id: str, model: str, correct_threshold: float | None) -> None:
        """Write a model's pointwise verdicts into its rows: quality = the judged score (0 with a score error
        when the verdict failed); ``correct`` = quality ≥ the threshold unless a ``scoring.correct`` rule
        decided it (``correct_threshold`` None)."""
        self.sql(
            "UPDATE results r SET quality = coalesce(j.score, 0.0), "
            "correct = CASE WHEN ?::DOUBLE IS NULL THEN r.correct ELSE coalesce(j.score, 0.0) >= ? - 1e-12 END, "
            "score_error = CASE WHEN j.status = 'error' THEN concat_ws('; ', r.score_error, j.error) "
            "ELSE r.score_error END "
            "FROM judgements j WHERE j.run_id = r.run_id AND j.model = r.model AND j.sample_id = r.sample_id "
            "AND j.repeat = r.repeat AND j.kind = 'pointwise' AND r.run_id = ? AND r.model = ?",
            [correct_threshold, correct_threshold, run_id, model])

    def judgements_frame(self, run_id: str, human_field: str | None) -> Any:
        """A run's verdicts with the sample's people's score (``human``: the field's JSON text, or NULL)."""
        return self.frame(
            "SELECT j.model, j.sample_id, j.repeat, j.kind, j.pair_order, j.status, j.score, j.verdict, "
            "j.reasoning, j.error, j.latency_ms, j.cost_usd, j.cache_hit, j.attempts, j.judge_model, "
            "CASE WHEN ?::VARCHAR IS NULL THEN NULL ELSE json_extract(s.fields, '$.\"' || ? || '\"')::VARCHAR END "
            "AS human FROM judgements j LEFT JOIN samples s USING (run_id, sample_id) WHERE j.run_id = ? "
            "ORDER BY j.model, j.kind, s.position, j.repeat, j.pair_order", [human_field, human_field, run_id])
