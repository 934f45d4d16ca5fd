"""Scale check of the store, the metrics and the report, and of rerunning an unchanged suite.

- ``insert``: 1,000,000 result rows (``--insert-rows``) through ``Store.insert_results`` — the runner's
  path: row dicts → one Arrow table per batch → one INSERT; the time includes building the dicts.
- ``metrics`` / ``report``: a synthetic run of N samples × 2 models (``--samples``, default 100k):
  metrics with 1,000-resample bootstrap CIs, then the HTML report (paired bootstrap, 2,000 resamples).
- ``rerun``: ``evalkit run`` of an unchanged 10,000-sample suite (``--rerun-samples``) against
  ``loopback_server.py``: the first run fills the store, the timed second run must make 0 model calls.

Prints each step's wall time and CPU time. Usage:
    python benchmarks/store_and_report_scale.py [--samples 100000] [--insert-rows 1000000] [--only insert,metrics]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from evalkit.analysis.metrics import compute_run_metrics
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


def insert_many(db: Path, rows: int) -> float:
    """Insert ``rows`` result rows in runner-sized batches of 50,000; returns seconds."""
    with Store(db) as store:
        store.create_run({"run_id": "insert-run", "suite_name": "scale", "suite_hash": "h", "status": "complete",
                          "created_at": now(), "n_samples": rows, "repeats": 1, "config": {}})
        rng = np.random.default_rng(1)
        latency, conf = rng.gamma(4, 50, rows), rng.random(rows)
        created = now()
        started = time.perf_counter()
        for start in range(0, rows, 50_000):
            stop = min(rows, start + 50_000)
            store.insert_results([{
                "run_id": "insert-run", "model": "m", "sample_id": f"s{i:07d}", "repeat": 0, "status": "ok",
                "output": "spam", "parsed": '"spam"', "quality": 1.0, "correct": True, "schema_valid": True,
                "confidence": float(conf[i]), "latency_ms": float(latency[i]), "prompt_tokens": 20,
                "completion_tokens": 1, "cost_usd": 0.0004, "finish_reason": "stop", "resolved_model": "m",
                "request_params": '{"temperature": 0, "max_tokens": 4}', "attempts": 1, "cache_hit": False,
                "cache_key": f"k{i}", "created_at": created} for i in range(start, stop)])
        elapsed = time.perf_counter() - started
        assert store.one("SELECT count(*) FROM results WHERE run_id = 'insert-run'")[0] == rows
    return elapsed


def rerun(folder: Path, samples: int) -> tuple[float, float, int, int]:
    """(wall s, CPU s, model calls, stored rows) of the second run of an unchanged suite."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import harness_overhead as bench

    inputs = bench.write_inputs(folder, samples, 64)
    suite = inputs["suite"]
    suite.write_text(suite.read_text().replace("cache: false", "cache: true"))
    server = bench.Server(0.0)
    try:
        env = {**os.environ, "BENCH_BASE": server.base, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        evalkit = str(Path(sys.executable).parent / "evalkit")
        db = folder / "rerun.duckdb"
        cmd = [evalkit, "run", str(suite), "--model", "vllm", "--db", str(db), "--quiet"]
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        server.reset()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        calls = server.count()
    finally:
        server.close()
    with Store(db, read_only=True) as store:
        run_id = store.resolve_run_id("latest")
        hits = store.one("SELECT count(*) FROM results WHERE run_id = ? AND cache_hit", [run_id])[0]
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, calls, hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--insert-rows", type=int, default=1_000_000)
    parser.add_argument("--rerun-samples", type=int, default=10_000)
    parser.add_argument("--only", default="insert,metrics,report,rerun")
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    steps = set(args.only.split(","))
    folder = Path(tempfile.mkdtemp())
    db = Path(args.db) if args.db else folder / "scale.duckdb"
    cpu = time.process_time
    if "insert" in steps:
        t = cpu()
        insert_s = insert_many(folder / "insert.duckdb", args.insert_rows)
        print(f"insert {args.insert_rows:,} result rows (Arrow batches of 50k, incl. building the dicts): "
              f"{insert_s:.2f} s wall, {cpu() - t:.2f} s CPU ({args.insert_rows / insert_s:,.0f} rows/s)", flush=True)
    if steps & {"metrics", "report"}:
        with Store(db) as store:
            build(store, "scale-run", args.samples)
            t, c = time.perf_counter(), cpu()
            compute_run_metrics(store, "scale-run", seed=0, resamples=1000)
            print(f"metrics with 1000-resample bootstrap CIs, {args.samples:,} samples × 2 models: "
                  f"{time.perf_counter() - t:.2f} s wall, {cpu() - c:.2f} s CPU", flush=True)
        if "report" in steps:
            with Store(db, read_only=True) as store:
                t, c = time.perf_counter(), cpu()
                path = write_report(store, "scale-run", folder / "scale.html")
                print(f"report (paired bootstrap 2000 resamples, charts, render), {args.samples:,} samples: "
                      f"{time.perf_counter() - t:.2f} s wall, {cpu() - c:.2f} s CPU, "
                      f"{path.stat().st_size / 1024 / 1024:.2f} MiB", flush=True)
    if "rerun" in steps:
        wall, cpu_s, calls, hits = rerun(folder, args.rerun_samples)
        print(f"rerun of an unchanged {args.rerun_samples:,}-sample suite: {wall:.2f} s wall, {cpu_s:.2f} s CPU, "
              f"{calls} model calls, {hits:,} answers from the cache", flush=True)


if __name__ == "__main__":
    main()
