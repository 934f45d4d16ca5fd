"""Streams cut short, stalled or reset mid-answer, through both client paths, with multi-token answers.

A stream counts as an answer only when the server said it finished (a finish_reason, or ``[DONE]``);
one that stops without either is a transient ``truncated`` fault: retried, and kept as an error row when
every attempt was cut.
"""

from __future__ import annotations

import pytest
from conftest import TEST_KEY

from evalkit.config.loader import load_suite
from evalkit.engine.runner import run_suite
from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.faults import Fault
from evalkit.testing.replies import RuleResponder

ANSWER = "The quick brown fox jumps over the lazy dog while seven cats watch it all"  # 15 words
assert len(ANSWER.split()) == 15

TEXT_SUITE = """
evalkit: 1
name: stream-faults
dataset:
  path: data.jsonl
prompt:
  user: "Say the sentence {{{{ n }}}}."
output:
  type: text
target:
  field: answer
scoring:
  scorer: exact
models:
  frontier:
    provider: litellm
    model: openai/frontier
    api_base: {base}
    api_key_env: EVALKIT_TEST_KEY
    stream: true
    params: {{temperature: 0, max_tokens: 64}}
  tuned:
    provider: vllm
    api_base: {base}
    base_model: base
    adapter: tuned
    api_key_env: EVALKIT_TEST_KEY
    stream: true
    params: {{temperature: 0, max_tokens: 64}}
run:
  concurrency: 1
  retries: 2
  warmup: 0  # a warm-up request would take the scripted fault
  timeout_s: {timeout}
  bootstrap: 0
"""


@pytest.fixture
def stream_server(monkeypatch):
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    rules = {"models": {"frontier": {"default": {"reply": ANSWER}}, "tuned": {"default": {"reply": ANSWER}}}}
    with DevServer(RuleResponder.from_dict(rules), api_key=TEST_KEY) as server:
        yield server


def _suite(make_suite, server, timeout=5.0):
    rows = [{"id": "s1", "n": 1, "answer": ANSWER}]
    return load_suite(make_suite(TEXT_SUITE.format(base=server.url, timeout=timeout), rows=rows))


def _row(db, run_id):
    with Store(db, read_only=True) as store:
        return store.dicts("SELECT status, attempts, error_kind, error, output, finish_reason, correct "
                           "FROM results WHERE run_id = ?", [run_id])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["frontier", "tuned"])  # frontier: LiteLLM; tuned: evalkit's aiohttp client
def test_a_cut_stream_is_retried_and_the_full_answer_kept(stream_server, make_suite, tmp_path, model):
    stream_server.faults.add(Fault("truncate", times=1, model=model))
    loaded = _suite(make_suite, stream_server)
    summary = run_suite(loaded, str(tmp_path / "s.duckdb"), models=[model])
    [row] = _row(tmp_path / "s.duckdb", summary.run_id)
    assert row["status"] == "ok" and row["attempts"] == 2, row
    assert row["output"] == ANSWER and row["correct"] is True and row["finish_reason"] == "stop"


@pytest.mark.slow
@pytest.mark.parametrize("model", ["frontier", "tuned"])
def test_a_stream_cut_every_time_is_an_error_row_truncated(stream_server, make_suite, tmp_path, model):
    stream_server.faults.add(Fault("truncate", times=99, model=model))
    loaded = _suite(make_suite, stream_server)
    summary = run_suite(loaded, str(tmp_path / "s.duckdb"), models=[model])
    [row] = _row(tmp_path / "s.duckdb", summary.run_id)
    assert row["status"] == "error" and row["error_kind"] == "truncated" and row["attempts"] == 3, row
    assert row["correct"] is False


def test_the_devserver_cuts_a_stream_mid_answer_without_finish_or_done(stream_server):
    import httpx

    stream_server.faults.add(Fault("truncate", times=1))
    body = {"model": "frontier", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    text = httpx.post(stream_server.url + "/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {TEST_KEY}"}).text
    assert "[DONE]" not in text and '"finish_reason":"stop"' not in text
    assert "quick" in text and "watch" not in text  # some of the answer came, not all of it


@pytest.mark.slow
@pytest.mark.parametrize("model", ["frontier", "tuned"])
@pytest.mark.parametrize(("kind", "error_kind"), [("stall", "timeout"), ("cut", "connection")])
def test_mid_stream_stalls_and_resets_get_their_own_error_kind(stream_server, make_suite, tmp_path, model,
                                                                kind, error_kind):
    stream_server.faults.add(Fault("truncate", times=99, model=model, after=kind, hang_s=5))
    loaded = _suite(make_suite, stream_server, timeout=1.0)
    summary = run_suite(loaded, str(tmp_path / "s.duckdb"), models=[model])
    [row] = _row(tmp_path / "s.duckdb", summary.run_id)
    assert row["status"] == "error" and row["error_kind"] == error_kind, row
