"""A run that starts is never "complete" with nothing in it: its row and its samples are stored together,
a run without samples is planned again from the suite (or refused with the reason), and a run without
metrics is never complete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import LABEL_SUITE, TEST_KEY, TRIAGE_RULES, run_cli, write_jsonl

from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import RuleResponder

BIG_SUITE = """
evalkit: 1
name: big
dataset: {path: data.jsonl}
prompt: {user: "Subject: {{ subject }}"}
output: {type: label, labels: [ham, spam]}
target: {field: label}
models:
  m: {provider: vllm, api_base: "http://127.0.0.1:9/v1", base_model: b, stream: false}
run: {concurrency: 4, retries: 0, warmup: 0}
"""
N_BIG = 200_000


@pytest.mark.slow
def test_kill_at_the_very_start_of_a_large_run_never_resumes_to_an_empty_complete_run(tmp_path, cli_env):
    """kill -9 right after the run's row could first appear (the write-ahead log grows again after the
    migrations): the store has no run, or a run with every sample; --resume never says complete."""
    write_jsonl(tmp_path / "data.jsonl", [{"id": f"b{i:06d}", "subject": f"s {i}", "label": "ham"}
                                          for i in range(N_BIG)])
    (tmp_path / "suite.yaml").write_text(BIG_SUITE.lstrip())
    db = tmp_path / "k.duckdb"
    wal = tmp_path / "k.duckdb.wal"
    proc = subprocess.Popen([sys.executable, "-m", "evalkit.cli", "run", str(tmp_path / "suite.yaml"), "--db", str(db),
                             "--quiet"], env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    settled: int | None = None  # the log's size once the migrations are done (stable while samples render)
    last, since = -1, time.monotonic()
    while proc.poll() is None and time.monotonic() < deadline:
        size = wal.stat().st_size if wal.exists() else -1
        if size != last:
            if settled is not None:
                break  # the first write after the migrations: the run's row (and, now, its samples)
            last, since = size, time.monotonic()
        elif settled is None and size > 0 and time.monotonic() - since > 0.5:
            settled = size
        time.sleep(0.001)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with Store(db, read_only=True) as store:
        runs = store.sql("SELECT run_id, n_samples FROM runs")
        for run_id, n in runs:
            assert store.one("SELECT count(*) FROM samples WHERE run_id = ?", [run_id])[0] == n == N_BIG
    if not runs:
        return  # killed before the run was stored: nothing to resume, nothing half-written
    resumed = run_cli(["run", str(tmp_path / "suite.yaml"), "--db", str(db), "--resume", runs[0][0], "--quiet"],
                      cli_env, timeout=300)
    with Store(db, read_only=True) as store:
        status = store.get_run(runs[0][0])["status"]
        rows = store.count_results(runs[0][0])
    assert not (status == "complete" and rows == 0)
    assert resumed.returncode == 4 and status == "incomplete" and rows > 0, resumed.stderr  # the model is unreachable


def _empty_run(tmp_path, cli_env, email_rows, server):
    """A stored run without samples or results, as an older evalkit left one killed at the start."""
    write_jsonl(tmp_path / "data.jsonl", email_rows)
    (tmp_path / "suite.yaml").write_text(LABEL_SUITE.format(base=server.url).lstrip())
    db = tmp_path / "e.duckdb"
    done = run_cli(["run", str(tmp_path / "suite.yaml"), "--db", str(db), "--quiet", "--limit", "5"], cli_env)
    assert done.returncode == 0, done.stderr
    with Store(db) as store:
        run_id = store.resolve_run_id("latest")
        for table in ("results", "samples", "run_models", "metrics"):
            store.sql(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
        store.sql("UPDATE runs SET status = 'running', finished_at = NULL WHERE run_id = ?", [run_id])
    return db, run_id


def test_a_run_without_samples_is_planned_again_from_the_suite(tmp_path, cli_env, email_rows):
    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY) as server:
        db, run_id = _empty_run(tmp_path, cli_env, email_rows, server)
        server.reset()
        resumed = run_cli(["run", str(tmp_path / "suite.yaml"), "--db", str(db), "--resume", run_id, "--quiet",
                           "--no-cache"], cli_env)
        assert resumed.returncode == 0, resumed.stderr
        assert len(server.calls(path="/v1/chat/completions")) == 10  # its --limit 5, for both models
    with Store(db, read_only=True) as store:
        assert store.get_run(run_id)["status"] == "complete"
        assert store.one("SELECT count(*), count(DISTINCT sample_id) FROM results WHERE run_id = ?", [run_id]) == (10, 5)
        assert store.one("SELECT count(*) FROM samples WHERE run_id = ?", [run_id]) == (5,)


def test_a_run_without_samples_whose_suite_changed_is_refused_with_the_reason(tmp_path, cli_env, email_rows):
    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY) as server:
        db, run_id = _empty_run(tmp_path, cli_env, email_rows, server)
        write_jsonl(tmp_path / "data.jsonl", email_rows[:4])
        server.reset()
        resumed = run_cli(["run", str(tmp_path / "suite.yaml"), "--db", str(db), "--resume", run_id, "--quiet"],
                          cli_env)
        assert len(server.calls(path="/v1/chat/completions")) == 0
    assert resumed.returncode == 2 and "the dataset changed since run" in resumed.stderr, resumed.stderr
    with Store(db, read_only=True) as store:
        assert store.get_run(run_id)["status"] == "running"
        assert store.count_results(run_id) == 0
