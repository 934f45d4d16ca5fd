"""Parsing and scoring of answers: labels, JSON, schema validity, feasibility, confidence."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.config.dataset import Sample
from evalkit.config.loader import load_suite
from evalkit.config.prompts import RenderedSample
from evalkit.records import Completion
from evalkit.scoring import builtin
from evalkit.scoring.confidence import from_field, from_logprobs
from evalkit.scoring.parse import parse_json, parse_label
from evalkit.scoring.pipeline import SampleScorer

LABELS = ["ham", "spam"]


@pytest.mark.parametrize("text, expected", [
    ("spam", "spam"), (" Spam.\n", "spam"), ("HAM", "ham"), ("spam\nbecause it sells pills", "spam"),
    ("Spam - it asks for money", "spam"), ("I think this is spam.", "spam"), ("**ham**", "ham"),
    ("spam or ham, hard to say", None), ("Awesome! I'm glad to help", None), ("", None), ("hamster", None),
])
def test_parse_label(text, expected):
    assert parse_label(text, LABELS).value == expected


@pytest.mark.parametrize("text, expected", [
    ('{"a": 1}', {"a": 1}), ('Sure! ```json\n{"a": [1, 2]}\n``` hope it helps', {"a": [1, 2]}),
    ('The answer: {"a": "}"} done', {"a": "}"}), ("[1, 2, 3]", [1, 2, 3]), ("no json here", None),
    ('{"a": 1', None),
])
def test_parse_json(text, expected):
    assert parse_json(text).value == expected


def test_builtin_scorers():
    assert builtin.label_match("Spam", "spam") == 1.0
    assert builtin.exact(" a ", "a") == 1.0
    answer, target = {"a": 1, "b": "X ", "c": 3}, {"a": 1.0, "b": "x", "c": 4}
    assert builtin.json_fields(answer, target, ["a", "b", "c"]) == pytest.approx(2 / 3)
    assert builtin.json_fields({"a": {"b": 2}}, '{"a": {"b": 2}}', ["a.b"]) == 1.0
    assert builtin.json_fields({"a": 1}, {"a": 1}, ["missing"]) == 0.0
    assert builtin.numeric("about 3.14", "3.1", tolerance=0.05) == 1.0
    assert builtin.numeric({"v": 100}, 110, field="v", relative_tolerance=0.05) == 0.0
    assert builtin.numeric({"v": 100}, 104, field="v", relative_tolerance=0.05) == 1.0


def test_confidence_from_field_and_logprobs():
    assert from_field({"confidence": 0.8}, "confidence") == 0.8
    assert from_field({"confidence": 85}, "confidence") == 0.85
    assert from_field({"confidence": "high"}, "confidence") is None
    text = " spam"
    parsed = parse_label(text, LABELS)
    lp = [{"token": " sp", "logprob": math.log(0.9)}, {"token": "am", "logprob": math.log(0.5)}]
    assert from_logprobs(text, parsed, lp) == pytest.approx(0.45)
    # vLLM's logprobs end with the end-of-turn token that the text leaves out (seen with SmolLM2's ChatML)
    end_of_turn = [*lp, {"token": "<|im_end|>", "logprob": math.log(0.99)}]
    assert from_logprobs(text, parsed, end_of_turn) == pytest.approx(0.45)
    text = '{"label": "spam", "why": "x"}'
    toks = ['{"', 'label', '":', ' "', 'sp', 'am', '",', ' "', 'why', '":', ' "', 'x', '"}']
    lps = [{"token": t, "logprob": math.log(0.7) if t in ("sp", "am") else math.log(0.99)} for t in toks]
    assert from_logprobs(text, parse_json(text), lps, "label") == pytest.approx(0.49)
    assert from_logprobs(text, parse_json(text), lps[:-1], "label") is None  # tokens do not spell the text


JOB_SUITE = """
evalkit: 1
name: shapes
dataset: {path: data.jsonl}
prompt: {user: "{{ q }}"}
output:
  type: json
  schema:
    type: object
    required: [total, items]
    properties:
      total: {type: integer}
      items: {type: array, items: {type: integer}}
    additionalProperties: false
target: {field: answer}
scoring:
  scorer: json_fields
  fields: [total]
  feasibility: [checks.py:sums_match]
models:
  m: {provider: vllm, api_base: "http://127.0.0.1:1/v1", base_model: b}
"""
CHECKS = '''
def sums_match(output, sample):
    if sum(output["items"]) != output["total"]:
        return [f"items add up to {sum(output['items'])}, not {output['total']}"]
    return []
'''


@pytest.fixture
def json_scorer(make_suite, tmp_path):
    (tmp_path / "checks.py").write_text(CHECKS)
    loaded = load_suite(make_suite(JOB_SUITE, rows=[{"id": 1, "q": "x", "answer": {"total": 6}}]))
    sample = Sample(id="1", index=0, fields={"id": 1, "q": "x", "answer": {"total": 6}})
    return SampleScorer(loaded), RenderedSample(sample, [{"role": "user", "content": "x"}], {"total": 6})


@pytest.mark.parametrize("text, valid, feasible, quality, violations", [
    ('{"total": 6, "items": [1, 2, 3]}', True, True, 1.0, 0),
    ('{"total": 6, "items": [1, 2, 4]}', True, False, 0.0, 1),   # looks right, isn't
    ('{"total": "6", "items": [1, 2, 3]}', False, False, 0.0, 0),  # schema-invalid: checks not run
    ("total is six", False, False, 0.0, 0),
    ('{"total": 7, "items": [3, 4]}', True, True, 0.0, 0),       # feasible but wrong
])
def test_pipeline_validity_feasibility_quality(json_scorer, text, valid, feasible, quality, violations):
    scorer, rendered = json_scorer
    score = scorer.score(rendered, Completion(text=text))
    assert score.schema_valid is valid
    assert score.feasible is feasible
    assert score.quality == quality
    assert score.correct is (quality == 1.0)
    assert len(score.violations) == violations


def test_error_score_counts_as_wrong(json_scorer):
    scorer, _ = json_scorer
    s = scorer.error_score()
    assert (s.schema_valid, s.feasible, s.quality, s.correct, s.confidence) == (False, False, 0.0, False, None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300))
def test_arbitrary_model_text_never_crashes_scoring(json_scorer, text):
    scorer, rendered = json_scorer
    score = scorer.score(rendered, Completion(text=text))
    assert 0.0 <= score.quality <= 1.0
    assert parse_label(text, LABELS).value in (None, "ham", "spam")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
                          lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                          max_leaves=10))
def test_arbitrary_json_never_crashes_scoring(json_scorer, value):
    import json

    scorer, rendered = json_scorer
    try:
        text = json.dumps(value)
    except ValueError:
        return
    score = scorer.score(rendered, Completion(text=text))
    assert 0.0 <= score.quality <= 1.0
