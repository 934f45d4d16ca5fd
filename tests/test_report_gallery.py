"""The worst-5% gallery's order, the tail5 note on 0/1-quality tasks, and the warning for a confidence
source that yields nothing (end of `evalkit run`, the report, and gates on calibration metrics)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import LABEL_SUITE, TEST_KEY

from evalkit.cli import main
from evalkit.config.loader import load_suite
from evalkit.engine.runner import run_suite
from evalkit.report import write_report
from evalkit.report.gallery import order_worst, tail5_note
from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import RuleResponder


def test_order_is_quality_then_confident_error_then_calibration_never_id():
    rows = pd.DataFrame({
        "sample_id": ["a", "b", "c", "d", "e", "f", "g"],
        "status": ["ok", "ok", "ok", "error", "ok", "ok", "ok"],
        "quality": [0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 0.0],
        "correct": [False, False, False, False, False, True, False],
        "confidence": [0.3, 0.95, np.nan, np.nan, 0.99, 0.2, np.nan],
    })
    others = pd.DataFrame({"sample_id": ["c", "g"], "correct": [False, True]})
    order = list(order_worst(rows, others)["sample_id"])
    # quality 0 first: confidently wrong (b 0.95, a 0.3), then no confidence: answered and solved by the others (g)
    # before answered and unsolved (c), failed calls last (d); then quality 0.5 (e) and 1.0 (f)
    assert order == ["b", "a", "g", "c", "d", "e", "f"]


def test_the_tail5_note_only_where_tail5_is_zero_because_quality_is_binary():
    wrong_10 = pd.DataFrame({"quality": [0.0] * 10 + [1.0] * 90})
    assert "quality is 0 or 1 on this task" in str(tail5_note(wrong_10))
    assert tail5_note(pd.DataFrame({"quality": [0.0] * 2 + [1.0] * 98})) is None  # tail5 = 0.5, not 0
    assert tail5_note(pd.DataFrame({"quality": [0.0] * 10 + [0.5] * 90})) is None  # graded quality


def _emails(n: int = 40):
    rows = []
    for i in range(n):
        tag = "ALPHA" if i in (30, 33) else "BETA" if i in (1, 3) else ""
        spam = i % 2 == 1 or bool(tag)
        rows.append({"id": f"m{i:02d}", "subject": f"{'WANTSPAM ' if spam else ''}{tag} note {i}",
                     "body": "text", "label": "spam" if spam else "ham", "slice": "all"})
    return rows


RULES = {"models": {
    "frontier": {"rules": [{"pattern": "WANTSPAM", "reply": "spam", "confidence": 0.9}],
                 "default": {"reply": "ham", "confidence": 0.9}},
    "tuned": {"rules": [{"pattern": "ALPHA", "reply": "ham", "confidence": 0.97},   # confidently wrong
                        {"pattern": "BETA", "reply": "ham", "confidence": 0.55},    # unsure and wrong
                        {"pattern": "WANTSPAM", "reply": "spam", "confidence": 0.9}],
              "default": {"reply": "ham", "confidence": 0.9}}}}


def _cells(html: str, attribute: str, model: str) -> list[str]:
    return re.findall(rf'<tr {attribute}="{model}" data-sample="([^"]+)"', html)


@pytest.mark.slow
def test_report_gallery_shows_the_confidently_wrong_first_and_explains_tail5(make_suite, tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    with DevServer(RuleResponder.from_dict(RULES), api_key=TEST_KEY) as server:
        loaded = load_suite(make_suite(LABEL_SUITE.format(base=server.url), rows=_emails()))
        summary = run_suite(loaded, str(tmp_path / "r.duckdb"))
    out = tmp_path / "r.html"
    with Store(tmp_path / "r.duckdb", read_only=True) as store:
        write_report(store, summary.run_id, out)
    html = out.read_text()
    # 4 wrong of 40: the worst 5% is 2 rows, all quality 0; id order would show m01, m03 (the unsure ones)
    assert _cells(html, "data-worst", "tuned") == ["m30", "m33"]
    assert 'data-tail5-note="tuned"' in html and "see tail5_brier" in html
    assert 'data-metric="tail5_brier" data-model="tuned"' in html
    assert 'data-metric="confident_error_rate" data-model="tuned"' in html
    assert "data-confidence-warning" not in html  # both models gave confidences


JSON_SUITE = """
evalkit: 1
name: certain
dataset: {{path: data.jsonl}}
prompt: {{user: "Classify: {{{{ subject }}}}"}}
output: {{type: json}}
target: {{field: answer}}
scoring: {{scorer: json_fields, fields: [label]}}
confidence: {{source: field, field: certainty}}
models:
  frontier: {{provider: litellm, model: openai/frontier, api_base: {base}, params: {{max_tokens: 40}}}}
  tuned: {{provider: litellm, model: openai/tuned, api_base: {base}, params: {{max_tokens: 40}}}}
run: {{bootstrap: 50}}
gates:
  baseline: frontier
  candidate: tuned
  rules:
    - {{metric: brier, max_rise: 0.02}}
    - {{metric: confident_error_rate, max: 0.1}}
    - {{metric: accuracy, max_drop: 0.1}}
"""


@pytest.mark.slow
def test_a_confidence_field_the_model_never_writes_warns_and_gates_answer_error(make_suite, tmp_path):
    rows = [{"id": f"c{i}", "subject": f"s{i}", "answer": {"label": "ham"}} for i in range(12)]
    replies = {"models": {"frontier": {"default": {"reply": '{"label": "ham", "certainty": 0.9}'}},
                          "tuned": {"default": {"reply": '{"label": "ham", "confidence": 0.9}'}}}}
    with DevServer(RuleResponder.from_dict(replies)) as server:
        path = make_suite(JSON_SUITE.format(base=server.url), rows=rows)
        db = str(tmp_path / "r.duckdb")
        result = CliRunner().invoke(main, ["run", str(path), "--db", db, "--quiet"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: model 'tuned' gave no confidence on any of its 12 successful rows "
                        "(confidence.source: field, field: 'certainty'): brier, ece, tail5_brier and "
                        "confident_error_rate have no value; check that the model writes 'certainty' "
                        "(a number in [0, 1] or 0-100) in its JSON answer"]
    gate = CliRunner().invoke(main, ["gate", str(path), "--db", db, "--json"])
    report = json.loads(gate.stdout)
    by = {g["metric"]: g for g in report["gates"]}
    for metric in ("brier", "confident_error_rate"):
        assert by[metric]["verdict"] == "error"
        assert "model 'tuned' gave no confidence on any of its 12 successful rows" in by[metric]["reason"]
    assert by["accuracy"]["verdict"] == "pass" and gate.exit_code == 1
    out = tmp_path / "r.html"
    assert CliRunner().invoke(main, ["report", "latest", "--db", db, "-o", str(out)]).exit_code == 0
    html = out.read_text()
    assert html.count("data-confidence-warning") == 1 and "field: &#39;certainty&#39;" in html
