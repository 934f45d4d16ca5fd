"""A suite's own Python (custom scorers, feasibility checks) runs in the scoring worker under
``scoring.timeout_s``: what it returns is checked (numpy scalars accepted, NaN / out-of-range / wrong
types are score errors naming the function), a hang is a timeout, and one Ctrl-C stops a run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from conftest import write_jsonl

from evalkit.config.dataset import Sample
from evalkit.config.loader import load_suite
from evalkit.config.prompts import RenderedSample
from evalkit.records import Completion
from evalkit.scoring.pipeline import SampleScorer
from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import RuleResponder

SUITE = """
evalkit: 1
name: user-code
dataset: {{path: data.jsonl}}
prompt: {{user: "{{{{ q }}}}"}}
output: {{type: json}}
target: {{field: answer}}
scoring:
  scorer: custom
  custom: scorer.py:{scorer}
  feasibility: [checks.py:{check}]
  timeout_s: {timeout}
models:
  m: {{provider: vllm, api_base: "{base}", base_model: b, stream: false, params: {{max_tokens: 8}}}}
run: {{concurrency: 2, retries: 0}}
"""
SCORER = '''
import math, time
import numpy as np
def np_bool(output, target, sample): return np.bool_(output["v"] == target)
def np_float(output, target, sample): return np.float64(0.5)
def np_int(output, target, sample): return np.int64(1)
def nan(output, target, sample): return math.nan
def two(output, target, sample): return 2.0
def text(output, target, sample): return "yes"
def boom(output, target, sample): raise ValueError("bad value")
def chatty(output, target, sample):
    print("debug output from the scorer")
    return True
def slow(output, target, sample):
    time.sleep(600)
'''
CHECKS = '''
import numpy as np
def ok_list(output, sample): return []
def true(output, sample): return True
def np_false(output, sample): return np.bool_(False)
def none(output, sample): return None
def slow_check(output, sample):
    while True:
        pass
'''


def _scorer(make_suite, tmp_path, scorer="np_bool", check="ok_list", timeout=10):
    (tmp_path / "scorer.py").write_text(SCORER)
    (tmp_path / "checks.py").write_text(CHECKS)
    path = make_suite(SUITE.format(scorer=scorer, check=check, timeout=timeout, base="http://127.0.0.1:9/v1"),
                      rows=[{"id": "a", "q": "x", "answer": 1}])
    sample = Sample(id="a", index=0, fields={"id": "a", "q": "x", "answer": 1})
    return SampleScorer(load_suite(path)), RenderedSample(sample, [{"role": "user", "content": "x"}], 1)


@pytest.mark.parametrize("scorer, quality", [("np_bool", 1.0), ("np_float", 0.5), ("np_int", 1.0), ("chatty", 1.0)])
def test_numpy_scalars_and_printing_scorers_are_accepted(make_suite, tmp_path, scorer, quality):
    scoring, rendered = _scorer(make_suite, tmp_path, scorer)
    score = scoring.score(rendered, Completion(text='{"v": 1}'))
    assert (score.quality, score.score_error) == (quality, None)


@pytest.mark.parametrize("scorer, message", [
    ("nan", "scorer scorer.py:nan returned nan (not a number); it must return a bool or a number in [0, 1]"),
    ("two", "scorer scorer.py:two returned 2.0 (outside [0, 1])"),
    ("text", "scorer scorer.py:text returned str 'yes'"),
    ("boom", "scorer scorer.py:boom raised ValueError: bad value"),
])
def test_bad_scorer_results_are_score_errors_naming_the_function(make_suite, tmp_path, scorer, message):
    scoring, rendered = _scorer(make_suite, tmp_path, scorer)
    score = scoring.score(rendered, Completion(text='{"v": 1}'))
    assert score.quality == 0.0 and score.correct is False
    assert score.score_error is not None and message in score.score_error


@pytest.mark.parametrize("check, feasible, error", [
    ("true", True, None), ("np_false", False, None),
    ("none", False, "feasibility check checks.py:none returned NoneType None, not a list of violated constraints"),
])
def test_checks_may_return_a_bool_and_anything_else_is_a_score_error(make_suite, tmp_path, check, feasible, error):
    scoring, rendered = _scorer(make_suite, tmp_path, "np_bool", check)
    score = scoring.score(rendered, Completion(text='{"v": 1}'))
    assert score.feasible is feasible
    assert (score.score_error is None) if error is None else (error in (score.score_error or ""))


@pytest.mark.slow
def test_a_hanging_scorer_or_check_times_out_and_the_next_call_works(make_suite, tmp_path):
    scoring, rendered = _scorer(make_suite, tmp_path, "slow", "slow_check", timeout=0.5)
    started = time.monotonic()
    score = scoring.score(rendered, Completion(text='{"v": 1}'))
    assert time.monotonic() - started < 5
    assert "feasibility check checks.py:slow_check timed out after 0.5 s" in (score.score_error or "")
    assert "scorer scorer.py:slow timed out after 0.5 s" in (score.score_error or "")
    fine, rendered = _scorer(make_suite, tmp_path, "np_float", "ok_list", timeout=0.5)
    assert fine.score(rendered, Completion(text='{"v": 1}')).quality == 0.5


@pytest.mark.slow
def test_one_ctrl_c_stops_a_run_stuck_in_a_sleeping_scorer(make_suite, tmp_path, cli_env):
    (tmp_path / "scorer.py").write_text(SCORER)
    (tmp_path / "checks.py").write_text(CHECKS)
    write_jsonl(tmp_path / "data.jsonl", [{"id": f"s{i}", "q": "x", "answer": 1} for i in range(20)])
    rules = {"models": {"b": {"default": {"reply": '{"v": 1}'}}}}
    with DevServer(RuleResponder.from_dict(rules)) as server:
        (tmp_path / "suite.yaml").write_text(SUITE.format(scorer="slow", check="ok_list", timeout=300,
                                                          base=server.url))
        db = tmp_path / "c.duckdb"
        proc = subprocess.Popen([sys.executable, "-m", "evalkit.cli", "run", str(tmp_path / "suite.yaml"),
                                 "--db", str(db), "--quiet"], env=cli_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # the first answer is in the scorer, which sleeps
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "Resume with: evalkit run" in err, err
    for noise in ("Traceback", "never retrieved", "never awaited"):
        assert noise not in err
    with Store(db, read_only=True) as store:
        assert store.get_run(store.resolve_run_id("latest"))["status"] == "interrupted"


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3, 1.0])
def test_ctrl_c_at_any_point_of_a_run_prints_one_line(delay, tmp_path, cli_env):
    """Ctrl-C right as the run starts its calls, mid-run and near the end: exit 130 (or a finished run),
    one line, never a traceback, "never retrieved" or "coroutine … was never awaited"."""
    (tmp_path / "scorer.py").write_text(SCORER)
    (tmp_path / "checks.py").write_text(CHECKS)
    write_jsonl(tmp_path / "data.jsonl", [{"id": f"s{i}", "q": "x", "answer": 1} for i in range(300)])
    rules = {"models": {"b": {"default": {"reply": '{"v": 1}'}}}}
    with DevServer(RuleResponder.from_dict(rules), latency_ms=5) as server:
        (tmp_path / "suite.yaml").write_text(SUITE.format(scorer="np_bool", check="true", timeout=10,
                                                          base=server.url))
        proc = subprocess.Popen([sys.executable, "-W", "always", "-m", "evalkit.cli", "run",
                                 str(tmp_path / "suite.yaml"), "--db", str(tmp_path / "c.duckdb"), "--quiet"],
                                env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not server.requests and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.002)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err
    for noise in ("Traceback", "never retrieved", "never awaited"):
        assert noise not in err, err
    if proc.returncode == 130:
        assert len(err.strip().splitlines()) == 1, err
