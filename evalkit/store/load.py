"""Store queries about open-loop load: ``load_runs`` (one model's sweep of rates, or the paced phase of an
``evalkit run`` with ``run.load``), ``load_points`` (one row per asked rate) and ``load_requests`` (one row
per request: its scheduled arrival, queueing delay and latency)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from evalkit.store.base import StoreBase, arrow_schema, now

POINT_SCHEMA = arrow_schema(
    ("load_id", pa.string()), ("rate_per_s", pa.float64()), ("n_sent", pa.int32()), ("n_ok", pa.int32()),
    ("n_errors", pa.int32()), ("n_cached", pa.int32()), ("error_rate", pa.float64()),
    ("duration_s", pa.float64()), ("achieved_rps", pa.float64()), ("send_rate_rps", pa.float64()),
    ("latency_ms_p50", pa.float64()), ("latency_ms_p95", pa.float64()), ("latency_ms_p99", pa.float64()),
    ("ttft_ms_p50", pa.float64()), ("ttft_ms_p99", pa.float64()), ("e2e_ms_p99", pa.float64()),
    ("queue_ms_p50", pa.float64()), ("queue_ms_p99", pa.float64()), ("queue_ms_max", pa.float64()),
    ("cap_waits", pa.int32()), ("cap_delay_ms_mean", pa.float64()), ("cap_delay_ms_max", pa.float64()),
    ("peak_in_flight", pa.int32()), ("meets_slo", pa.bool_()), ("created_at", pa.timestamp("us")))
REQUEST_SCHEMA = arrow_schema(
    ("load_id", pa.string()), ("rate_per_s", pa.float64()), ("seq", pa.int32()), ("sample_id", pa.string()),
    ("repeat", pa.int32()), ("scheduled_ms", pa.float64()), ("queue_ms", pa.float64()), ("capped", pa.bool_()),
    ("latency_ms", pa.float64()), ("ttft_ms", pa.float64()), ("status", pa.string()),
    ("error_kind", pa.string()))
POINT_COLUMNS = tuple(f.name for f in POINT_SCHEMA)


class LoadQueries(StoreBase):
    """Load sweeps and paced runs: created, a point per rate added, then finished."""

    def create_load_run(self, row: dict[str, Any]) -> None:
        """Insert a ``load_runs`` row (status ``running``; see the migration for the columns)."""
        self.insert_row("load_runs", {"created_at": now(), "status": "running", **row})

    def add_load_point(self, load_id: str, point: dict[str, Any], requests: list[dict[str, Any]]) -> None:
        """One rate's figures and its requests, in one transaction (a rerun of a rate replaces it)."""
        row = {c: point.get(c) for c in POINT_COLUMNS} | {"load_id": load_id, "created_at": now()}
        with self.transaction():
            for table in ("load_points", "load_requests"):
                self.sql(f"DELETE FROM {table} WHERE load_id = ? AND rate_per_s = ?", [load_id, point["rate_per_s"]])
            self.insert_batch("load_points", [row], POINT_SCHEMA)
            self.insert_batch("load_requests", [{**r, "load_id": load_id, "rate_per_s": point["rate_per_s"]}
                                                for r in requests], REQUEST_SCHEMA)

    def finish_load_run(self, load_id: str, status: str, goodput_rps: float | None = None) -> None:
        self.sql("UPDATE load_runs SET status = ?, goodput_rps = ?, finished_at = ? WHERE load_id = ?",
                 [status, goodput_rps, now(), load_id])

    def load_run(self, load_id: str) -> dict[str, Any] | None:
        rows = self.dicts("SELECT * FROM load_runs WHERE load_id = ?", [load_id])
        return rows[0] if rows else None

    def load_points(self, load_id: str) -> list[dict[str, Any]]:
        """A load run's points, by asked rate."""
        return self.dicts("SELECT * FROM load_points WHERE load_id = ? ORDER BY rate_per_s", [load_id])

    def run_load_points(self, run_id: str) -> list[dict[str, Any]]:
        """The paced phases of an evalkit run (``run.load``): model, load id and the point's figures."""
        return self.dicts("SELECT l.model, p.* FROM load_runs l JOIN load_points p USING (load_id) "
                          "WHERE l.kind = 'run' AND l.run_id = ? ORDER BY l.model, l.created_at", [run_id])

    def latest_load_sweep(self, suite_name: str, model: str) -> dict[str, Any] | None:
        """The newest complete sweep of this suite's model (a ``load_runs`` row), or None."""
        rows = self.dicts("SELECT * FROM load_runs WHERE kind = 'sweep' AND status = 'complete' AND suite_name = ? "
                          "AND model = ? ORDER BY created_at DESC, load_id DESC LIMIT 1", [suite_name, model])
        return rows[0] if rows else None

    def latest_goodput(self, suite_name: str, model: str) -> tuple[float, str] | None:
        """(goodput in requests/s, load id) of the newest complete sweep of this suite's model; None when there
        is no sweep, or the newest one found no rate within its SLO (an older sweep is never used instead)."""
        sweep = self.latest_load_sweep(suite_name, model)
        if sweep is None or sweep["goodput_rps"] is None:
            return None
        return float(sweep["goodput_rps"]), str(sweep["load_id"])
