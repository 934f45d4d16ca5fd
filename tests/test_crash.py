"""kill -9 at random points of a real run: the store opens, and --resume completes every sample
exactly once without asking the model again for any sample that was already stored."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import LABEL_SUITE, TEST_KEY, TRIAGE_RULES, write_jsonl

from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import RuleResponder

N = 240


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(3))
def test_kill_minus_nine_then_resume(trial, tmp_path, cli_env, email_rows):
    rng = random.Random(1000 + trial)
    rows = [dict(email_rows[i % 6], id=f"m{i:04d}", subject=f"{email_rows[i % 6]['subject']} #{i}") for i in range(N)]
    write_jsonl(tmp_path / "data.jsonl", rows)
    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY, latency_ms=15) as server:
        (tmp_path / "suite.yaml").write_text(
            LABEL_SUITE.format(base=server.url).replace("concurrency: 4", "concurrency: 8").lstrip())
        db = tmp_path / "k.duckdb"
        proc = subprocess.Popen([sys.executable, "-m", "evalkit.cli", "run", str(tmp_path / "suite.yaml"),
                                 "--db", str(db), "--quiet"], env=cli_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        kill_after = rng.randint(20, 2 * N - 40)  # requests seen by the server before the kill
        deadline = time.monotonic() + 60
        while len(server.calls(path="/v1/chat/completions")) < kill_after and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        with Store(db, read_only=True) as store:  # the file opens after kill -9
            run_id = store.resolve_run_id("latest")
            stored = {(m, s) for m, s in store.sql("SELECT model, sample_id FROM results WHERE run_id = ?", [run_id])}
            prompts = store.sql("SELECT sample_id, messages FROM samples WHERE run_id = ?", [run_id])
            by_prompt = {json.loads(msgs)[-1]["content"]: sid for sid, msgs in prompts}
        asked_before = len(server.calls(path="/v1/chat/completions"))
        assert len(stored) <= asked_before
        server.reset()
        resumed = subprocess.run([sys.executable, "-m", "evalkit.cli", "run", str(tmp_path / "suite.yaml"),
                                  "--db", str(db), "--resume", run_id, "--quiet", "--no-cache"],
                                 env=cli_env, capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        asked_again = {(r.model, by_prompt[r.body["messages"][-1]["content"]]) for r in server.calls(path="/v1/chat/completions")}
        assert not asked_again & stored, "a sample stored before the crash was requested again"
        assert len(server.calls(path="/v1/chat/completions")) == 2 * N - len(stored)
    with Store(db, read_only=True) as store:
        per_model = store.sql("SELECT model, count(*), count(DISTINCT sample_id) FROM results WHERE run_id = ? "
                              "GROUP BY model ORDER BY model", [run_id])
        assert per_model == [("frontier", N, N), ("tuned", N, N)]  # every sample exactly once
        assert store.get_run(run_id)["status"] == "complete"


def test_ctrl_c_flushes_and_prints_the_resume_command(tmp_path, cli_env, email_rows):
    rows = [dict(email_rows[i % 6], id=f"c{i:03d}") for i in range(120)]
    write_jsonl(tmp_path / "data.jsonl", rows)
    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY, latency_ms=30) as server:
        (tmp_path / "suite.yaml").write_text(LABEL_SUITE.format(base=server.url).lstrip())
        db = tmp_path / "c.duckdb"
        proc = subprocess.Popen([sys.executable, "-m", "evalkit.cli", "run", str(tmp_path / "suite.yaml"),
                                 "--db", str(db), "--quiet"], env=cli_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(server.calls(path="/v1/chat/completions")) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Resume with: evalkit run" in err and "--resume" in err
    with Store(db, read_only=True) as store:
        run = store.get_run(store.resolve_run_id("latest"))
        stored = store.one("SELECT count(*) FROM results WHERE run_id = ?", [run["run_id"]])[0]
    assert run["status"] == "interrupted" and 0 < stored < 240
    assert f"{stored} results stored" in err
