"""``scoring.correct``: correctness decided by its own rule, apart from quality ≥ correct_threshold."""

from __future__ import annotations

import json

import pytest

from evalkit.config.dataset import Sample
from evalkit.config.loader import load_suite
from evalkit.config.prompts import RenderedSample
from evalkit.engine.runner import run_suite
from evalkit.errors import ConfigError
from evalkit.records import Completion
from evalkit.scoring.pipeline import SampleScorer
from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import RuleResponder

# Ship a parcel: pick the carrier and pack the boxes into the truck without going over its capacity.
SHIPMENTS = [
    {"id": "right-infeasible", "order": "A", "capacity": 10, "answer": {"carrier": "DHL"}},
    {"id": "wrong-feasible", "order": "B", "capacity": 10, "answer": {"carrier": "UPS"}},
    {"id": "right-feasible", "order": "C", "capacity": 10, "answer": {"carrier": "FedEx"}},
    {"id": "wrong-infeasible", "order": "D", "capacity": 10, "answer": {"carrier": "DHL"}},
]
REPLIES = {"models": {"m": {"rules": [
    {"pattern": "order A", "reply": '{"carrier": "DHL", "boxes": [6, 7]}'},     # right carrier, 13 > 10
    {"pattern": "order B", "reply": '{"carrier": "DHL", "boxes": [3, 4]}'},     # wrong carrier, fits
    {"pattern": "order C", "reply": '{"carrier": "fedex", "boxes": [5, 5]}'},   # right, fits
    {"pattern": "order D", "reply": '{"carrier": "UPS", "boxes": [9, 9]}'},     # wrong, does not fit
]}}}
CHECKS = '''
def packing_quality(answer, target, sample):
    """Half for the carrier, half for a packing that fits."""
    fits = sum(answer["boxes"]) <= sample["capacity"]
    return 0.5 * (answer["carrier"].lower() == target["carrier"].lower()) + 0.5 * fits


def right_carrier(answer, target, sample):
    """The decision that matters: the carrier."""
    return answer["carrier"].lower() == target["carrier"].lower()
'''
SUITE = """
evalkit: 1
name: shipping
dataset: {{path: data.jsonl}}
prompt: {{user: "Plan order {{{{ order }}}} for a truck of {{{{ capacity }}}}."}}
output: {{type: json}}
target: {{field: answer}}
scoring:
  scorer: custom
  custom: checks.py:packing_quality
  correct: {correct}
models:
  m: {{provider: litellm, model: openai/m, api_base: {base}, params: {{max_tokens: 40}}}}
run: {{bootstrap: 50, warmup: 0}}
"""


@pytest.fixture
def shipping(make_suite, tmp_path):
    (tmp_path / "checks.py").write_text(CHECKS)
    with DevServer(RuleResponder.from_dict(REPLIES)) as server:
        def build(correct: str, name: str = "suite.yaml"):
            return make_suite(SUITE.format(base=server.url, correct=correct), rows=SHIPMENTS, name=name)
        yield build, server, tmp_path


def _stored(db, run_id):
    with Store(db, read_only=True) as store:
        rows = store.dicts("SELECT sample_id, quality, correct, score_error FROM results WHERE run_id = ?", [run_id])
        config = json.loads(store.get_run(run_id)["config"])
    return {r["sample_id"]: (r["quality"], r["correct"], r["score_error"]) for r in rows}, config


@pytest.mark.slow
def test_custom_rule_separates_what_no_threshold_can(shipping):
    build, server, tmp = shipping
    summary = run_suite(load_suite(build('"checks.py:right_carrier"')), str(tmp / "r.duckdb"))
    rows, config = _stored(tmp / "r.duckdb", summary.run_id)
    # the same quality 0.5, opposite verdicts: no correct_threshold could say this
    assert rows["right-infeasible"] == (0.5, True, None)
    assert rows["wrong-feasible"] == (0.5, False, None)
    assert rows["right-feasible"] == (1.0, True, None)
    assert rows["wrong-infeasible"] == (0.0, False, None)
    metrics = {r["metric"]: r["value"] for r in summary.metrics}
    assert metrics["accuracy"] == 0.5 and metrics["quality_mean"] == 0.5
    # the run records which rule decided correctness
    assert config["scoring"]["correct"]["scorer"] == "custom"
    assert config["scoring"]["correct"]["custom"] == "checks.py:right_carrier"
    assert len(server.calls(path="/v1/chat/completions")) == 4


@pytest.mark.slow
def test_builtin_json_fields_rule_with_its_own_fields(shipping):
    build, _, tmp = shipping
    summary = run_suite(load_suite(build("{scorer: json_fields, fields: [carrier]}")), str(tmp / "r.duckdb"))
    rows, config = _stored(tmp / "r.duckdb", summary.run_id)
    assert {k: v[1] for k, v in rows.items()} == {"right-infeasible": True, "wrong-feasible": False,
                                                  "right-feasible": True, "wrong-infeasible": False}
    assert config["scoring"]["correct"]["fields"] == ["carrier"]


def _scorer(make_suite, tmp_path, text: str, rows=None):
    loaded = load_suite(make_suite(text, rows=rows or [{"id": 1, "q": "x", "answer": 7}]))
    sample = Sample(id="1", index=0, fields={"id": 1, "q": "x", "answer": 7})
    return SampleScorer(loaded), RenderedSample(sample, [{"role": "user", "content": "x"}], "7")


NUMERIC = """
evalkit: 1
name: n
dataset: {path: data.jsonl}
prompt: {user: "{{ q }}"}
output: {type: text}
target: {field: answer}
scoring:
  scorer: numeric
  correct: {scorer: numeric, tolerance: 0.5}
models:
  m: {provider: vllm, api_base: "http://127.0.0.1:1/v1", base_model: b}
"""


def test_numeric_rule_with_its_own_tolerance(make_suite, tmp_path):
    scorer, rendered = _scorer(make_suite, tmp_path, NUMERIC)
    near = scorer.score(rendered, Completion(text="about 7.4"))
    assert (near.quality, near.correct) == (0.0, True)  # quality is the exact scorer's; correct is within 0.5
    far = scorer.score(rendered, Completion(text="8"))
    assert (far.quality, far.correct) == (0.0, False)


RULE_SUITE = """
evalkit: 1
name: n
dataset: {{path: data.jsonl}}
prompt: {{user: "{{{{ q }}}}"}}
output: {output}
target: {{field: answer}}
scoring:
  scorer: exact
  correct: {correct}
{extra}models:
  m: {{provider: vllm, api_base: "http://127.0.0.1:1/v1", base_model: b}}
"""


def _rule_suite(correct, output="{type: text}", extra=""):
    return RULE_SUITE.format(correct=correct, output=output, extra=extra)


@pytest.mark.parametrize("rule_file, correct, message", [
    ("def other(a, t, s):\n    return True\n", '"rules.py:right"', r"rules.py has no function 'right'"),
    ("def right(a, t):\n    return True\n", '"rules.py:right"', r"'right' must accept 3 positional arguments"),
])
def test_custom_rule_problems_fail_at_prepare_with_file_and_line(make_suite, tmp_path, rule_file, correct, message):
    if rule_file is not None:
        (tmp_path / "rules.py").write_text(rule_file)
    path = make_suite(_rule_suite(correct), rows=[{"id": 1, "q": "x", "answer": 7}])
    with pytest.raises(ConfigError, match=message) as info:
        SampleScorer(load_suite(path))
    assert str(info.value).startswith(f"{path.resolve()}:9: scoring.correct: ")


def test_a_missing_rule_file_fails_at_load_and_the_rule_file_is_hashed(make_suite, tmp_path):
    path = make_suite(_rule_suite('"missing.py:right"'), rows=[{"id": 1, "q": "x", "answer": 7}])
    with pytest.raises(ConfigError, match=r"referenced file not found: .*missing.py"):
        load_suite(path)
    (tmp_path / "missing.py").write_text("def right(a, t, s):\n    return True\n")
    before = load_suite(path).content_hash()
    (tmp_path / "missing.py").write_text("def right(a, t, s):\n    return False\n")
    assert load_suite(path).content_hash() != before  # editing the rule changes the suite's identity


@pytest.mark.parametrize("correct, output, message, line", [
    ("{scorer: json_fields, fields: [carrier]}", "{type: text}", r"'json_fields' needs output type 'json'", 9),
    ("label_match", "{type: json}", r"'label_match' compares labels", 9),
    ("numeric", "{type: json}", r"'numeric' on a JSON answer needs 'field", 9),
])
def test_rules_the_output_cannot_support_fail_at_prepare(make_suite, tmp_path, correct, output, message, line):
    path = make_suite(_rule_suite(correct, output), rows=[{"id": 1, "q": "x", "answer": 7}])
    with pytest.raises(ConfigError, match=message) as info:
        SampleScorer(load_suite(path))
    assert str(info.value).startswith(f"{path.resolve()}:{line}: ")


@pytest.mark.parametrize("correct, message", [
    ("json_fields", r"needs its own 'fields"),
    ("exactly", r"'exactly' is neither a built-in rule"),
    ("{scorer: exact, fields: [a]}", r"'fields' applies to the correct rule 'json_fields'"),
    ("{scorer: label_match, tolerance: 1}", r"'tolerance' applies to the correct rule 'numeric'"),
])
def test_malformed_rules_fail_at_load_with_line(make_suite, tmp_path, correct, message):
    path = make_suite(_rule_suite(correct), rows=[{"id": 1, "q": "x", "answer": 7}])
    with pytest.raises(ConfigError, match=message) as info:
        load_suite(path)
    assert ":9: scoring.correct" in str(info.value)


def test_rule_that_raises_or_returns_a_non_bool_makes_the_answer_wrong_and_says_why(make_suite, tmp_path):
    (tmp_path / "rules.py").write_text("def boom(a, t, s):\n    raise KeyError('carrier')\n\n"
                                       "def maybe(a, t, s):\n    return 'yes'\n")
    scorer, rendered = _scorer(make_suite, tmp_path, _rule_suite('"rules.py:boom"'))
    score = scorer.score(rendered, Completion(text="7"))
    assert (score.quality, score.correct) == (1.0, False)
    assert score.score_error == "correct rule rules.py:boom raised KeyError: 'carrier'"
    scorer, rendered = _scorer(make_suite, tmp_path, _rule_suite('"rules.py:maybe"'))
    score = scorer.score(rendered, Completion(text="7"))
    assert score.correct is False and "returned 'yes'; it must return a bool" in str(score.score_error)


def test_numpy_bool_counts_and_infeasible_is_wrong_overrides_the_rule(make_suite, tmp_path):
    (tmp_path / "rules.py").write_text("import numpy as np\n\ndef yes(a, t, s):\n    return np.bool_(True)\n\n"
                                       "def never_fits(a, s):\n    return ['too heavy']\n")
    scorer, rendered = _scorer(make_suite, tmp_path, _rule_suite('"rules.py:yes"'))
    assert scorer.score(rendered, Completion(text="3")).correct is True  # the rule decides, not quality 0
    for strict, expected in (("true", False), ("false", True)):
        extra = f"  feasibility: [rules.py:never_fits]\n  infeasible_is_wrong: {strict}\n"
        path = make_suite(_rule_suite('"rules.py:yes"', extra=extra), rows=[{"id": 1, "q": "x", "answer": 7}],
                          name=f"s{strict}.yaml")
        s = SampleScorer(load_suite(path)).score(rendered, Completion(text="7"))
        assert (s.feasible, s.correct) == (False, expected), strict


def test_validate_reports_a_bad_rule_with_file_line_and_exit_2(make_suite, tmp_path):
    from click.testing import CliRunner

    from evalkit.cli import main

    (tmp_path / "rules.py").write_text("def right(answer, target):\n    return True\n")
    path = make_suite(_rule_suite('"rules.py:right"'), rows=[{"id": 1, "q": "x", "answer": 7}])
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert (f"{path.resolve()}:9: scoring.correct: 'rules.py:right': 'right' must accept 3 positional arguments"
            in result.stderr)


@pytest.mark.slow
def test_a_rule_that_hangs_is_stopped_by_scoring_timeout_s(make_suite, tmp_path):
    """The correct rule is suite code like a scorer: it runs under scoring.timeout_s and a hang is a score
    error naming it, not a stuck run."""
    (tmp_path / "rules.py").write_text("import time\n\ndef slow(a, t, s):\n    time.sleep(60)\n    return True\n")
    scorer, rendered = _scorer(make_suite, tmp_path, _rule_suite('"rules.py:slow"', extra="  timeout_s: 0.5\n"))
    score = scorer.score(rendered, Completion(text="7"))
    assert score.correct is False
    assert "rules.py:slow" in str(score.score_error) and "timed out after 0.5 s" in str(score.score_error)
