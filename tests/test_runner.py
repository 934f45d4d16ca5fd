"""The runner in-process: costs, JSON outputs with checks, verbalised confidence, bad schemas, retries."""

from __future__ import annotations

import json

import pytest

from evalkit.config.loader import load_suite
from evalkit.engine.runner import run_suite
from evalkit.errors import ConfigError, ScorerError
from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.faults import Fault
from evalkit.testing.replies import RuleResponder

ROWS = [{"id": f"q{i}", "a": i, "b": i + 1, "answer": {"total": 2 * i + 1}} for i in range(8)]
SUITE = """
evalkit: 1
name: sums
dataset: {{path: data.jsonl}}
prompt: {{user: "Add {{{{ a }}}} and {{{{ b }}}}. Reply as JSON."}}
output:
  type: json
  schema: {schema}
target: {{field: answer}}
scoring:
  scorer: json_fields
  fields: [total]
  feasibility: [checks.py:parts_add_up]
confidence: {{source: field, field: confidence}}
models:
  good:
    provider: vllm
    api_base: {base}
    base_model: good
    params: {{max_tokens: 40}}
    cost: {{gpu_usd_per_hour: 3.6}}
  sloppy:
    provider: litellm
    model: openai/sloppy
    api_base: {base}
    params: {{max_tokens: 40}}
    cost: {{input_per_mtok: 3, output_per_mtok: 15}}
run: {{concurrency: 4, retries: 2, bootstrap: 100, warmup: 0}}
"""
SCHEMA = {"type": "object", "required": ["total", "parts", "confidence"],
          "properties": {"total": {"type": "integer"}, "parts": {"type": "array", "items": {"type": "integer"}},
                         "confidence": {"type": "number"}}}
CHECKS = '''
def parts_add_up(output, sample):
    return [] if sum(output["parts"]) == output["total"] else ["parts do not add up to total"]
'''
RULES = {"models": {
    # right answers, stated with 90% confidence
    "good": {"rules": [{"pattern": r"Add (\d) and (\d)",
                        "reply": '{"total": TOTAL, "parts": [\\1, \\2], "confidence": 0.9}'}]},
    # schema-valid JSON whose parts never add up (looks right, isn't), said with certainty
    "sloppy": {"default": {"reply": '{"total": 3, "parts": [1, 1], "confidence": 100}'}},
}}


class SumResponder(RuleResponder):
    """The 'good' model computes the sum for real; the rules file cannot do arithmetic."""

    def __call__(self, body):
        reply = super().__call__(body)
        if "TOTAL" in reply.text:
            parts = json.loads(reply.text.replace("TOTAL", "0"))["parts"]
            reply.text = reply.text.replace("TOTAL", str(sum(parts)))
        return reply


@pytest.fixture
def sums(make_suite, tmp_path):
    (tmp_path / "checks.py").write_text(CHECKS)
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    responder = SumResponder.from_dict(RULES)
    responder.__class__ = SumResponder
    with DevServer(responder) as server:
        path = make_suite(SUITE.format(base=server.url, schema="schema.json"), rows=ROWS)
        yield load_suite(path), server, tmp_path


@pytest.mark.slow
def test_json_suite_validity_feasibility_confidence_and_cost(sums):
    loaded, server, tmp = sums
    summary = run_suite(loaded, str(tmp / "r.duckdb"))
    assert summary.status == "complete"
    m = {(r["model"], r["metric"]): r["value"] for r in summary.metrics}
    assert m[("good", "accuracy")] == 1.0 and m[("good", "feasible_rate")] == 1.0
    assert m[("sloppy", "schema_valid_rate")] == 1.0
    assert m[("sloppy", "feasible_rate")] == 0.0
    assert m[("sloppy", "valid_but_infeasible_rate")] == 1.0
    assert m[("sloppy", "accuracy")] == 0.0  # total 3 is right for q1, but infeasible answers are wrong
    assert m[("good", "brier")] == pytest.approx(0.01)          # (0.9 - 1)^2
    assert m[("sloppy", "brier")] == pytest.approx(1.0)         # "100" read as 1.0, always wrong
    with Store(tmp / "r.duckdb", read_only=True) as store:
        rows = store.dicts("SELECT model, prompt_tokens, completion_tokens, cost_usd, violations FROM results "
                           "WHERE run_id = ? ORDER BY model, sample_id", [summary.run_id])
        sloppy = [r for r in rows if r["model"] == "sloppy"]
        for r in sloppy:  # token prices: $3 / $15 per million
            assert r["cost_usd"] == pytest.approx((r["prompt_tokens"] * 3 + r["completion_tokens"] * 15) / 1e6)
            assert json.loads(r["violations"]) == ["parts do not add up to total"]
        good = [r for r in rows if r["model"] == "good"]
        wall = store.one("SELECT wall_s FROM run_models WHERE run_id = ? AND model = 'good'", [summary.run_id])[0]
        for r in good:  # GPU hour priced by the throughput measured in this run
            assert r["cost_usd"] == pytest.approx(3.6 / 3600 * wall / 8)


@pytest.mark.slow
def test_transient_faults_are_retried_and_persistent_ones_stored_as_errors(sums):
    loaded, server, tmp = sums
    server.faults.add(Fault(kind="status", status=503, times=3, model="good"))
    summary = run_suite(loaded, str(tmp / "r.duckdb"), models=["good"])
    with Store(tmp / "r.duckdb", read_only=True) as store:
        assert store.one("SELECT count(*), sum(attempts), count(*) FILTER (WHERE status = 'error') FROM results "
                         "WHERE run_id = ?", [summary.run_id]) == (8, 11, 0)
    server.faults.add(Fault(kind="status", status=500, model="good", nth=None, every=1))
    summary = run_suite(loaded, str(tmp / "r2.duckdb"), models=["good"], use_cache=False)
    # fewer failures than the breaker's threshold (10): every sample is kept as an error row
    assert summary.status == "complete"
    m = {(r["model"], r["metric"]): r["value"] for r in summary.metrics}
    assert m[("good", "error_rate")] == 1.0 and m[("good", "accuracy")] == 0.0
    with Store(tmp / "r2.duckdb", read_only=True) as store:
        errors = store.dicts("SELECT error, error_kind, attempts FROM results WHERE run_id = ?", [summary.run_id])
        assert len(errors) == 8 and all(e["error_kind"] == "http" and "HTTP 500" in e["error"]
                                        and e["attempts"] == 3 for e in errors)


def test_invalid_json_schema_and_missing_scorer_fail_before_any_call(sums, make_suite):
    loaded, server, tmp = sums
    (tmp / "bad.schema.json").write_text(json.dumps({"type": "objekt"}))
    bad = load_suite(make_suite(SUITE.format(base=server.url, schema="bad.schema.json"), name="bad.yaml"))
    with pytest.raises(ConfigError, match=r"output.schema: invalid JSON Schema"):
        run_suite(bad, str(tmp / "x.duckdb"))
    (tmp / "checks.py").write_text("def other(output, sample):\n    return []\n")
    with pytest.raises(ScorerError, match=r"checks.py has no function 'parts_add_up'"):
        run_suite(loaded, str(tmp / "x.duckdb"))
    assert len(server.requests) == 0


@pytest.mark.slow
@pytest.mark.parametrize("sequential", [True, False])
def test_sequential_models_never_overlap(make_suite, tmp_path, sequential):
    """run.sequential_models: the second model's first request comes after the first model's last answer.

    Each answer takes 400 ms, so the first model needs >= 0.8 s for its 8 requests at concurrency 4:
    side by side, the second model's requests always arrive in between.
    """
    (tmp_path / "checks.py").write_text(CHECKS)
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    responder = SumResponder.from_dict(RULES)
    with DevServer(responder, latency_ms=400) as server:
        text = SUITE.format(base=server.url, schema="schema.json").replace(
            "run: {concurrency: 4,", f"run: {{sequential_models: {str(sequential).lower()}, concurrency: 4,")
        summary = run_suite(load_suite(make_suite(text, rows=ROWS)), str(tmp_path / "r.duckdb"))
        order = [r.model for r in server.requests if r.path.endswith("/chat/completions")]
    assert summary.status == "complete"
    assert sorted(order) == ["good"] * 8 + ["sloppy"] * 8
    switches = sum(a != b for a, b in zip(order, order[1:]))
    assert (switches == 1) if sequential else (switches > 1)
