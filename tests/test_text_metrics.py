"""Text metrics (token_f1, rouge_l, chrf) against independent implementations, and end to end: stored per
row, summarised with CIs, compared pairwise and gated, on the summaries example over the dev server."""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from pathlib import Path

import pytest

from evalkit.analysis.gates import evaluate
from evalkit.analysis.paired import Side, pair, paired_deltas
from evalkit.config.loader import load_suite
from evalkit.engine.runner import run_suite
from evalkit.errors import ConfigError
from evalkit.scoring.text_metrics import chrf, normalize_answer, rouge_l, text_scores, token_f1
from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import RuleResponder

ROOT = Path(__file__).resolve().parents[1]


# The official SQuAD v1.1 evaluation script (evaluate-v1.1.py), copied as it is.
def squad_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def squad_f1_score(prediction, ground_truth):
    prediction_tokens = squad_normalize_answer(prediction).split()
    ground_truth_tokens = squad_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


PAIRS = [
    ("The cat sat on the mat.", "A cat sat on a mat"),
    ("Paris", "paris!"),
    ("the the the", "the"),
    ("Barack Obama was president", "President Obama"),
    ("Denver Broncos", "Carolina Panthers"),
    ("", "something"),
    ("an apple, an orange and a pear", "apple orange pear banana"),
    ("Ünïcode café — naïve", "unicode cafe naive"),
    ("Order 4471 never arrived.", "Order 4471 is marked delivered but never arrived; customer asks to check."),
    ("x y x y x", "y x y"),
]


@pytest.mark.parametrize("prediction, reference", PAIRS)
def test_token_f1_is_the_official_squad_v11_f1(prediction, reference):
    assert normalize_answer(prediction) == squad_normalize_answer(prediction)
    assert token_f1(prediction, reference) == pytest.approx(squad_f1_score(prediction, reference), abs=1e-12)


def test_token_f1_agrees_with_transformers_squad_metrics_where_both_texts_have_tokens():
    squad_metrics = pytest.importorskip("transformers.data.metrics.squad_metrics")
    for prediction, reference in PAIRS:
        if normalize_answer(prediction) and normalize_answer(reference):
            assert token_f1(prediction, reference) == pytest.approx(squad_metrics.compute_f1(reference, prediction))


@pytest.mark.parametrize("prediction, reference", PAIRS)
def test_rouge_l_is_rouge_score_and_chrf_is_sacrebleu(prediction, reference):
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import CHRF

    expected = rouge_scorer.RougeScorer(["rougeL"]).score(reference, prediction)["rougeL"].fmeasure
    assert rouge_l(prediction, reference) == pytest.approx(expected, abs=1e-12)
    assert chrf(prediction, reference) == pytest.approx(CHRF().sentence_score(prediction, [reference]).score / 100)
    scores = text_scores(prediction, reference)
    assert scores is not None and all(0.0 <= v <= 1.0 for v in scores.values())


def test_hand_computed_values():
    # LCS of "the cat sat on the mat" and "the cat on a mat": the cat on mat (4); P = 4/6, R = 4/5
    assert rouge_l("the cat sat on the mat", "the cat on a mat") == pytest.approx(2 * (4 / 6) * (4 / 5) / (4 / 6 + 4 / 5))
    # tokens after normalisation: [cat, sat, on, mat] vs [cat, mat]: 2 shared, P = 2/4, R = 1
    assert token_f1("The cat sat on the mat", "a cat, a mat") == pytest.approx(2 / 3)
    assert chrf("same text", "same text") == pytest.approx(1.0) and token_f1("same", "same") == 1.0
    assert text_scores(None, "x") is None and text_scores("x", None) is None


def test_text_scorers_need_text_output(make_suite, email_rows):
    from conftest import LABEL_SUITE

    text = LABEL_SUITE.format(base="http://127.0.0.1:9/v1").replace("target:\n  field: label\n",
                                                                    "target:\n  field: label\nscoring: {scorer: chrf}\n")
    with pytest.raises(ConfigError, match="scorer 'chrf' compares text with a reference: it needs output type 'text'"):
        load_suite(make_suite(text, rows=email_rows))


@pytest.fixture
def summaries_server():
    with DevServer(RuleResponder.from_file(ROOT / "suites" / "summaries" / "standin_models.yaml"), latency_ms=1) as srv:
        yield srv


@pytest.mark.slow
def test_summaries_example_stores_scores_per_row_and_reports_gates_on_them(summaries_server, monkeypatch, tmp_path):
    monkeypatch.setenv("EVALKIT_SUMMARIES_BASE", summaries_server.url)
    loaded = load_suite(ROOT / "suites" / "summaries" / "suite.yaml")
    db = tmp_path / "s.duckdb"
    summary = run_suite(loaded, str(db))
    with Store(db) as store:
        rows = store.dicts("SELECT r.model, r.output, r.quality, r.text_scores, s.target FROM results r "
                           "JOIN samples s USING (run_id, sample_id) WHERE r.run_id = ?", [summary.run_id])
        assert len(rows) == 24
        for r in rows:
            stored = json.loads(r["text_scores"])
            reference = json.loads(r["target"]) if r["target"].startswith('"') else r["target"]
            assert stored == pytest.approx({"token_f1": token_f1(r["output"], reference),
                                            "rouge_l": rouge_l(r["output"], reference),
                                            "chrf": chrf(r["output"], reference)})
            assert r["quality"] == pytest.approx(stored["rouge_l"])  # scoring.scorer: rouge_l
        metrics = {(m["model"], m["metric"]): m for m in summary.metrics}
        for name in ("token_f1", "rouge_l", "chrf"):
            front, tuned = metrics[("frontier", name)], metrics[("tuned", name)]
            own = [json.loads(r["text_scores"])[name] for r in rows if r["model"] == "tuned"]
            assert tuned["value"] == pytest.approx(sum(own) / len(own))
            assert tuned["ci_low"] <= tuned["value"] <= tuned["ci_high"] and front["value"] > tuned["value"]
        pairing = pair(store, Side(summary.run_id, "frontier"), Side(summary.run_id, "tuned"))
        deltas = paired_deltas(pairing)
        for name in ("token_f1", "rouge_l", "chrf"):
            d = deltas[name]
            assert d.delta == pytest.approx(metrics[("tuned", name)]["value"] - metrics[("frontier", name)]["value"])
            assert d.ci_high < 0  # the terse stand-in is worse on every one of them
        verdicts = {g["metric"]: g["verdict"] for g in evaluate(store, pairing, loaded.suite.gates.rules)["gates"]}
    assert verdicts == {"rouge_l": "fail", "chrf": "fail", "token_f1": "pass"}
