"""The benchmark scripts run end to end at a tiny size (a smoke run: statuses and counts, no timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
def test_harness_overhead_smoke(tmp_path, cli_env):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(BENCH / "harness_overhead.py"), "--requests", "40", "--concurrency", "8",
                           "--latency-ms", "5", "--only", "aiohttp,evalkit-vllm", "--json", str(out),
                           "--workdir", str(tmp_path / "work")], capture_output=True, text=True, env=cli_env,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())["results"]
    assert [(r["config"], r["status"], r["requests_seen"]) for r in results] == [
        ("aiohttp", "ok", 40), ("evalkit-vllm", "ok", 40)]
    assert all(r["cpu_s"] > 0 and r["wall_s"] > 0 for r in results)
    assert "× aiohttp" in proc.stdout


@pytest.mark.slow
def test_store_and_report_scale_smoke(cli_env):
    proc = subprocess.run([sys.executable, str(BENCH / "store_and_report_scale.py"), "--samples", "500",
                           "--insert-rows", "2000", "--rerun-samples", "50"], capture_output=True, text=True,
                          env=cli_env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "insert 2,000 result rows" in proc.stdout and "MiB" in proc.stdout
    assert "0 model calls, 50 answers from the cache" in proc.stdout


@pytest.mark.slow
def test_open_loop_smoke(tmp_path, cli_env):
    out = tmp_path / "open_loop.json"
    proc = subprocess.run([sys.executable, str(BENCH / "open_loop.py"), "--rates", "20", "--duration-s", "1",
                           "--clients", "vllm", "--arrivals", "constant", "--goodput-rates", "5,10", "--json", str(out)],
                          capture_output=True, text=True, env=cli_env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    assert [(p["client"], p["rate_per_s"], p["n_sent"], p["n_errors"]) for p in results["pacing"]] == [("vllm", 20.0, 20, 0)]
    assert [p["rate_per_s"] for p in results["goodput"]["points"]] == [5.0, 10.0]
    assert "goodput:" in proc.stdout


def test_latency_fidelity_smoke(tmp_path, cli_env):
    out = tmp_path / "latency.json"
    proc = subprocess.run([sys.executable, str(BENCH / "latency_fidelity.py"), "--requests", "40", "--concurrency", "4",
                           "--latency-ms", "5", "--no-check", "--json", str(out), "--workdir", str(tmp_path / "work")],
                          capture_output=True, text=True, env=cli_env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())["results"]
    assert sorted((r["pair"], r["model"], r["ok"], r["errors"]) for r in results) == [
        ("lean+lean", "lean0", 40, 0), ("lean+lean", "lean1", 40, 0),
        ("litellm+lean", "lean1", 40, 0), ("litellm+lean", "litellm0", 40, 0)]
    assert all(r["lag_p95"] is not None and r["cold_start_ms"] is not None for r in results)
    assert "bound (p50/p95)" in proc.stdout
