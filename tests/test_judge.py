"""The LLM judge's pure parts: verdicts read strictly (an unreadable one is an error, never a 0), scales
mapped to [0, 1], people's scores read, the suite keys checked, and the agreement statistics checked against
a hand-computed kappa, scikit-learn's cohen_kappa_score and scipy's spearmanr."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from evalkit.analysis.judge_metrics import agreement_rows, dense_codes, kappa_rows, spearman_rows
from evalkit.config.judge_spec import JudgeSpec
from evalkit.config.loader import load_suite
from evalkit.errors import ConfigError
from evalkit.scoring.judge import human_score, read_pairwise, read_pointwise
from evalkit.scoring.prepare import prepare
from evalkit.testing.judge import JudgeResponder, Raw

FIVE = JudgeSpec(model="m", rubric="r", scale=[1, 5])
PASS_FAIL = JudgeSpec(model="m", rubric="r", scale="pass_fail")


@pytest.mark.parametrize("raw, score, verdict", [
    ('{"reasoning": "fine", "score": 5}', 1.0, "5"),
    ('{"reasoning": "meh", "score": 3}', 0.5, "3"),
    ('Here you go:\n```json\n{"reasoning": "ok", "score": 2}\n```', 0.25, "2"),
    ('{"score": "4", "reasoning": null}', 0.75, "4"),
])
def test_pointwise_verdicts_map_the_scale_linearly(raw, score, verdict):
    read = read_pointwise(FIVE, raw)
    assert read.error is None and read.score == pytest.approx(score) and read.verdict == verdict


@pytest.mark.parametrize("raw, message", [
    ("I would say it is good", "judge reply is not a JSON object"),
    ('{"reasoning": "no score here"}', "judge reply has no 'score'"),
    ('{"reasoning": "x", "score": 7}', "judge score 7 is not on the scale"),
    ('{"reasoning": "x", "score": 3.5}', "judge score 3.5 is not on the scale"),
    ('{"reasoning": "x", "score": true}', "judge score True is not on the scale"),
])
def test_unreadable_pointwise_verdicts_are_errors_not_zero(raw, message):
    read = read_pointwise(FIVE, raw)
    assert read.score is None and read.error is not None and read.error.startswith(message)


def test_pass_fail_verdicts():
    assert read_pointwise(PASS_FAIL, '{"reasoning": "", "score": "pass"}').score == 1.0
    assert read_pointwise(PASS_FAIL, '{"reasoning": "", "score": "FAIL"}').score == 0.0
    assert read_pointwise(PASS_FAIL, '{"reasoning": "", "score": true}').score == 1.0
    assert read_pointwise(PASS_FAIL, '{"reasoning": "", "score": 1}').error is not None


def test_pairwise_verdicts_are_read_from_the_candidates_slot():
    a_wins = '{"reasoning": "A is better", "winner": "A"}'
    assert read_pairwise(a_wins, "A").score == 1.0 and read_pairwise(a_wins, "B").score == 0.0
    assert read_pairwise('{"reasoning": "", "winner": "tie"}', "B").score == 0.5
    assert read_pairwise('{"reasoning": "", "winner": "C"}', "A").error.startswith("judge reply has no winner")


def test_human_scores_are_read_on_the_judges_scale():
    assert human_score(FIVE, 4) == 0.75 and human_score(FIVE, None) is None and human_score(FIVE, "") is None
    assert human_score(PASS_FAIL, "pass") == 1.0 and human_score(PASS_FAIL, 0) == 0.0
    assert human_score(PASS_FAIL, "yes") == 1.0
    with pytest.raises(ValueError, match="not a point of the judge's scale"):
        human_score(FIVE, 6)


def test_kappa_against_a_hand_computed_case():
    judge = np.array([1, 1, 0, 0, 1, 0, 1, 1, 0, 1], dtype=float)
    people = np.array([1, 0, 0, 0, 1, 1, 1, 1, 0, 0], dtype=float)
    # by hand: observed agreement 7/10; chance 0.6·0.5 + 0.4·0.5 = 0.5; kappa = (0.7 − 0.5) / (1 − 0.5) = 0.4
    assert kappa_rows(judge[None, :], people[None, :])[0] == pytest.approx(0.4)
    assert agreement_rows(judge[None, :], people[None, :])[0] == pytest.approx(0.7)
    constant = np.ones(5)
    assert np.isnan(kappa_rows(constant[None, :], constant[None, :])[0])  # chance agreement 1: undefined


@pytest.mark.slow  # importing scikit-learn takes over a second on two loaded cores
def test_kappa_against_sklearn():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(3)
    for _ in range(20):
        j = rng.integers(0, 2, 40).astype(float)
        h = np.where(rng.random(40) < 0.7, j, 1 - j)
        assert kappa_rows(j[None, :], h[None, :])[0] == pytest.approx(cohen_kappa_score(j, h))


def test_spearman_with_ties_against_scipy():
    rng = np.random.default_rng(7)
    for _ in range(20):
        j = rng.integers(1, 6, 30).astype(float)
        h = np.clip(j + rng.integers(-1, 2, 30), 1, 5).astype(float)
        assert spearman_rows(j[None, :], h[None, :])[0] == pytest.approx(spearmanr(j, h).statistic)
    continuous = rng.random((3, 25))  # not codes: ranked by sorting
    people = rng.random((3, 25))
    assert spearman_rows(continuous, people) == pytest.approx(
        [spearmanr(a, b).statistic for a, b in zip(continuous, people)])
    assert spearman_rows(dense_codes(j)[None, :], dense_codes(h)[None, :])[0] == pytest.approx(spearmanr(j, h).statistic)
    both = np.stack([rng.integers(1, 6, 30).astype(float) for _ in range(4)])
    other = np.stack([rng.integers(1, 6, 30).astype(float) for _ in range(4)])
    assert spearman_rows(both, other) == pytest.approx([spearmanr(a, b).statistic for a, b in zip(both, other)])


def test_the_dev_server_judge_scripts_verdicts_by_the_answer():
    judge = JudgeResponder([("refund", 5), ("GARBLE", Raw("no idea")), ("contact support", 2)], default=4,
                           judge_model="j", tie_goes_to="A")
    ask = lambda text: judge({"model": "j", "messages": [{"role": "user", "content": text}]}).text  # noqa: E731
    assert json.loads(ask("<input>\nrefund please\n</input>\n<answer>\nsure\n</answer>"))["score"] == 4
    assert json.loads(ask("<answer>\nA refund is on its way\n</answer>"))["score"] == 5
    assert ask("<answer>\nGARBLE\n</answer>") == "no idea"
    pair = "<answer_a>\nPlease contact support\n</answer_a>\n<answer_b>\nA refund\n</answer_b>"
    assert json.loads(ask(pair))["winner"] == "B"
    tie = "<answer_a>\nfine\n</answer_a>\n<answer_b>\nalso fine\n</answer_b>"
    assert json.loads(ask(tie))["winner"] == "A"  # the scripted position bias
    assert judge({"model": "other", "messages": [{"role": "user", "content": "hi"}]}).text == "hi"  # echo


SUITE = """
evalkit: 1
name: judged
dataset: {{path: data.jsonl}}
prompt: {{user: "{{{{ q }}}}"}}
output: {{type: text}}
scoring:
  scorer: {scorer}
{judge}
models:
  a: {{provider: litellm, model: openai/a, api_base: "http://127.0.0.1:9/v1"}}
"""


def _write(tmp_path, scorer="judge", judge="  judge: {model: openai/j, rubric: be helpful}", rows=None):
    rows = rows if rows is not None else [{"id": "1", "q": "hi", "human": 4}, {"id": "2", "q": "yo", "human": None}]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(scorer=scorer, judge=judge))
    return path


@pytest.mark.parametrize("scorer, judge, message", [
    ("judge", "", "scorer 'judge' needs 'judge: {model, rubric, ...}'"),
    ("exact", "  judge: {model: openai/j, rubric: r}", "'judge' is set but 'scorer' is not 'judge'"),
    ("judge", "  judge: {model: openai/j, rubric: r, scale: [5, 1]}", "scale must be [low, high]"),
    ("judge", "  judge: {model: openai/j, rubric: r, temperature: 0}", "temperature"),
])
def test_judge_keys_are_checked(tmp_path, scorer, judge, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("{", r"\{")):
        load_suite(_write(tmp_path, scorer, judge))


@pytest.mark.parametrize("judge, rows, message", [
    ("  judge: {model: openai/j, rubric: r, human: human}", [{"id": "1", "q": "x", "human": 9}],
     "sample '1': scoring.judge.human field 'human' holds 9, which is not a point"),
    ("  judge: {model: openai/j, rubric: r, human: people}", [{"id": "1", "q": "x"}],
     "sample '1' has no field 'people'"),
    ("  judge: {model: openai/j, rubric: r, reference: '{{ answer }}'}", [{"id": "1", "q": "x"}],
     "scoring.judge.reference uses a field the sample lacks"),
    ("  judge: {model: openai/j, rubric: r, pairwise: true}", [{"id": "1", "q": "x"}],
     "pairwise compares gates.candidate with gates.baseline"),
    ("  judge: {model: a, rubric: r, api_base: 'http://x/v1'}", [{"id": "1", "q": "x"}],
     "'a' is a suite model, whose own entry is used: remove api_base"),
    ("  judge: {model: openai/j, rubric: r, api_key_env: EVALKIT_NO_SUCH_KEY_VAR}", [{"id": "1", "q": "x"}],
     "EVALKIT_NO_SUCH_KEY_VAR is not set"),
])
def test_judge_problems_fail_before_any_call(tmp_path, judge, rows, message):
    loaded = load_suite(_write(tmp_path, judge=judge, rows=rows))
    with pytest.raises(Exception, match=message.replace("[", r"\[").replace("{", r"\{")) as caught:
        prepare(loaded)
    assert "scoring.judge" in str(caught.value) or "sample" in str(caught.value)


@pytest.mark.parametrize("threshold, correct", [(0.75, [True, False, False]), (None, [False, True, True])])
def test_judged_quality_is_written_into_results(tmp_path, threshold, correct):
    from evalkit.store import Store
    from evalkit.store.db import now

    with Store(tmp_path / "a.duckdb") as store:
        store.insert_results([{"run_id": "r", "model": "m", "sample_id": f"s{i}", "repeat": 0, "status": "ok",
                               "output": "x", "parsed": '"x"', "quality": 0.0, "correct": i > 0, "attempts": 1,
                               "cache_hit": False, "cache_key": f"k{i}", "created_at": now()} for i in range(3)])
        verdicts = [(1.0, None), (0.5, None), (None, "judge reply is not a JSON object: 'hm'")]
        store.insert_judgements([{"run_id": "r", "model": "m", "sample_id": f"s{i}", "repeat": 0, "kind": "pointwise",
                                  "pair_order": "-", "judge_model": "j", "status": "error" if e else "ok", "score": s,
                                  "error": e, "cache_hit": False, "cache_key": f"j{i}", "created_at": now()}
                                 for i, (s, e) in enumerate(verdicts)])
        store.apply_judgements("r", "m", threshold)  # None: a scoring.correct rule decided correctness
        rows = store.sql("SELECT quality, correct, score_error FROM results ORDER BY sample_id")
    assert [r[0] for r in rows] == [1.0, 0.5, 0.0]
    assert [r[1] for r in rows] == correct
    assert [r[2] for r in rows] == [None, None, "judge reply is not a JSON object: 'hm'"]
