"""Runs as Parquet folders: export one run, import it elsewhere, or merge sharded runs into one.

An export is a folder with one Parquet file per table (``runs``, ``run_models``, ``samples``,
``results``, ``metrics``; only the run's rows; the run-level tables; the load tables of its paced phases
and of its suite's ``evalkit load`` sweeps) and ``manifest.json`` (format, evalkit version, schema
version, run id, row counts). Parquet keeps the column types, and DuckDB reads it back directly.

Importing several folders merges them into one new run when they are parts of the same suite run
(``evalkit run --shard I/N`` on several machines or replicas): same suite hash, same dataset hash,
same models, and no sample in two parts. The merged run's metrics are then recomputed from the merged
rows with the suite's seed (by the caller: analysis comes after the store), so they equal those of one
unsharded run over the same answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from evalkit.errors import ConfigError, StoreError
from evalkit.redact import redact_text
from evalkit.store.db import Store, now, to_json
from evalkit.store.migrations import JSON_TARGETS_SQL, TARGET_LABELS_SQL
from evalkit.store.rows import new_run_id
from evalkit.version import __version__

FORMAT = "evalkit.parquet/1"
TABLES = ("runs", "run_models", "samples", "results", "metrics")
# Copied with a single run as they are; a merge of shards leaves them out (they describe the whole run:
# rerun `evalkit retention` / `evalkit route` on the merged run).
RUN_LEVEL_TABLES = ("retention", "retention_samples", "routing_policies", "routing_recommendations")
# Open-loop load: the run's paced phases (run.load) and the `evalkit load` sweeps of its suite's models, whose
# goodput its cost figures rest on. Sweeps keep their id (one already in the target store is not copied
# twice); a paced phase follows its run's id.
LOAD_TABLES = ("load_runs", "load_points", "load_requests")


def _redacted(table: pa.Table) -> pa.Table:
    """The table with :func:`evalkit.redact.redact_text` applied to its text columns (a store written
    before redaction covered everything may still hold a key; it does not leave in an export)."""
    for i, column in enumerate(table.schema):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            values = [redact_text(v) if isinstance(v, str) else v for v in table.column(i).to_pylist()]
            table = table.set_column(i, column, pa.array(values, type=column.type))
    return table


def export_run(store: Store, run_id: str, folder: str | Path) -> dict[str, Any]:
    """Write ``run_id``'s rows of every table to ``folder``; returns the manifest."""
    store.get_run(run_id)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for table in TABLES + RUN_LEVEL_TABLES:
        arrow = _redacted(store.arrow(f"SELECT * FROM {table} WHERE run_id = ?", [run_id]))
        pq.write_table(arrow, out / f"{table}.parquet")
        counts[table] = arrow.num_rows
    run = store.get_run(run_id)
    ids = [r[0] for r in store.sql(
        "SELECT load_id FROM load_runs WHERE run_id = ? OR (kind = 'sweep' AND suite_name = ? AND model IN "
        "(SELECT model FROM run_models WHERE run_id = ?)) ORDER BY load_id", [run_id, run["suite_name"], run_id])]
    for table in LOAD_TABLES:
        arrow = _redacted(store.arrow(f"SELECT * FROM {table} WHERE load_id IN (SELECT unnest(?::VARCHAR[]))",
                                      [ids]))
        pq.write_table(arrow, out / f"{table}.parquet")
        counts[table] = arrow.num_rows
    manifest = {"format": FORMAT, "evalkit_version": __version__, "schema_version": store.schema_version(),
                "run_id": run_id, "rows": counts, "exported_at": now().isoformat()}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def _manifest(folder: Path, store: Store) -> dict[str, Any]:
    path = folder / "manifest.json"
    if not path.is_file():
        raise ConfigError(f"{folder} is not an evalkit Parquet export (no manifest.json); write one with "
                          "'evalkit export parquet RUN -o FOLDER'")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise ConfigError(f"{path}: format {manifest.get('format')!r} is not {FORMAT!r}")
    if manifest.get("schema_version", 0) > store.schema_version():
        raise StoreError(f"{folder} was exported by a newer evalkit (schema {manifest['schema_version']}); "
                         "upgrade evalkit")
    for table in TABLES:
        if not (folder / f"{table}.parquet").is_file():
            raise ConfigError(f"{folder}: {table}.parquet is missing")
    checked: dict[str, Any] = manifest
    return checked


def _read(store: Store, folder: Path, table: str) -> list[dict[str, Any]]:
    return store.dicts("SELECT * FROM read_parquet(?)", [str(folder / f"{table}.parquet")])


@dataclass(frozen=True)
class ParquetImport:
    """The run an import wrote; ``merged``: several shards became one run, whose metrics are still to compute
    (:func:`evalkit.analysis.metrics.recompute_run_metrics`) — one export keeps its own."""

    run_id: str
    merged: bool


def import_runs(store: Store, folders: list[str | Path], run_id: str | None = None) -> ParquetImport:
    """Import one exported run (under its own id, or ``run_id``), or merge several shards into one new run.

    Nothing is written when a check fails.
    """

    paths = [Path(f) for f in folders]
    if not paths:
        raise ConfigError("name at least one exported folder")
    manifests = [_manifest(p, store) for p in paths]
    runs = [_read(store, p, "runs")[0] for p in paths]
    if len(paths) == 1:
        target = run_id or runs[0]["run_id"]
    else:
        _check_mergeable(paths, runs, [_read(store, p, "run_models") for p in paths])
        target = run_id or new_run_id()
    if store.has_run(target):
        raise StoreError(f"{store.path} already has a run '{target}'; pass --run-id NEW_ID to import it under "
                         "another id")
    sources = [str(p / "{table}.parquet") for p in paths]

    def files(table: str) -> list[str]:
        return [s.format(table=table) for s in sources]

    with store.transaction():
        run_row = _merged_run(runs, target, manifests)
        store.create_run(run_row)
        for table in ("samples", "results"):
            # One set-based statement per table (never row by row); the run id is rewritten on the way in.
            store.sql(f"INSERT INTO {table} BY NAME SELECT * REPLACE (?::VARCHAR AS run_id) "
                      "FROM read_parquet(?::VARCHAR[])", [target, files(table)])
        for upgrade in (JSON_TARGETS_SQL, TARGET_LABELS_SQL):  # an export written before schema 8
            store.sql(upgrade.format(and_run=" AND samples.run_id = ?"), [target])
        _insert_models(store, target, [_read(store, p, "run_models") for p in paths])
        if len(paths) == 1:
            for table in ("metrics",) + RUN_LEVEL_TABLES:
                if (paths[0] / f"{table}.parquet").is_file():  # exports of older versions lack the newer tables
                    store.sql(f"INSERT INTO {table} BY NAME SELECT * REPLACE (?::VARCHAR AS run_id) "
                              "FROM read_parquet(?)", [target, files(table)[0]])
        for path in paths:
            _import_load(store, path, target)
    return ParquetImport(target, merged=len(paths) > 1)


def _import_load(store: Store, folder: Path, target: str) -> None:
    """Copy an export's load tables (older exports have none): a paced phase under the target run (its id
    renamed when the run's is), a sweep unless the store already has it."""
    if not all((folder / f"{t}.parquet").is_file() for t in LOAD_TABLES):
        return
    existing = {r[0] for r in store.sql("SELECT load_id FROM load_runs")}
    old_ids, new_ids = [], []
    for row in _read(store, folder, "load_runs"):
        old = new = str(row["load_id"])
        if row["kind"] == "run" and row["run_id"] and row["run_id"] != target:
            source = str(row["run_id"])
            new = target + old[len(source):] if old.startswith(source) else f"{old}@{target}"
        if new not in existing:
            old_ids.append(old)
            new_ids.append(new)
    if not old_ids:
        return
    mapping = "(SELECT unnest(?::VARCHAR[]) AS old_id, unnest(?::VARCHAR[]) AS new_id)"
    store.sql(f"INSERT INTO load_runs BY NAME SELECT p.* REPLACE (m.new_id AS load_id, CASE WHEN p.kind = 'run' "
              f"THEN ?::VARCHAR ELSE p.run_id END AS run_id) FROM read_parquet(?) p JOIN {mapping} m "
              "ON p.load_id = m.old_id", [target, str(folder / "load_runs.parquet"), old_ids, new_ids])
    for table in ("load_points", "load_requests"):
        store.sql(f"INSERT INTO {table} BY NAME SELECT p.* REPLACE (m.new_id AS load_id) FROM read_parquet(?) p "
                  f"JOIN {mapping} m ON p.load_id = m.old_id", [str(folder / f"{table}.parquet"), old_ids, new_ids])


def _check_mergeable(paths: list[Path], runs: list[dict[str, Any]], models: list[list[dict[str, Any]]]) -> None:
    first = runs[0]
    for path, run, mods in zip(paths[1:], runs[1:], models[1:]):
        for key in ("suite_hash", "dataset_hash", "repeats"):
            if run[key] != first[key]:
                raise ConfigError(f"{path} is not a part of the same run as {paths[0]}: {key} differs "
                                  f"({run[key]!r} vs {first[key]!r})")
        if sorted(m["model"] for m in mods) != sorted(m["model"] for m in models[0]):
            raise ConfigError(f"{path} has models {sorted(m['model'] for m in mods)}, {paths[0]} has "
                              f"{sorted(m['model'] for m in models[0])}: merge parts that ran the same models")
    import duckdb

    con = duckdb.connect()
    try:
        dup = con.execute("SELECT sample_id, count(*) FROM read_parquet(?::VARCHAR[]) GROUP BY sample_id "
                          "HAVING count(*) > 1 LIMIT 1", [[str(p / "samples.parquet") for p in paths]]).fetchone()
    finally:
        con.close()
    if dup:
        raise ConfigError(f"sample '{dup[0]}' is in {dup[1]} of the parts; merge parts of one --shard split "
                          "(each sample in exactly one part)")


def _merged_run(runs: list[dict[str, Any]], target: str, manifests: list[dict[str, Any]]) -> dict[str, Any]:
    row = dict(runs[0])
    row["run_id"] = target
    if len(runs) > 1:
        row["n_samples"] = sum(int(r["n_samples"] or 0) for r in runs)
        row["status"] = "complete" if all(r["status"] == "complete" for r in runs) else "incomplete"
        row["created_at"] = min(r["created_at"] for r in runs)
        finished = [r["finished_at"] for r in runs]
        row["finished_at"] = None if any(f is None for f in finished) else max(finished)
        row["argv"] = to_json({"merged_from": [m["run_id"] for m in manifests],
                               "argv": [json.loads(r["argv"]) if r["argv"] else None for r in runs]})
    return row


def _insert_models(store: Store, target: str, parts: list[list[dict[str, Any]]]) -> None:
    by_model: dict[str, list[dict[str, Any]]] = {}
    for part in parts:
        for m in part:
            by_model.setdefault(m["model"], []).append(m)
    for rows in by_model.values():
        row = dict(rows[0], run_id=target)
        if len(rows) > 1:
            row["status"] = "complete" if all(r["status"] == "complete" for r in rows) else rows[0]["status"]
            starts = [r["started_at"] for r in rows if r["started_at"] is not None]
            ends = [r["finished_at"] for r in rows]
            row["started_at"] = min(starts) if starts else None
            row["finished_at"] = None if any(e is None for e in ends) else max(ends)
            row["wall_s"] = sum(float(r["wall_s"] or 0.0) for r in rows)  # replica-seconds across the parts
            row["n_calls"] = sum(int(r["n_calls"] or 0) for r in rows)
            errors = [r["error"] for r in rows if r["error"]]
            row["error"] = "; ".join(errors) if errors else None
        store.upsert_run_model(row)
