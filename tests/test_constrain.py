"""``output.constrain``: each provider is sent the label set or JSON Schema in its native form (asserted on
the wire, at the dev server), what was sent is stored in ``request_params``, the answers keep to it, and a
model that cannot take it is an error at validate time naming the file, line and key."""

from __future__ import annotations

import asyncio
import hashlib
import json
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import LABEL_SUITE, TEST_KEY, run_cli

from evalkit.backends.constrain import label_schema, strict_problems
from evalkit.backends.vllm_inprocess import InProcessEngine, VLLMInProcessBackend
from evalkit.config.loader import load_suite
from evalkit.config.model_specs import VLLMModel
from evalkit.config.resolve import ResolvedModel, effective_concurrency
from evalkit.config.run_spec import RunSpec
from evalkit.engine.runner import cache_key, run_suite
from evalkit.errors import ConfigError
from evalkit.records import ChatRequest, Constraint
from evalkit.scoring.prepare import prepare
from evalkit.store import Store
from evalkit.testing.constrained import honour, instance
from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import Reply, RuleResponder

ROOT = Path(__file__).resolve().parents[1]
# Both stand-ins ramble instead of answering with a label: unconstrained, nothing parses.
RAMBLING = {"default_model": {"rules": [{"pattern": "FREE|meds|won", "reply": "This looks like spam to me."}],
                              "default": {"reply": "Thanks for the email! Let me think.", "confidence": 0.6}}}


def _label_suite(base: str, output_extra: str = "", frontier_extra: str = "", tuned_extra: str = "",
                 frontier_model: str = "hosted_vllm/frontier") -> str:
    text = LABEL_SUITE.format(base=base).replace("model: openai/frontier", f"model: {frontier_model}")
    text = text.replace("max_tokens: 8", "max_tokens: 16")  # {"label": "spam"} takes 9 tokens
    text = text.replace("  labels: [ham, spam]\n", "  labels: [ham, spam]\n" + output_extra)
    text = text.replace("    params: {temperature: 0, max_tokens: 16}\n  tuned:",
                        "    params: {temperature: 0, max_tokens: 16}\n" + frontier_extra + "  tuned:")
    return text.replace("    stream: false\n", "    stream: false\n" + tuned_extra)


@pytest.fixture
def rambling_server():
    with DevServer(RuleResponder.from_dict(RAMBLING), api_key=TEST_KEY, latency_ms=1) as server:
        yield server


def _rows(db: Path) -> dict[str, list[dict[str, Any]]]:
    with Store(db) as store:
        rows = store.dicts("SELECT model, output, schema_valid, correct, request_params FROM results ORDER BY sample_id")
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        r["request_params"] = json.loads(r["request_params"])
        out.setdefault(r["model"], []).append(r)
    return out


def test_label_set_goes_to_litellm_as_a_strict_enum_schema_and_to_vllm_as_a_choice(
        make_suite, email_rows, rambling_server, monkeypatch, tmp_path):
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    path = make_suite(_label_suite(rambling_server.url, "  constrain: true\n"), rows=email_rows)
    run_suite(load_suite(path), str(tmp_path / "c.duckdb"))
    rows = _rows(tmp_path / "c.duckdb")
    expected_format = {"type": "json_schema", "json_schema": {"name": "label", "strict": True, "schema": {
        "type": "object", "properties": {"label": {"type": "string", "enum": ["ham", "spam"]}},
        "required": ["label"], "additionalProperties": False}}}
    sent = {c.model: c.body for c in rambling_server.calls(path="/v1/chat/completions")}
    assert sent["frontier"]["response_format"] == expected_format  # on the wire, through LiteLLM
    assert sent["tuned"]["structured_outputs"] == {"choice": ["ham", "spam"]}
    assert "response_format" not in sent["tuned"] and "structured_outputs" not in sent["frontier"]
    for r in rows["frontier"]:
        assert r["request_params"]["response_format"] == expected_format
        assert json.loads(r["output"])["label"] in ("ham", "spam")
    for r in rows["tuned"]:
        assert r["request_params"]["structured_outputs"] == {"choice": ["ham", "spam"]}
        assert r["output"] in ("ham", "spam")
    for model in ("frontier", "tuned"):
        assert all(r["schema_valid"] for r in rows[model])
        # the reply named 'spam' for the three spam mails: constrained decoding kept it, right for those
        assert sum(r["correct"] for r in rows[model]) == len(email_rows)


def test_a_model_can_override_the_suite_wide_switch(make_suite, email_rows, rambling_server, monkeypatch, tmp_path):
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    path = make_suite(_label_suite(rambling_server.url, tuned_extra="    constrain: true\n"), rows=email_rows)
    run_suite(load_suite(path), str(tmp_path / "o.duckdb"))
    rows = _rows(tmp_path / "o.duckdb")
    assert all("response_format" not in r["request_params"] for r in rows["frontier"])
    # unconstrained, the rambling never names one label for the ham mails
    assert sum(bool(r["schema_valid"]) for r in rows["frontier"]) == 3
    assert all(r["schema_valid"] for r in rows["tuned"])
    assert all(r["request_params"]["structured_outputs"] == {"choice": ["ham", "spam"]} for r in rows["tuned"])


def test_constrained_and_unconstrained_requests_do_not_share_cached_answers():
    request = ChatRequest(messages=[{"role": "user", "content": "x"}], params={})
    constrained = ChatRequest(messages=request.messages, params={}, constraint=Constraint("choice", "label",
                                                                                          choices=("a", "b")))
    assert cache_key({"m": 1}, request, 0) != cache_key({"m": 1}, constrained, 0)
    # an unconstrained request keeps the key it had before constraints existed: old caches still hit
    old = json.dumps({"model": {"m": 1}, "messages": request.messages, "params": {}, "logprobs": False,
                      "top_logprobs": 0, "stream": True, "repeat": 0}, sort_keys=True, default=str)
    assert cache_key({"m": 1}, request, 0) == hashlib.sha256(old.encode()).hexdigest()


@pytest.mark.parametrize("model, words", [
    ("openai/frontier", "LiteLLM's model table says it does not support response_format json_schema"),
    ("anthropic/claude-2", "does not support response_format json_schema"),
])
def test_a_litellm_model_that_cannot_take_it_is_a_validate_time_error(make_suite, email_rows, model, words):
    path = make_suite(_label_suite("http://127.0.0.1:9/v1", frontier_extra="    constrain: true\n",
                                   frontier_model=model), rows=email_rows)
    with pytest.raises(ConfigError) as caught:
        prepare(load_suite(path))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "constrain: true" in text)
    assert f"suite.yaml:{line}: models.frontier.constrain: " in str(caught.value) and words in str(caught.value)


def test_an_api_model_with_schema_support_is_accepted_and_strict_mode_rules_are_checked(make_suite, email_rows,
                                                                                        tmp_path):
    loose = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["a"]}
    (tmp_path / "loose.json").write_text(json.dumps(loose))
    suite = _label_suite("http://127.0.0.1:9/v1", frontier_model="openai/gpt-4o-mini",
                         frontier_extra="    constrain: true\n")
    prepared = prepare(load_suite(make_suite(suite, rows=email_rows)))
    assert prepared.constraints == {"frontier": Constraint("choice", "label", choices=("ham", "spam"))}
    json_suite = suite.replace("  type: label\n  labels: [ham, spam]\n", "  type: json\n  schema: loose.json\n")
    json_suite = json_suite.replace("scoring:", "x:") + "scoring: {scorer: none}\n"
    with pytest.raises(ConfigError) as caught:
        prepare(load_suite(make_suite(json_suite, rows=email_rows, name="j.yaml")))
    assert "OpenAI's strict mode" in str(caught.value)
    assert "(root): an object needs additionalProperties: false" in str(caught.value) and "(and 1 more)" in str(caught.value)
    assert strict_problems(label_schema(("x",))) == []


def test_constrain_on_text_output_or_json_without_schema_is_refused(make_suite, email_rows):
    text = _label_suite("http://127.0.0.1:9/v1", "  constrain: true\n").replace("type: label", "type: text")
    text = text.replace("  labels: [ham, spam]\n", "")
    with pytest.raises(ConfigError, match="'constrain' needs output type 'json'"):
        load_suite(make_suite(text, rows=email_rows))
    per_model = _label_suite("http://127.0.0.1:9/v1", tuned_extra="    constrain: true\n")
    per_model = per_model.replace("type: label", "type: text").replace("  labels: [ham, spam]\n", "")
    per_model = per_model.replace("target:\n  field: label\n", "target:\n  field: label\nscoring: {scorer: exact}\n")
    with pytest.raises(ConfigError, match="models.tuned.constrain: constrained decoding needs output type 'json' "
                                          r"\(with a schema\) or 'label', not 'text'"):
        prepare(load_suite(make_suite(per_model, rows=email_rows, name="t.yaml")))


def test_validate_names_file_line_and_key(make_suite, email_rows, cli_env):
    path = make_suite(_label_suite("http://127.0.0.1:9/v1", "  constrain: true\n", frontier_model="openai/frontier"),
                      rows=email_rows)
    done = run_cli(["validate", str(path)], cli_env)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "constrain: true" in text)
    assert done.returncode == 2, done.stderr
    assert f"suite.yaml:{line}: output.constrain: model 'frontier' (openai/frontier) cannot take" in done.stderr
    assert "Traceback" not in done.stderr


def test_inprocess_engine_gets_structured_outputs_params_and_records_them():
    class LLM:
        sampling: list[Any] = []

        def chat(self, messages: list[Any], sampling: list[Any], lora_request: list[Any], use_tqdm: bool) -> list[Any]:
            LLM.sampling.extend(sampling)
            return [SimpleNamespace(prompt_token_ids=[1], outputs=[SimpleNamespace(
                text="spam", finish_reason="stop", token_ids=[7], logprobs=None)]) for _ in sampling]

    spec = VLLMModel(provider="vllm", mode="inprocess", base_model="tiny")
    model = ResolvedModel("tiny", spec, "vllm/inprocess", effective_concurrency(spec, RunSpec()))
    engine = InProcessEngine(LLM(), "tiny", sampling_params=lambda **kw: kw,
                             structured_params=lambda **kw: ("StructuredOutputsParams", kw))
    backend = VLLMInProcessBackend(model, engine, {})
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}], params={"temperature": 0}, stream=False,
                          constraint=Constraint("choice", "label", choices=("ham", "spam")))

    async def call() -> Any:
        done = await backend.complete(request)
        await backend.aclose()
        return done

    completion = asyncio.run(call())
    assert LLM.sampling == [{"temperature": 0, "structured_outputs": ("StructuredOutputsParams",
                                                                      {"choice": ["ham", "spam"]})}]
    assert completion.sent_params["structured_outputs"] == {"choice": ["ham", "spam"]}


def test_vllm_structured_outputs_params_take_the_form_sent():
    pytest.importorskip("vllm")
    from vllm.sampling_params import StructuredOutputsParams

    from evalkit.backends.constrain import inprocess_form

    params, recorded = inprocess_form(Constraint("json", "s", schema={"type": "object"}))
    assert isinstance(params, StructuredOutputsParams) and params.json == {"type": "object"}
    assert recorded == {"json": {"type": "object"}}


def test_dev_server_forces_a_reply_to_what_was_asked():
    schema = json.loads((ROOT / "datasets" / "jobshop" / "schedule.schema.json").read_text())
    prose = Reply("Here is a schedule: job 0 first, then job 1.")
    forced = json.loads(honour({"response_format": {"type": "json_schema", "json_schema": {"schema": schema}}},
                               prose).text)
    assert forced == {"schedule": [], "makespan": 0} == instance(schema)
    fenced = Reply('Sure:\n```json\n{"schedule": [], "makespan": 7}\n```')
    assert json.loads(honour({"structured_outputs": {"json": schema}}, fenced).text)["makespan"] == 7
    assert honour({"structured_outputs": {"choice": ["ham", "spam"]}}, Reply("Looks like SPAM")).text == "spam"
    assert honour({}, prose) is prose


def test_jobshop_suite_shows_the_same_model_constrained_and_unconstrained():
    suite = (ROOT / "suites" / "jobshop" / "constrained.yaml").read_text()
    loaded = load_suite(ROOT / "suites" / "jobshop" / "constrained.yaml")
    assert loaded.suite.models["tuned_constrained"].constrain is True and not loaded.suite.output.constrain
    same = {k: v for k, v in loaded.suite.models["tuned"].model_dump().items() if k != "constrain"}
    assert same == {k: v for k, v in loaded.suite.models["tuned_constrained"].model_dump().items() if k != "constrain"}
    assert "constrain: true" in textwrap.dedent(suite)


JOBSHOP_RULES = {"default_model": {
    "rules": [{"pattern": "\\b4 jobs", "reply": '{"schedule": [{"job": 0, "op": 0, "machine": 0, '
               '"start": 0}], "makespan": 3}'}],  # schema-valid, infeasible (operations missing)
    "default": {"reply": 'Here you go:\n{"schedule": [{"job": 0, "op": 0, "machine": 1, "start": 0}], '
                '"makespan": 7, "notes": "the rest follows"}'}}}  # an extra key: schema-invalid


@pytest.mark.slow
def test_jobshop_constrained_is_always_schema_valid_but_not_feasible(monkeypatch, tmp_path):
    with DevServer(RuleResponder.from_dict(JOBSHOP_RULES), latency_ms=1) as server:
        monkeypatch.setenv("EVALKIT_VLLM_BASE", server.url)
        summary = run_suite(load_suite(ROOT / "suites" / "jobshop" / "constrained.yaml"), str(tmp_path / "j.duckdb"),
                            limit=12)
        sent = [c.body for c in server.calls(path="/v1/chat/completions")]
    assert sum("structured_outputs" in b for b in sent) == sum("structured_outputs" not in b for b in sent) == 16  # 12 + 4 warm-up
    metrics = {(m["model"], m["metric"]): m["value"] for m in summary.metrics}
    assert metrics[("tuned_constrained", "schema_valid_rate")] == 1.0
    assert metrics[("tuned", "schema_valid_rate")] < 1.0
    assert metrics[("tuned_constrained", "feasible_rate")] == 0.0  # valid, and still not a schedule
    rows = _rows(tmp_path / "j.duckdb")
    schema = json.loads((ROOT / "datasets" / "jobshop" / "schedule.schema.json").read_text())
    assert all(r["request_params"]["structured_outputs"]["json"]["properties"] == schema["properties"]
               for r in rows["tuned_constrained"])
    assert all("structured_outputs" not in r["request_params"] for r in rows["tuned"])
