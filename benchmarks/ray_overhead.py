"""What ``evalkit run --ray`` costs against one process, on one node: the same prompts, the same server.

Starts ``benchmarks/loopback_server.py`` (fixed latency) and a local Ray cluster on 127.0.0.1 in this
process (the run connects to it by address, as to an existing cluster: Ray's own start-up is not in the
run's wall time; it is printed apart), then runs, each as a separate ``evalkit run`` process over
``--requests`` prompts with ``--concurrency`` requests in flight in all:

- ``single``       ``evalkit run`` (one process);
- ``ray-1``        ``evalkit run --ray ADDRESS`` with one shard (``concurrency`` in flight);
- ``ray-2``        two shards with half the concurrency each (the same total in flight).

Every configuration must store every prompt (the server counts what it answered). The overhead is the
Ray configuration's wall time over the single process's.

    python benchmarks/ray_overhead.py                                   # 10,000 prompts, c=64, 200 ms
    python benchmarks/ray_overhead.py --requests 400 --latency-ms 20    # a quick smoke
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness_overhead import Server, _stored_rows, machine, write_inputs  # noqa: E402

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before Ray is imported: loopback only


def ray_suite(single: Path, shards: int, concurrency: int) -> Path:
    """The benchmark suite with ``run.ray`` and the per-shard concurrency."""
    text = single.read_text(encoding="utf-8")
    run_line = next(line for line in text.splitlines() if line.startswith("run: {"))
    inner = run_line.removeprefix("run: {").removesuffix("}")
    inner = ", ".join(part if not part.strip().startswith("concurrency:") else f"concurrency: {concurrency}"
                      for part in inner.split(", "))
    path = single.with_name(f"suite-ray-{shards}.yaml")
    path.write_text(text.replace(run_line, f"run: {{{inner}, ray: {{shards: {shards}, num_cpus: 0.5}}}}"),
                    encoding="utf-8")
    return path


def run_one(name: str, argv: list[str], env: dict[str, str], server: Server, requests: int, db: Path,
            timeout: float) -> dict[str, object]:
    server.reset()
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    seen = server.count()
    stored = _stored_rows(db) if proc.returncode == 0 else 0
    ok = proc.returncode == 0 and seen == requests and stored == requests
    return {"config": name, "status": "ok" if ok else "failed", "wall_s": round(wall, 3), "requests_seen": seen,
            "stored": stored, "detail": "" if ok else (proc.stderr or proc.stdout).strip()[-400:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    import ray

    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    temp = tempfile.mkdtemp(prefix="bench-ray-cluster-", dir="/tmp")
    inputs = write_inputs(work, args.requests, args.concurrency)
    evalkit = shutil.which("evalkit", path=str(Path(sys.executable).parent)) or "evalkit"
    server = Server(args.latency_ms)
    started = time.perf_counter()
    ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    ray_start_s = time.perf_counter() - started
    address = ray.get_runtime_context().gcs_address
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "BENCH_BASE": server.base}
    results = []
    try:
        configs = [("single", inputs["suite"], []), ("ray-1", ray_suite(inputs["suite"], 1, args.concurrency),
                                                      ["--ray", address]),
                   ("ray-2", ray_suite(inputs["suite"], 2, args.concurrency // 2), ["--ray", address])]
        for name, suite, extra in configs:
            db = work / f"{name}.duckdb"
            argv = [evalkit, "run", str(suite), "--model", "vllm", "--db", str(db), "--no-cache", "--quiet", *extra]
            results.append(run_one(name, argv, env, server, args.requests, db, args.timeout))
            print(json.dumps(results[-1]), flush=True)
    finally:
        server.close()
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    base = results[0]["wall_s"]
    print(f"\n{args.requests:,} prompts at {args.latency_ms:g} ms, {args.concurrency} in flight in all "
          f"(ideal {args.requests / args.concurrency * args.latency_ms / 1000:.1f} s); Ray cluster start-up "
          f"{ray_start_s:.1f} s (not in the runs)")
    print(f"{'config':<8} {'status':<7} {'wall s':>8} {'vs single':>10}")
    for r in results:
        ratio = float(r["wall_s"]) / float(base) if base else float("nan")  # type: ignore[arg-type]
        print(f"{r['config']:<8} {r['status']:<7} {r['wall_s']:>8} {ratio:>9.3f}×")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "ray_version": ray.__version__,
                                         "ray_start_s": round(ray_start_s, 2), "requests": args.requests,
                                         "concurrency": args.concurrency, "latency_ms": args.latency_ms,
                                         "results": results}, indent=2))
    if any(r["status"] != "ok" for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
