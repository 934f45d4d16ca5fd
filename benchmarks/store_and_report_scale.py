"""Scale check of the store, the metrics and the report on a synthetic run (no model calls).

Builds a run of N samples × 2 models directly in DuckDB (batched Arrow inserts), computes the metrics
with bootstrap CIs, then renders the HTML report, and prints each step's wall time and the report's
size. Usage: python benchmarks/store_and_report_scale.py [--samples 100000] [--db PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from evalkit.metrics import compute_run_metrics
from evalkit.report import write_report
from evalkit.store import Store
from evalkit.store.db import now


def build(store: Store, run_id: str, n: int) -> float:
    rng = np.random.default_rng(0)
    config = {"gates": {"baseline": "frontier", "candidate": "tuned",
                        "rules": [{"metric": "accuracy", "max_drop": 0.01}]}, "run": {"seed": 0}}
    store.create_run({"run_id": run_id, "suite_name": "scale", "suite_hash": "h", "status": "complete",
                      "created_at": now(), "n_samples": n, "repeats": 1, "config": config})
    store.insert_samples([{"run_id": run_id, "sample_id": f"s{i:06d}", "position": i, "slice": f"slice{i % 5}",
                           "target": '"spam"'} for i in range(n)])
    started = time.perf_counter()
    created = now()
    for model, rate in (("frontier", 0.9), ("tuned", 0.88)):
        store.upsert_run_model({"run_id": run_id, "model": model, "provider": "vllm", "status": "complete",
                                "config": json.dumps({"model": model})})
        conf = rng.random(n)
        correct = rng.random(n) < rate
        latency = rng.gamma(4, 50, n)
        for start in range(0, n, 50_000):
            stop = min(n, start + 50_000)
            store.insert_results([{
                "run_id": run_id, "model": model, "sample_id": f"s{i:06d}", "repeat": 0, "status": "ok",
                "output": "spam" if correct[i] else "ham", "quality": float(correct[i]), "correct": bool(correct[i]),
                "schema_valid": True, "confidence": float(conf[i]), "latency_ms": float(latency[i]),
                "cost_usd": 0.0004, "attempts": 1, "cache_hit": False, "cache_key": f"{model}{i}",
                "created_at": created} for i in range(start, stop)])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    db = Path(args.db) if args.db else folder / "scale.duckdb"
    with Store(db) as store:
        insert_s = build(store, "scale-run", args.samples)
        t = time.perf_counter()
        compute_run_metrics(store, "scale-run", seed=0, resamples=1000)
        metrics_s = time.perf_counter() - t
    with Store(db, read_only=True) as store:
        t = time.perf_counter()
        path = write_report(store, "scale-run", folder / "scale.html")
        report_s = time.perf_counter() - t
    rows = 2 * args.samples
    print(f"rows: {rows:,}")
    print(f"insert results (Arrow batches, incl. building the dicts): {insert_s:.2f} s ({rows / insert_s:,.0f} rows/s)")
    print(f"metrics with 1000-resample bootstrap CIs, 2 models: {metrics_s:.2f} s")
    print(f"report (paired bootstrap 2000 resamples, charts, render): {report_s:.2f} s, "
          f"{path.stat().st_size / 1024 / 1024:.2f} MiB")


if __name__ == "__main__":
    main()
