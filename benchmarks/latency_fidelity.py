"""Does evalkit record the latency the server gave, or add its own? Two models side by side, scripted server.

Starts ``benchmarks/loopback_server.py`` in its own process: every answer takes exactly
``--latency-ms``. Then ``evalkit run`` (end to end, its own process) calls two models side by side, each
at ``--concurrency`` in flight, over ``--requests`` prompts each, for every pairing asked:

- ``lean+lean``      two models through evalkit's vLLM/OpenAI client (``backends/openai_http.py``)
- ``litellm+lean``   one through LiteLLM (``openai/...`` with ``api_base``), one through the lean client

For every model it reads the stored rows and reports recorded latency minus the scripted latency at
p50 / p95 / max, the p95 of ``client_lag_ms`` (the client's own delay: what its coroutine's clock measured
beyond the wire-stamped latency; an evalkit before the wire clock stored how late the loop ran), and the
cold start (the first warm-up request). Bounds (issue #14): the lean client ≤ +3 ms at p50 and ≤ +10 ms at p95,
LiteLLM ≤ +10 ms / +25 ms. Exits 1 when a bound is missed (``--no-check``: report only), 2 when a run
failed. Run it alone on the machine (``flock /work/heavy.lock ...`` on a shared one): other processes'
CPU lands in every client's latency.

    python benchmarks/latency_fidelity.py                          # 2000 requests per model, 16 in flight, 50 ms
    python benchmarks/latency_fidelity.py --requests 200 --pairs lean+lean --no-check
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BOUNDS = {"lean": (3.0, 10.0), "litellm": (10.0, 25.0)}
CLIENTS = {
    "lean": "    provider: vllm\n    api_base: ${BENCH_BASE}\n    base_model: bench\n",
    "litellm": "    provider: litellm\n    model: openai/bench\n    api_base: ${BENCH_BASE}\n",
}
SUITE = """\
evalkit: 1
name: latency-fidelity
dataset: {{path: {prompts}, id: id}}
prompt: {{user: "Subject: {{{{ subject }}}}"}}
output: {{type: label, labels: [ham, spam]}}
target: {{field: label}}
scoring: {{scorer: label_match}}
models:
{models}
run: {{concurrency: {concurrency}, timeout_s: 60, retries: 0, cache: false, bootstrap: 0, warmup: {warmup}}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(latency_ms: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "loopback_server.py"), "--port", str(port),
                             "--latency-ms", str(latency_ms)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the loopback server did not start")


def write_inputs(folder: Path, pair: list[str], requests: int, concurrency: int, warmup: int) -> Path:
    prompts = folder / "prompts.jsonl"
    with prompts.open("w", encoding="utf-8") as fh:
        for i in range(requests):
            fh.write(json.dumps({"id": f"p{i:06d}", "subject": f"message {i}", "label": "spam"}) + "\n")
    models = "".join(f"  {client}{i}:\n{CLIENTS[client]}    params: {{max_tokens: 4}}\n    stream: false\n"
                     for i, client in enumerate(pair))
    suite = folder / "suite.yaml"
    suite.write_text(SUITE.format(prompts=prompts, models=models, concurrency=concurrency, warmup=warmup))
    return suite


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def measure(db: Path, latency_ms: float) -> list[dict[str, Any]]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        columns = {r[0] for r in con.execute("DESCRIBE results").fetchall()}
        lag = "client_lag_ms" if "client_lag_ms" in columns else "NULL"
        rows = con.execute(f"SELECT model, latency_ms, {lag}, status FROM results").fetchall()
        models = {r[0] for r in con.execute("SELECT model FROM run_models").fetchall()}
        cold = {}
        if "cold_start_ms" in {r[0] for r in con.execute("DESCRIBE run_models").fetchall()}:
            cold = dict(con.execute("SELECT model, cold_start_ms FROM run_models").fetchall())
    finally:
        con.close()
    out = []
    for model in sorted(models):
        ok = [r for r in rows if r[0] == model and r[3] == "ok"]
        excess = [r[1] - latency_ms for r in ok]
        lags = [r[2] for r in ok if r[2] is not None]
        out.append({"model": model, "client": model.rstrip("0123456789"), "ok": len(ok),
                    "errors": sum(1 for r in rows if r[0] == model and r[3] != "ok"),
                    "excess_p50": percentile(excess, 50), "excess_p95": percentile(excess, 95),
                    "excess_max": max(excess) if excess else float("nan"),
                    "lag_p95": percentile(lags, 95) if lags else None, "cold_start_ms": cold.get(model)})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="prompts per model")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight per model")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the server's scripted latency")
    parser.add_argument("--warmup", type=int, default=4, help="run.warmup")
    parser.add_argument("--pairs", default="lean+lean,litellm+lean", help="comma-separated client pairs")
    parser.add_argument("--no-check", action="store_true", help="report only; never fail on the bounds")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="evalkit-latency-"))
    work.mkdir(parents=True, exist_ok=True)
    evalkit = [sys.executable, "-m", "evalkit.cli"]
    server, base = start_server(args.latency_ms)
    results: list[dict[str, Any]] = []
    failed = missed = False
    load = os.getloadavg()
    try:
        for pair_text in args.pairs.split(","):
            pair = pair_text.strip().split("+")
            folder = work / pair_text.replace("+", "-")
            folder.mkdir(exist_ok=True)
            suite = write_inputs(folder, pair, args.requests, args.concurrency, args.warmup)
            db = folder / "run.duckdb"
            db.unlink(missing_ok=True)
            env = {**os.environ, "BENCH_BASE": base, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
            proc = subprocess.run([*evalkit, "run", str(suite), "--db", str(db), "--quiet"], env=env,
                                  capture_output=True, text=True)
            if proc.returncode == 2 and "run.warmup: unknown key" in proc.stderr:  # an evalkit before warm-up
                suite.write_text(suite.read_text().replace(f", warmup: {args.warmup}", ""))
                db.unlink(missing_ok=True)
                proc = subprocess.run([*evalkit, "run", str(suite), "--db", str(db), "--quiet"], env=env,
                                      capture_output=True, text=True)
            if proc.returncode != 0:
                failed = True
                print(f"{pair_text}: evalkit run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
                continue
            for row in measure(db, args.latency_ms):
                p50, p95 = BOUNDS[row["client"]]
                row["pair"] = pair_text
                row["within_bounds"] = row["excess_p50"] <= p50 and row["excess_p95"] <= p95 and row["errors"] == 0
                missed = missed or not row["within_bounds"]
                results.append(row)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"scripted latency {args.latency_ms:g} ms · {args.requests} requests per model · "
          f"{args.concurrency} in flight each · {os.cpu_count()} CPUs · load average before "
          f"{load[0]:.1f} / after {os.getloadavg()[0]:.1f}")
    print(f"{'pair':<14} {'model':<9} {'ok':>5} {'err':>4} {'+p50 ms':>8} {'+p95 ms':>8} {'+max ms':>8} "
          f"{'lag p95':>8} {'cold ms':>8}  bound (p50/p95)")
    for r in results:
        lag = "—" if r["lag_p95"] is None else f"{r['lag_p95']:.2f}"
        cold = "—" if r["cold_start_ms"] is None else f"{r['cold_start_ms']:.1f}"
        bound = "+{:g}/+{:g} {}".format(*BOUNDS[r["client"]], "ok" if r["within_bounds"] else "MISSED")
        print(f"{r['pair']:<14} {r['model']:<9} {r['ok']:>5} {r['errors']:>4} {r['excess_p50']:>8.2f} "
              f"{r['excess_p95']:>8.2f} {r['excess_max']:>8.2f} {lag:>8} {cold:>8}  {bound}")
    if args.json:
        args.json.write_text(json.dumps({"latency_ms": args.latency_ms, "requests": args.requests,
                                         "concurrency": args.concurrency, "results": results}, indent=2))
    if failed:
        return 2
    return 1 if missed and not args.no_check else 0


if __name__ == "__main__":
    raise SystemExit(main())
