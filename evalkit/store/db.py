"""The DuckDB store: the single source of truth that reports, gates and analyses read.

All writes of per-sample data are batched through Arrow tables (never a row at a time). A result row
is keyed by (run, model, sample, repeat) and inserted with ``ON CONFLICT DO NOTHING``, so a resumed
run can never store a sample twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from evalkit.errors import RunNotFoundError, StoreError
from evalkit.store.migrations import MIGRATIONS

RESULT_SCHEMA = pa.schema([
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
    ("created_at", pa.timestamp("us")),
])
JSON_RESULT_COLUMNS = ("parsed", "schema_errors", "violations", "request_params", "logprobs")
_SAMPLE_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("sample_id", pa.string()), ("position", pa.int32()),
    ("slice", pa.string()), ("fields", pa.string()), ("messages", pa.string()), ("target", pa.string()),
])


def now() -> datetime:
    """UTC now without tzinfo: DuckDB TIMESTAMP columns hold naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


class Store:
    """An open evalkit DuckDB file, migrated to the current schema."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only and not self.path.is_file():
            raise StoreError(f"no evalkit store at {self.path} (run a suite first, or pass --db PATH)")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower():
                pid = re.search(r"PID (\d+)", text)
                holder = f" (PID {pid.group(1)})" if pid else ""
                raise StoreError(f"{self.path} is in use by another process{holder}; wait for it to "
                                 "finish or use another --db file") from None
            raise StoreError(f"{self.path} cannot be opened as a DuckDB database: "
                             f"{text.splitlines()[0]}") from None
        except duckdb.Error as exc:
            raise StoreError(f"{self.path} cannot be opened: {str(exc).splitlines()[0]}") from None
        self._check_and_migrate(read_only)

    # -- schema -------------------------------------------------------------------------------
    def _tables(self) -> set[str]:
        return {r[0] for r in self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}

    def schema_version(self) -> int:
        if "schema_migrations" not in self._tables():
            return 0
        row = self.one("SELECT max(version) FROM schema_migrations")
        return int(row[0] or 0) if row else 0

    def _check_and_migrate(self, read_only: bool) -> None:
        tables = self._tables()
        if tables and "schema_migrations" not in tables:
            raise StoreError(f"{self.path} is a DuckDB file but not an evalkit store (tables: "
                             f"{sorted(tables)[:6]}); use another --db file")
        current = self.schema_version()
        latest = MIGRATIONS[-1][0]
        if current > latest:
            raise StoreError(f"{self.path} was written by a newer evalkit (schema {current} > {latest}); "
                             "upgrade evalkit")
        if current == latest:
            return
        if read_only:
            raise StoreError(f"{self.path} needs a schema upgrade ({current} → {latest}); open it once "
                             "with a writing command such as 'evalkit run'")
        self.sql("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                         "name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)")
        for version, name, sql in MIGRATIONS:
            if version <= current:
                continue
            self.sql("BEGIN TRANSACTION")
            try:
                self.sql(sql)
                self.sql("INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, name, now()])
                self.sql("COMMIT")
            except duckdb.Error as exc:
                self.sql("ROLLBACK")
                raise StoreError(f"migration {version} ({name}) failed on {self.path}: {exc}") from None

    def sql(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement and consume its result (DuckDB requires it before the next one)."""
        return self.con.execute(query, params).fetchall()

    def one(self, query: str, params: list[Any] | None = None) -> tuple[Any, ...] | None:
        """The first row of a query, or None (the whole result is consumed)."""
        rows = self.sql(query, params)
        return rows[0] if rows else None

    def dicts(self, query: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """A query's rows as dicts keyed by column name."""
        cur = self.con.execute(query, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------------------------
    def create_run(self, row: dict[str, Any]) -> None:
        cols = list(row)
        self.sql(f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                         [to_json(v) if isinstance(v, (dict, list)) else v for v in row.values()])

    def set_run_status(self, run_id: str, status: str, finished: bool = False) -> None:
        self.sql("UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
                         [status, now() if finished else None, run_id])

    def get_run(self, run_id: str) -> dict[str, Any]:
        rows = self.dicts("SELECT * FROM runs WHERE run_id = ?", [run_id])
        if not rows:
            recent = [r[0] for r in self.con.execute(
                "SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 3").fetchall()]
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
        rows = self.con.execute("SELECT run_id FROM runs WHERE starts_with(run_id, ?)", [ref]).fetchall()
        if len(rows) == 1:
            return str(rows[0][0])
        if len(rows) > 1:
            raise RunNotFoundError(f"run id prefix '{ref}' matches {len(rows)} runs; give more characters")
        self.get_run(ref)  # raises with a helpful message
        return ref

    def list_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        return self.dicts(
            "SELECT r.run_id, r.suite_name, r.status, r.created_at, r.n_samples, "
            "string_agg(m.model, ', ' ORDER BY m.model) AS models "
            "FROM runs r LEFT JOIN run_models m USING (run_id) "
            "GROUP BY ALL ORDER BY r.created_at DESC LIMIT ?", [limit])

    def upsert_run_model(self, row: dict[str, Any]) -> None:
        cols = list(row)
        values = [to_json(v) if isinstance(v, (dict, list)) else v for v in row.values()]
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in ("run_id", "model"))
        self.sql(f"INSERT INTO run_models ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                         f"ON CONFLICT (run_id, model) DO UPDATE SET {updates}", values)

    def run_models(self, run_id: str) -> list[dict[str, Any]]:
        return self.dicts("SELECT * FROM run_models WHERE run_id = ? ORDER BY model", [run_id])

    # -- samples and results ------------------------------------------------------------------
    def insert_samples(self, rows: list[dict[str, Any]]) -> None:
        table = pa.Table.from_pylist(rows, schema=_SAMPLE_SCHEMA)
        self.con.register("_evalkit_samples_batch", table)
        try:
            self.sql("INSERT INTO samples BY NAME SELECT * FROM _evalkit_samples_batch "
                             "ON CONFLICT DO NOTHING")
        finally:
            self.con.unregister("_evalkit_samples_batch")

    def insert_results(self, rows: list[dict[str, Any]]) -> int:
        """Insert a batch of result rows in one statement; returns how many were new."""
        if not rows:
            return 0
        table = pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
        self.con.register("_evalkit_results_batch", table)
        try:
            # DuckDB reports the rows an INSERT wrote; ON CONFLICT DO NOTHING leaves the skipped ones out.
            # (Counting the run's rows before and after scanned the whole run on every batch.)
            inserted = self.one("INSERT INTO results BY NAME SELECT * FROM _evalkit_results_batch "
                                "ON CONFLICT DO NOTHING")
            return int(inserted[0]) if inserted else 0
        finally:
            self.con.unregister("_evalkit_results_batch")

    def done_keys(self, run_id: str, model: str) -> set[tuple[str, int]]:
        """(sample_id, repeat) pairs already stored for a model of a run."""
        return {(r[0], int(r[1])) for r in self.con.execute(
            "SELECT sample_id, repeat FROM results WHERE run_id = ? AND model = ?", [run_id, model]).fetchall()}

    def cached_responses(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The newest successful stored answer for each cache key that has one."""
        key_list = sorted(set(keys))
        if not key_list:
            return {}
        rows = self.dicts(
            "SELECT cache_key, output, finish_reason, prompt_tokens, completion_tokens, latency_ms, "
            "ttft_ms, resolved_model, logprobs, cost_usd, request_params FROM results "
            "WHERE status = 'ok' AND cache_key IN (SELECT unnest(?::VARCHAR[])) "
            "QUALIFY row_number() OVER (PARTITION BY cache_key ORDER BY created_at DESC) = 1", [key_list])
        return {r["cache_key"]: r for r in rows}

    def results_frame(self, run_id: str, columns: str = "*") -> Any:
        """A run's result rows as a pandas DataFrame (one row per model × sample × repeat)."""
        return self.con.execute(
            f"SELECT {columns} FROM results r LEFT JOIN samples s USING (run_id, sample_id) "
            "WHERE r.run_id = ? ORDER BY r.model, s.position, r.repeat", [run_id]).df()

    # -- metrics ------------------------------------------------------------------------------
    def replace_metrics(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        table = pa.Table.from_pylist(rows, schema=pa.schema([
            ("run_id", pa.string()), ("model", pa.string()), ("metric", pa.string()),
            ("value", pa.float64()), ("ci_low", pa.float64()), ("ci_high", pa.float64()),
            ("n", pa.int64())]))
        self.sql("BEGIN TRANSACTION")
        try:
            self.sql("DELETE FROM metrics WHERE run_id = ?", [run_id])
            self.con.register("_evalkit_metrics_batch", table)
            self.sql("INSERT INTO metrics BY NAME SELECT * FROM _evalkit_metrics_batch")
            self.con.unregister("_evalkit_metrics_batch")
            self.sql("COMMIT")
        except duckdb.Error:
            self.sql("ROLLBACK")
            raise

    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        return self.dicts("SELECT model, metric, value, ci_low, ci_high, n FROM metrics "
                          "WHERE run_id = ? ORDER BY model, metric", [run_id])
