"""Store queries of the report's sample explorer: a light frame of every answer (to choose which samples to show)
and the full rows of the chosen ones (messages, raw and parsed answers, violations, tokens)."""

from __future__ import annotations

from typing import Any

from evalkit.store.base import StoreBase

# Per answer, what the explorer's filters and selection need: no long text.
LIGHT_COLUMNS = ("r.model, r.sample_id, r.repeat, r.status, r.correct, r.quality, r.confidence, r.schema_valid, "
                 "r.feasible, r.score_error IS NOT NULL AS score_failed, s.slice, s.position")
# Per answer of a chosen sample, what its drill-down shows.
FULL_COLUMNS = ("r.model, r.sample_id, r.repeat, r.status, r.correct, r.quality, r.confidence, r.schema_valid, "
                "r.feasible, r.output, r.parsed, r.parse_error, r.schema_errors, r.violations, r.score_error, "
                "r.latency_ms, r.ttft_ms, r.prompt_tokens, r.completion_tokens, r.cost_usd, r.finish_reason, "
                "r.error, r.error_kind")


class ExplorerQueries(StoreBase):
    """Samples and answers for the side-by-side explorer."""

    def explorer_light_frame(self, run_id: str) -> Any:
        """Every answer of a run (all models), short columns only, in dataset order."""
        return self.frame(f"SELECT {LIGHT_COLUMNS} FROM results r LEFT JOIN samples s USING (run_id, sample_id) "
                          "WHERE r.run_id = ? ORDER BY s.position, r.repeat, r.model", [run_id])

    def explorer_answers(self, run_id: str, sample_ids: list[str]) -> list[dict[str, Any]]:
        """Every model's full answer rows for these samples (all repeats)."""
        return self.dicts(f"SELECT {FULL_COLUMNS} FROM results r WHERE r.run_id = ? "
                          "AND r.sample_id IN (SELECT unnest(?::VARCHAR[]))", [run_id, sample_ids])

    def explorer_samples(self, run_id: str, sample_ids: list[str]) -> list[dict[str, Any]]:
        """The chosen samples: id, position, slice, rendered messages and target (JSON text)."""
        return self.dicts("SELECT sample_id, position, slice, messages, target FROM samples WHERE run_id = ? "
                          "AND sample_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY position", [run_id, sample_ids])
