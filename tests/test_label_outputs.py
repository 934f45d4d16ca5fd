"""Multi-label answers (output.type: labels), target classes, and classification end to end on the dev server:
the spam triage's report shows missed spam against false alarms; show --json and the confusion view agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import LABEL_SUITE, TEST_KEY
from sklearn.metrics import confusion_matrix

from evalkit.config.loader import load_suite
from evalkit.engine.runner import run_suite
from evalkit.errors import ConfigError
from evalkit.report import write_report
from evalkit.scoring.builtin import label_match
from evalkit.scoring.labels import label_class, label_classes, parse_labels
from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import RuleResponder

TAGS = ["refund", "mobile", "urgent"]


@pytest.mark.parametrize(("text", "expected"), [
    ('["mobile", "refund"]', ["refund", "mobile"]),          # JSON list, kept in the suite's label order
    ('Tags:\n```json\n["Urgent"]\n```', ["urgent"]),          # fenced, case-insensitive
    ("refund, mobile", ["refund", "mobile"]),                 # comma-separated
    ("urgent; refund\nrefund", ["refund", "urgent"]),         # semicolons, new lines, a duplicate
    ("[]", []),                                               # the empty set is an answer
    ("Refund.", ["refund"]),
])
def test_multi_label_answers_parse(text: str, expected: list[str]):
    parsed = parse_labels(text, TAGS)
    assert parsed.error is None and parsed.value == expected


@pytest.mark.parametrize(("text", "why"), [
    ("", "empty answer"), ("refund, billing", "'billing' is not one of"), ('["refund", 3]', "not a label"),
    ("none", "'none' is not one of"), (" , ", "no label"),
])
def test_invalid_multi_label_answers_say_why(text: str, why: str):
    parsed = parse_labels(text, TAGS)
    assert parsed.value is None and parsed.error is not None and why in parsed.error


def test_target_classes_use_the_suites_spelling():
    assert label_class(" SPAM ", ["ham", "Spam"]) == "Spam"
    assert label_class("unknown", ["ham", "spam"]) == "unknown"  # a class of its own
    assert label_class("Spam", ["ham", "spam"], case_sensitive=True) == "Spam"
    assert label_classes("Mobile, refund", TAGS) == ["refund", "mobile"]
    assert label_classes(["urgent", "other"], TAGS) == ["urgent", "other"]
    assert label_classes([], TAGS) == [] and label_classes(None, TAGS) is None


def test_label_match_on_a_label_list_is_the_jaccard_and_exact_match_is_correct():
    assert label_match(["refund", "mobile"], ["mobile", "refund"]) == 1.0
    assert label_match(["refund"], ["refund", "mobile"]) == 0.5
    assert label_match([], []) == 1.0 and label_match([], ["refund"]) == 0.0
    assert label_match(["refund"], "Refund, urgent") == 0.5  # a text target is split like an answer


def test_labels_output_needs_labels(make_suite):
    base = LABEL_SUITE.format(base="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="output type 'labels' needs 'labels"):
        load_suite(make_suite(base.replace("type: label\n  labels: [ham, spam]", "type: labels"), rows=[]))
    with pytest.raises(ConfigError, match="only applies to output types 'label' and 'labels'"):
        load_suite(make_suite(base.replace("type: label\n", "type: text\n"), rows=[]))


@pytest.fixture
def triage_run(make_suite, email_rows, tmp_path, monkeypatch):
    """The conftest triage suite on the dev server: the tuned stand-in calls the invoice spam (a false alarm),
    and misses the cruise (answering 'not sure': invalid)."""
    rules = {"models": {
        "frontier": {"rules": [{"pattern": "FREE|meds|won", "reply": "spam"}], "default": {"reply": "ham"}},
        "tuned": {"rules": [{"pattern": "CRUISE", "reply": "not sure"},
                            {"pattern": "meds|won|Invoice", "reply": "spam"}], "default": {"reply": "ham"}}}}
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    with DevServer(RuleResponder.from_dict(rules), api_key=TEST_KEY) as server:
        gates = ("gates:\n  baseline: frontier\n  candidate: tuned\n  rules:\n"
                 "    - {metric: macro_f1, max_drop: 0.5}\n")
        text = LABEL_SUITE.format(base=server.url).replace("source: logprobs", "source: none") + gates
        loaded = load_suite(make_suite(text, rows=email_rows))
        summary = run_suite(loaded, str(tmp_path / "r.duckdb"))
    return tmp_path / "r.duckdb", summary.run_id, email_rows


@pytest.mark.slow  # a run of two models on the dev server, and a report: ~3 s
def test_spam_triage_report_shows_missed_spam_and_false_alarms(triage_run, tmp_path: Path):
    db, run_id, rows = triage_run
    with Store(db, read_only=True) as store:
        html = write_report(store, run_id, tmp_path / "report.html").read_text()
        confusion = {(r["model"], r["target_label"], r["predicted_label"]): r["n"]
                     for r in store.dicts("SELECT * FROM confusion WHERE run_id = ?", [run_id])}
        metrics = {(m["model"], m["metric"]): m["value"] for m in store.metrics(run_id)}
        from evalkit.analysis.summary import run_payload

        payload = run_payload(store, run_id)
    # the confusion view, from SQL: tuned misses one spam (invalid) and raises one false alarm (the invoice)
    assert confusion[("tuned", "spam", "(invalid)")] == 1 and confusion[("tuned", "ham", "spam")] == 1
    assert confusion[("frontier", "spam", "spam")] == 3 and ("frontier", "ham", "spam") not in confusion
    block = payload["models"]["tuned"]["classification"]
    truth = [r["label"] for r in rows]
    answers = ["(invalid)" if "CRUISE" in r["subject"] else "spam" if any(
        k in r["subject"] + r["body"] for k in ("meds", "won", "Invoice")) else "ham" for r in rows]
    assert block["confusion"]["counts"] == confusion_matrix(truth, answers, labels=["ham", "spam", "(invalid)"])[:2].tolist()
    spam = next(c for c in block["per_class"] if c["label"] == "spam")
    assert (spam["missed"], spam["false_alarms"], spam["support"]) == (1, 1, 3)
    assert metrics[("tuned", "macro_f1")] < metrics[("frontier", "macro_f1")] == 1.0
    # the report: each model's matrix and the difference, the per-class table with misses and false alarms
    assert 'data-confusion="frontier"' in html and 'data-confusion="tuned"' in html
    assert "data-confusion-difference" in html and 'data-cell="ham|spam"' in html
    assert 'data-class="spam"' in html and 'data-false-alarms="1"' in html and 'data-missed="1"' in html
    assert 'data-gate="macro_f1"' in html


@pytest.mark.slow  # the example suites on the dev server: two runs of two models
def test_ticket_suites_run_and_gate_on_the_dev_server(tmp_path: Path, monkeypatch):
    from click.testing import CliRunner

    from evalkit.cli import main

    root = Path(__file__).resolve().parents[1]
    rules = RuleResponder.from_file(root / "suites" / "tickets" / "standin_models.yaml")
    monkeypatch.setenv("EVALKIT_TICKETS_KEY", TEST_KEY)
    db = str(tmp_path / "t.duckdb")
    with DevServer(rules, api_key=TEST_KEY) as server:
        monkeypatch.setenv("EVALKIT_TICKETS_BASE", server.url)
        for suite in ("router", "tagger"):
            path = str(root / "suites" / "tickets" / f"{suite}.yaml")
            limit = ["--limit", "80"] if suite == "tagger" else []  # the router's rarest classes need all 240
            ran = CliRunner().invoke(main, ["run", path, "--db", db, *limit, "--quiet"])
            assert ran.exit_code == 0, ran.output
            gate = CliRunner().invoke(main, ["gate", path, "--db", db, "--json"])
            verdicts = {g["metric"]: g["verdict"] for g in json.loads(gate.output)["gates"]}
            assert gate.exit_code == 1, gate.output
            if suite == "router":  # accuracy hides what macro-F1 shows: the rare classes the tuned model dropped
                assert verdicts["accuracy"] == "pass" and verdicts["macro_f1"] == "fail"
            else:
                assert verdicts["micro_f1"] == "fail" and verdicts["jaccard"] == "fail"
    with Store(db, read_only=True) as store:
        run = store.dicts("SELECT run_id FROM runs WHERE suite_name = 'ticket-tagger'")[0]["run_id"]
        tagged = store.dicts("SELECT s.target_label, r.parsed, r.schema_valid FROM results r JOIN samples s "
                             "USING (run_id, sample_id) WHERE run_id = ? AND model = 'tuned'", [run])
    order = [*TAGS, "enterprise"]  # the suite's labels: target classes come in this order
    assert all(json.loads(t["target_label"]) == sorted(json.loads(t["target_label"]), key=order.index) for t in tagged)
    assert any(not t["schema_valid"] for t in tagged)  # "none" is not a label


def test_gates_on_classification_metrics_need_a_label_output(make_suite):
    base = LABEL_SUITE.format(base="http://127.0.0.1:9/v1") + "gates:\n  rules:\n    - {metric: METRIC, max_drop: 0.1}\n"
    load_suite(make_suite(base.replace("METRIC", "macro_f1"), rows=[]))  # fine on a label output
    with pytest.raises(ConfigError, match="gate metric 'micro_f1' needs output type labels"):
        load_suite(make_suite(base.replace("METRIC", "micro_f1"), rows=[]))
    text = base.replace("METRIC", "weighted_f1").replace("type: label\n  labels: [ham, spam]", "type: text")
    with pytest.raises(ConfigError, match="'weighted_f1' needs output type label or labels .this suite's is 'text'"):
        load_suite(make_suite(text.replace("source: logprobs", "source: none"), rows=[]))
