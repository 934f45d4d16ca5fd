"""How much the harness adds on top of the model server: evalkit beside the ceilings and the peers.

Starts ``benchmarks/loopback_server.py`` in its own process (fixed latency, unlimited concurrency) for
each ``--latency-ms`` setting, and runs every configuration as a separate process over the same
``--requests`` short prompts at ``--concurrency``:

- ``aiohttp``          the ceiling: a bare asyncio + aiohttp loop (``bare_clients.py``)
- ``litellm``          a bare ``litellm.acompletion`` loop: the floor of the LiteLLM path
- ``evalkit-vllm``     ``evalkit run`` end to end (render, call, score, store) via the vLLM/OpenAI client
- ``evalkit-litellm``  ``evalkit run`` end to end via the LiteLLM backend
- ``inspect``          inspect-ai, its OpenAI-compatible provider (``openai-api/...``)
- ``lm-eval``          lm-evaluation-harness, ``local-chat-completions``
- ``promptfoo``        promptfoo (npm), ``openai:chat`` with ``apiBaseUrl``

Each process's wall time includes its start-up (imports, reading the prompts, writing its results),
because that is what a user waits for. CPU is the user + system time of the process and everything
it waited for (``getrusage(RUSAGE_CHILDREN)`` deltas); the server's CPU is not in it. The server counts
the requests it answered: a configuration that did not send every request is marked, never hidden.
Peers run from ``--peers-python`` (a separate venv: inspect-ai needs ``openai>=3.4``, LiteLLM
``openai<3``) and ``--promptfoo``; a peer that is not installed is reported as such.

    python benchmarks/harness_overhead.py                       # 10,000 prompts, c=64, 200 and 10 ms
    python benchmarks/harness_overhead.py --requests 200 --latency-ms 10 --only aiohttp,evalkit-vllm
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONFIGS = ["aiohttp", "litellm", "evalkit-vllm", "evalkit-litellm", "inspect", "lm-eval", "promptfoo"]
SYSTEM = "Answer spam or ham."


@dataclass
class Result:
    config: str
    latency_ms: float
    status: str  # ok | incomplete | failed | not installed
    wall_s: float | None = None
    cpu_s: float | None = None
    requests_seen: int | None = None
    detail: str = ""


# -- inputs ------------------------------------------------------------------------------------------

def write_prompts(folder: Path, n: int) -> Path:
    path = folder / "prompts.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            spam = i % 2 == 0
            row = {"id": f"p{i:06d}", "subject": f"{'You won prize' if spam else 'Meeting notes'} #{i}",
                   "body": f"{'Claim your reward now' if spam else 'See the agenda for Tuesday'}, ref {i}.",
                   "label": "spam" if spam else "ham"}
            fh.write(json.dumps(row) + "\n")
    return path


SUITE = """\
evalkit: 1
name: harness-overhead
dataset: {{path: {prompts}, id: id}}
prompt:
  system: "{system}"
  user: "Subject: {{{{ subject }}}}\\n\\n{{{{ body }}}}"
output: {{type: label, labels: [ham, spam]}}
target: {{field: label}}
scoring: {{scorer: label_match}}
models:
  vllm:
    provider: vllm
    api_base: ${{BENCH_BASE}}
    base_model: bench
    params: {{temperature: 0, max_tokens: 4}}
    stream: false
  litellm:
    provider: litellm
    model: openai/bench
    api_base: ${{BENCH_BASE}}
    params: {{temperature: 0, max_tokens: 4}}
    stream: false
run: {{concurrency: {concurrency}, timeout_s: 120, retries: 0, cache: false, warmup: 0}}
"""

INSPECT_TASK = """\
import json

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser
from inspect_ai.scorer import match
from inspect_ai.solver import generate


@task
def bench():
    samples = []
    with open({prompts!r}, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            samples.append(Sample(id=row["id"], target=row["label"], input=[
                ChatMessageSystem(content={system!r}),
                ChatMessageUser(content=f"Subject: {{row['subject']}}\\n\\n{{row['body']}}")]))
    return Task(dataset=MemoryDataset(samples), solver=generate(), scorer=match())
"""

LM_EVAL_TASK = """\
task: bench_spam
dataset_path: json
dataset_kwargs:
  data_files:
    test: {prompts}
test_split: test
output_type: generate_until
doc_to_text: "Subject: {{{{subject}}}}\\n\\n{{{{body}}}}"
doc_to_target: label
generation_kwargs:
  until: []
  max_gen_toks: 4
  do_sample: false
  temperature: 0
metric_list:
  - metric: exact_match
"""


def write_inputs(folder: Path, n: int, concurrency: int) -> dict[str, Path]:
    prompts = write_prompts(folder, n)
    suite = folder / "suite.yaml"
    suite.write_text(SUITE.format(prompts=prompts, system=SYSTEM, concurrency=concurrency), encoding="utf-8")
    inspect_task = folder / "inspect_task.py"
    inspect_task.write_text(INSPECT_TASK.format(prompts=str(prompts), system=SYSTEM), encoding="utf-8")
    lm_dir = folder / "lm_eval_tasks"
    lm_dir.mkdir(exist_ok=True)
    (lm_dir / "bench_spam.yaml").write_text(LM_EVAL_TASK.format(prompts=prompts), encoding="utf-8")
    tests = folder / "promptfoo_tests.jsonl"
    with prompts.open(encoding="utf-8") as src, tests.open("w", encoding="utf-8") as dst:
        for line in src:
            row = json.loads(line)
            dst.write(json.dumps({"vars": {"subject": row["subject"], "body": row["body"]},
                                  "assert": [{"type": "equals", "value": row["label"]}]}) + "\n")
    return {"prompts": prompts, "suite": suite, "inspect_task": inspect_task, "lm_eval_tasks": lm_dir,
            "promptfoo_tests": tests}


def promptfoo_config(folder: Path, base: str, tests: Path) -> Path:
    prompt = json.dumps([{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": "Subject: {{subject}}\n\n{{body}}"}])
    config = {"description": "harness overhead", "prompts": [prompt],
              "providers": [{"id": "openai:chat:bench",
                             "config": {"apiBaseUrl": base, "apiKey": "no-key", "temperature": 0, "max_tokens": 4}}],
              "tests": f"file://{tests}"}
    path = folder / "promptfooconfig.json"
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    return path


# -- the server ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, method: str = "GET") -> dict:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


class Server:
    """``loopback_server.py`` in its own process."""

    def __init__(self, latency_ms: float) -> None:
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.base = self.root + "/v1"
        self.proc = subprocess.Popen([sys.executable, str(HERE / "loopback_server.py"), "--port", str(self.port),
                                      "--latency-ms", str(latency_ms)])
        deadline = time.monotonic() + 30
        while True:
            try:
                http_json(self.root + "/count")
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the loopback server did not start") from None
                time.sleep(0.1)

    def reset(self) -> None:
        http_json(self.root + "/reset", "POST")

    def count(self) -> int:
        return int(http_json(self.root + "/count")["count"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# -- the configurations ----------------------------------------------------------------------------

def _python_has(python: str | None, module: str) -> bool:
    if not python or not Path(python).exists():
        return False
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def command_for(config: str, args: argparse.Namespace, inputs: dict[str, Path], server: Server,
                work: Path) -> tuple[list[str] | None, dict[str, str], str]:
    """(argv, extra environment, reason when not installed)."""
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "BENCH_BASE": server.base}
    c = str(args.concurrency)
    if config in ("aiohttp", "litellm"):
        return ([sys.executable, str(HERE / "bare_clients.py"), config, "--prompts", str(inputs["prompts"]),
                 "--base", server.base, "--concurrency", c], env, "")
    if config.startswith("evalkit-"):
        model = config.removeprefix("evalkit-")
        evalkit = shutil.which("evalkit", path=str(Path(sys.executable).parent)) or "evalkit"
        return ([evalkit, "run", str(inputs["suite"]), "--model", model, "--db", str(work / f"{config}.duckdb"),
                 "--no-cache", "--quiet"], env, "")
    peers = args.peers_python
    if config == "inspect":
        if not _python_has(peers, "inspect_ai"):
            return None, env, f"inspect-ai not importable from {peers}"
        cache = _tiktoken_cache(peers)
        env.update({"BENCH_API_KEY": "no-key", "BENCH_BASE_URL": server.base, "INSPECT_LOG_DIR": str(work / "inspect"),
                    "INSPECT_DISPLAY": "none", "TIKTOKEN_CACHE_DIR": cache or ""})
        shutil.copy(inputs["inspect_task"], work / "inspect_task.py")  # inspect globs the path: keep it relative
        return ([peers, "-m", "inspect_ai", "eval", "inspect_task.py", "--model", "openai-api/bench/bench",
                 "--max-connections", c, "--max-samples", c, "--max-retries", "0", "--display", "none",
                 "--temperature", "0", "--max-tokens", "4", "--log-dir", str(work / "inspect")], env, "")
    if config == "lm-eval":
        if not _python_has(peers, "lm_eval"):
            return None, env, f"lm-eval not importable from {peers}"
        env.update({"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(work / "hf"),
                    "HF_HOME": str(work / "hf"), "TOKENIZERS_PARALLELISM": "false"})
        model_args = (f"model=bench,base_url={server.base}/chat/completions,num_concurrent={c},max_retries=1,"
                      "tokenized_requests=False,tokenizer_backend=None")
        return ([peers, "-m", "lm_eval", "--model", "local-chat-completions", "--model_args", model_args,
                 "--tasks", "bench_spam", "--include_path", str(inputs["lm_eval_tasks"]), "--apply_chat_template",
                 "--system_instruction", SYSTEM, "--output_path", str(work / "lm_eval_out"), "--log_samples"],
                env, "")
    if config == "promptfoo":
        binary = args.promptfoo
        if not binary or not Path(binary).exists():
            return None, env, f"promptfoo not found at {binary}"
        cfg = promptfoo_config(work, server.base, inputs["promptfoo_tests"])
        env.update({"PROMPTFOO_CONFIG_DIR": str(work / "promptfoo"), "PROMPTFOO_DISABLE_TELEMETRY": "1",
                    "PROMPTFOO_DISABLE_UPDATE": "1", "PROMPTFOO_DISABLE_SHARING": "1", "OPENAI_API_KEY": "no-key",
                    "PROMPTFOO_CACHE_ENABLED": "false"})
        return ([binary, "eval", "-c", str(cfg), "--max-concurrency", c, "--no-cache", "--no-progress-bar",
                 "--no-table", "-o", str(work / "promptfoo_out.json")], env, "")
    raise ValueError(config)


def _tiktoken_cache(python: str) -> str | None:
    """inspect-ai counts tokens with tiktoken; LiteLLM ships the encodings, so nothing is downloaded."""
    for candidate in (ROOT / ".venv", Path(python).parents[1]):
        found = list(candidate.glob("lib/python*/site-packages/litellm/litellm_core_utils/tokenizers"))
        if found:
            return str(found[0])
    return None


def run_config(config: str, latency_ms: float, args: argparse.Namespace, inputs: dict[str, Path],
               server: Server) -> Result:
    work = Path(tempfile.mkdtemp(prefix=f"bench-{config}-", dir=args.workdir))
    argv, extra, missing = command_for(config, args, inputs, server, work)
    if argv is None:
        return Result(config, latency_ms, "not installed", detail=missing)
    server.reset()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, env={**os.environ, **extra}, cwd=work, capture_output=True, text=True,
                          timeout=args.timeout)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    seen = server.count()
    (work / "stdout.txt").write_text(proc.stdout)
    (work / "stderr.txt").write_text(proc.stderr)
    # promptfoo exits 100 when assertions fail (the fixed reply is wrong on half the prompts).
    exited_ok = proc.returncode == 0 or (config == "promptfoo" and proc.returncode == 100)
    status = "ok" if exited_ok and seen == args.requests else ("failed" if not exited_ok else "incomplete")
    detail = "" if status == "ok" else f"exit {proc.returncode}; {(proc.stderr or proc.stdout).strip()[-300:]}"
    if config.startswith("evalkit-") and status == "ok":
        stored = _stored_rows(work / f"{config}.duckdb")
        if stored != args.requests:
            status, detail = "incomplete", f"{stored} rows stored"
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return Result(config, latency_ms, status, round(wall, 3), round(cpu, 3), seen, detail)


def _stored_rows(db: Path) -> int:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return int(con.execute("SELECT count(*) FROM results WHERE status = 'ok'").fetchone()[0])
    finally:
        con.close()


# -- output ----------------------------------------------------------------------------------------

def table(results: list[Result], requests: int) -> str:
    lines = []
    for latency in sorted({r.latency_ms for r in results}, reverse=True):
        rows = [r for r in results if r.latency_ms == latency]
        ceiling = next((r for r in rows if r.config == "aiohttp" and r.status == "ok"), None)
        floor = next((r for r in rows if r.config == "litellm" and r.status == "ok"), None)
        lines.append(f"\nlatency {latency:g} ms, {requests:,} requests")
        lines.append(f"{'config':<16}{'status':<14}{'wall s':>9}{'req/s':>9}{'× aiohttp':>11}{'× litellm':>11}"
                     f"{'CPU s':>9}{'CPU ms/req':>12}{'seen':>8}")
        for r in rows:
            if r.wall_s is None:
                lines.append(f"{r.config:<16}{r.status:<14}  {r.detail}")
                continue
            rps = requests / r.wall_s
            x_ceiling = f"{ceiling.wall_s / r.wall_s:.2f}" if ceiling else "-"
            x_floor = f"{floor.wall_s / r.wall_s:.2f}" if floor else "-"
            lines.append(f"{r.config:<16}{r.status:<14}{r.wall_s:>9.2f}{rps:>9.0f}{x_ceiling:>11}{x_floor:>11}"
                         f"{r.cpu_s:>9.2f}{1000 * r.cpu_s / requests:>12.2f}{r.requests_seen:>8}")
            if r.detail:
                lines.append(f"    {r.detail}")
    lines.append("\n× aiohttp / × litellm: throughput as a ratio to the bare loop (its wall time / this wall time).")
    return "\n".join(lines)


def machine() -> dict[str, str]:
    versions = {}
    for pkg in ("aiohttp", "litellm", "duckdb", "numpy", "pyarrow"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception:  # noqa: BLE001 - a missing package is just not listed
            pass
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": str(os.cpu_count()),
            "load_avg": " ".join(f"{x:.2f}" for x in os.getloadavg()), **versions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", default="200,10", help="comma-separated server latencies")
    parser.add_argument("--only", default=",".join(CONFIGS), help=f"comma-separated subset of {CONFIGS}")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration (all are reported)")
    parser.add_argument("--peers-python", default=str(ROOT / ".venv-peers" / "bin" / "python"))
    parser.add_argument("--promptfoo", default=str(ROOT / ".cache" / "promptfoo" / "node_modules" / ".bin" / "promptfoo"))
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--workdir", default=None, help="where inputs and outputs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep each configuration's outputs")
    parser.add_argument("--json", dest="json_out", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    chosen = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; choose from {CONFIGS}")
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="evalkit-bench-")
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    inputs = write_inputs(Path(args.workdir), args.requests, args.concurrency)
    info = machine()
    print(f"machine: {info}", flush=True)
    results: list[Result] = []
    for latency in [float(x) for x in args.latency_ms.split(",")]:
        server = Server(latency)
        try:
            for config in chosen:
                for _ in range(args.repeat):
                    result = run_config(config, latency, args, inputs, server)
                    results.append(result)
                    print(f"  {latency:g} ms {config}: {result.status} wall={result.wall_s} cpu={result.cpu_s} "
                          f"seen={result.requests_seen} {result.detail[:200]}", flush=True)
        finally:
            server.close()
    print(table(results, args.requests))
    if args.json_out:
        args.json_out.write_text(json.dumps({"machine": info, "requests": args.requests,
                                             "concurrency": args.concurrency,
                                             "results": [asdict(r) for r in results]}, indent=1))
    if any(r.status in ("failed", "incomplete") for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
