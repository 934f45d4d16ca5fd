"""Open-loop load against the dev server in its own process: does ``evalkit load`` send at the asked rate,
and does its sweep find the knee of a server whose latency grows with load?

Two parts, each an ``evalkit load --json`` subprocess against ``python -m evalkit.testing`` (its own
process, so its CPU is not the client's):

1. **pacing**: a fixed-latency server (``--latency-ms``), every rate of ``--rates``, for each client
   (``vllm``: evalkit's aiohttp client; ``litellm``: LiteLLM's ``hosted_vllm`` path) and arrival
   process — asked vs achieved rate, queueing delay, latency over the scripted one;
2. **goodput**: a server at ``--latency-ms`` plus ``--per-inflight-ms`` per other request in flight,
   swept with ``--slo-p99-ms`` (every rate, ``--all-rates``).

    python benchmarks/open_loop.py --rates 10,50,100,200 --duration-s 5 --json benchmarks/results/open_loop.json
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
from pathlib import Path
from typing import Any

SUITE = """
evalkit: 1
name: open-loop-bench
dataset: {{path: data.jsonl}}
prompt: {{system: "Answer spam or ham.", user: "Subject: {{{{ subject }}}}"}}
output: {{type: label, labels: [ham, spam]}}
target: {{field: label}}
models:
  vllm:
    provider: vllm
    api_base: {base}
    base_model: bench
    params: {{max_tokens: 2}}
    stream: false
  litellm:
    provider: litellm
    model: hosted_vllm/bench
    api_base: {base}
    params: {{max_tokens: 2}}
    stream: false
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(latency_ms: float, per_inflight_ms: float) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "evalkit.testing", "--port", str(port), "--latency-ms",
                             str(latency_ms), "--latency-per-inflight-ms", str(per_inflight_ms)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def sweep(folder: Path, model: str, rates: str, slo: float, extra: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "evalkit.cli", "load", str(folder / "suite.yaml"), "--model", model, "--rates", rates,
           "--slo-p99-ms", str(slo), "--db", str(folder / f"load-{time.time_ns()}.duckdb"), "--json", "--all-rates",
           *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[1])] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))})
    return dict(json.loads(out.stdout)["sweeps"][0])


def write_suite(folder: Path, base: str) -> None:
    (folder / "suite.yaml").write_text(SUITE.format(base=base), encoding="utf-8")
    rows = [{"id": f"e{i}", "subject": f"message {i}", "label": "spam"} for i in range(200)]
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def fmt(v: Any, spec: str = ".1f") -> str:
    return "—" if v is None else format(v, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="10,50,100,200")
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--clients", default="vllm,litellm")
    parser.add_argument("--arrivals", default="constant,poisson")
    parser.add_argument("--goodput-rates", default="5,10,20,40,80")
    parser.add_argument("--per-inflight-ms", type=float, default=10.0)
    parser.add_argument("--slo-p99-ms", type=float, default=100.0)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    results: dict[str, Any] = {"args": vars(args), "pacing": [], "goodput": None}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server, base = start_server(args.latency_ms, 0.0)
        try:
            write_suite(folder, base)
            print(f"pacing: server {args.latency_ms:g} ms fixed, {args.duration_s:g} s per rate")
            print(f"{'client':<8} {'arrival':<9} {'asked':>6} {'achieved':>9} {'sent/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
                  f"{'queue p50':>9} {'queue p99':>9} {'queue max':>9} {'errors':>6}")
            for client in args.clients.split(","):
                for arrival in args.arrivals.split(","):
                    s = sweep(folder, client, args.rates, 1e9, ["--duration-s", str(args.duration_s), "--arrival", arrival])
                    for p in s["points"]:
                        results["pacing"].append({"client": client, "arrival": arrival, **p})
                        print(f"{client:<8} {arrival:<9} {p['rate_per_s']:>6g} {fmt(p['achieved_rps'], '.2f'):>9} "
                              f"{fmt(p['send_rate_rps'], '.2f'):>8} {fmt(p['latency_ms_p50']):>7} {fmt(p['latency_ms_p99']):>7} "
                              f"{fmt(p['queue_ms_p50'], '.2f'):>9} {fmt(p['queue_ms_p99'], '.2f'):>9} "
                              f"{fmt(p['queue_ms_max'], '.1f'):>9} {p['n_errors']:>6}")
        finally:
            server.terminate()
            server.wait(10)
        server, base = start_server(args.latency_ms, args.per_inflight_ms)
        try:
            write_suite(folder, base)
            s = sweep(folder, "vllm", args.goodput_rates, args.slo_p99_ms,
                      ["--duration-s", str(args.duration_s), "--arrival", "poisson"])
            results["goodput"] = s
            print(f"\ngoodput: server {args.latency_ms:g} ms + {args.per_inflight_ms:g} ms per other request in "
                  f"flight, poisson, SLO p99 ≤ {args.slo_p99_ms:g} ms from arrival")
            for p in s["points"]:
                print(f"  {p['rate_per_s']:>5g}/s: achieved {fmt(p['achieved_rps'], '.2f')}/s, p50 {fmt(p['latency_ms_p50'])} "
                      f"p95 {fmt(p['latency_ms_p95'])} p99 {fmt(p['latency_ms_p99'])} ms, peak in flight "
                      f"{p['peak_in_flight']}, {'met' if p['meets_slo'] else 'missed'}")
            print(f"  goodput: {s['goodput_rps']} requests/s")
        finally:
            server.terminate()
            server.wait(10)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
