"""Store queries about runs: the ``runs``, ``run_models`` and ``samples`` tables."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from evalkit.errors import RunNotFoundError
from evalkit.store.base import StoreBase, arrow_schema, json_values, now

SAMPLE_SCHEMA = arrow_schema(
    ("run_id", pa.string()), ("sample_id", pa.string()), ("position", pa.int32()),
    ("slice", pa.string()), ("fields", pa.string()), ("messages", pa.string()), ("target", pa.string()),
    ("target_label", pa.string()),
)


class RunQueries(StoreBase):
    """Runs, the models of each run, and the samples a run was started with."""

    def create_run(self, row: dict[str, Any]) -> None:
        """Insert a run row (built by :func:`evalkit.store.rows.run_row`)."""
        self.insert_row("runs", row)

    def has_run(self, run_id: str) -> bool:
        return self.one("SELECT 1 FROM runs WHERE run_id = ?", [run_id]) is not None

    def set_run_status(self, run_id: str, status: str, finished: bool = False, error: str | None = None) -> None:
        """A run's status, and why when it is failed or interrupted (cleared otherwise)."""
        self.sql("UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE run_id = ?",
                 [status, now() if finished else None, error, run_id])

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run's row; :class:`RunNotFoundError` naming recent runs when there is none."""
        rows = self.dicts("SELECT * FROM runs WHERE run_id = ?", [run_id])
        if not rows:
            recent = [r[0] for r in self.sql("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 3")]
            hint = f"; recent runs: {', '.join(recent)}" if recent else "; the store has no runs yet"
            raise RunNotFoundError(f"no run '{run_id}' in {self.path}{hint}")
        return rows[0]

    def resolve_run_id(self, ref: str) -> str:
        """A full run id from an id, a unique prefix, or 'latest'."""
        if ref == "latest":
            row = self.one("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 1")
            if row is None:
                raise RunNotFoundError(f"{self.path} has no runs yet")
            return str(row[0])
        rows = self.sql("SELECT run_id FROM runs WHERE starts_with(run_id, ?)", [ref])
        if len(rows) == 1:
            return str(rows[0][0])
        if len(rows) > 1:
            raise RunNotFoundError(f"run id prefix '{ref}' matches {len(rows)} runs; give more characters")
        self.get_run(ref)  # raises with a helpful message
        return ref

    def latest_complete_run(self, suite_name: str) -> str:
        """The newest complete run of a suite; :class:`RunNotFoundError` when it has none."""
        row = self.one("SELECT run_id FROM runs WHERE suite_name = ? AND status = 'complete' "
                       "ORDER BY created_at DESC LIMIT 1", [suite_name])
        if row is None:
            raise RunNotFoundError(f"no complete run of suite '{suite_name}' in {self.path}; run it first "
                                   "(or use --run-first)")
        return str(row[0])

    def suite_runs(self, suite_name: str) -> list[dict[str, Any]]:
        """Every run of a suite, oldest first (the history page's rows)."""
        return self.dicts("SELECT run_id, suite_name, suite_version, status, created_at, finished_at, n_samples, "
                          "repeats, git_commit, git_dirty, evalkit_version, config FROM runs WHERE suite_name = ? "
                          "ORDER BY created_at, run_id", [suite_name])

    def previous_run(self, suite_name: str, run_id: str) -> dict[str, Any] | None:
        """The run of the same suite started just before ``run_id`` (None for the first)."""
        rows = self.dicts("SELECT run_id, created_at, status FROM runs WHERE suite_name = ? AND created_at < "
                          "(SELECT created_at FROM runs WHERE run_id = ?) ORDER BY created_at DESC LIMIT 1",
                          [suite_name, run_id])
        return rows[0] if rows else None

    def list_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        return self.dicts(
            "SELECT r.run_id, r.suite_name, r.status, r.created_at, r.n_samples, "
            "string_agg(m.model, ', ' ORDER BY m.model) AS models "
            "FROM runs r LEFT JOIN run_models m USING (run_id) "
            "GROUP BY ALL ORDER BY r.created_at DESC LIMIT ?", [limit])

    # -- models of a run ----------------------------------------------------------------------
    def upsert_run_model(self, row: dict[str, Any]) -> None:
        cols = list(row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in ("run_id", "model"))
        self.sql(f"INSERT INTO run_models ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                 f"ON CONFLICT (run_id, model) DO UPDATE SET {updates}", json_values(row))

    def run_models(self, run_id: str) -> list[dict[str, Any]]:
        return self.dicts("SELECT * FROM run_models WHERE run_id = ? ORDER BY model", [run_id])

    def model_config(self, run_id: str, model: str) -> str | None:
        """The stored (redacted) suite entry of one model of a run, as JSON text."""
        row = self.one("SELECT config FROM run_models WHERE run_id = ? AND model = ?", [run_id, model])
        return row[0] if row else None

    def mark_models_interrupted(self, run_id: str, models: list[str]) -> None:
        """Models still running when the user stopped the run are marked interrupted."""
        self.sql("UPDATE run_models SET status = 'interrupted' WHERE run_id = ? AND status = 'running' "
                 "AND model IN (SELECT unnest(?::VARCHAR[]))", [run_id, models])

    # -- samples ------------------------------------------------------------------------------
    def insert_samples(self, rows: list[dict[str, Any]]) -> None:
        """The rendered samples of a run (built by :func:`evalkit.store.rows.sample_rows`)."""
        self.insert_batch("samples", rows, SAMPLE_SCHEMA, on_conflict_skip=True)

    def sample_ids(self, run_id: str) -> set[str]:
        """The ids of the samples a run was started with."""
        return {r[0] for r in self.sql("SELECT sample_id FROM samples WHERE run_id = ?", [run_id])}

    def samples(self, run_id: str) -> list[dict[str, Any]]:
        """A run's samples in dataset order (id, position, slice, messages and target as JSON text)."""
        return self.dicts("SELECT sample_id, position, slice, messages, target FROM samples WHERE run_id = ? "
                          "ORDER BY position", [run_id])
