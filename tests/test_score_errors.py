"""Score errors are said: summarised at the end of a run (exit 0), listed in the report, and a gate on a
quality-derived metric answers error when more rows than scoring.max_score_errors have one."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import LABEL_SUITE, TEST_KEY, TRIAGE_RULES, write_jsonl

from evalkit.analysis.score_errors import group_of
from evalkit.cli import main
from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import RuleResponder

SCORER = '''
def quality(output, target, sample):
    if sample["slice"] == "spam":
        raise ValueError("cannot score spam for " + sample["id"])
    return output == target
'''


def _suite(tmp_path, server, max_score_errors=None):
    text = LABEL_SUITE.format(base=server.url).replace("target:\n  field: label\n", (
        "target:\n  field: label\nscoring:\n  scorer: custom\n  custom: scorer.py:quality\n"
        + (f"  max_score_errors: {max_score_errors}\n" if max_score_errors is not None else "")))
    text += "gates:\n  baseline: frontier\n  candidate: tuned\n  rules:\n    - {metric: accuracy, max_drop: 0.5}\n" \
            "    - {metric: latency_ms_p95, max: 100000}\n"
    (tmp_path / "scorer.py").write_text(SCORER)
    path = tmp_path / "suite.yaml"
    path.write_text(text.lstrip())
    return path


@pytest.mark.slow
@pytest.mark.parametrize("allowed", [None, 10])
def test_score_errors_are_summarised_and_gate_quality_metrics(tmp_path, email_rows, monkeypatch, allowed):
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    write_jsonl(tmp_path / "data.jsonl", email_rows)
    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY) as server:
        suite = _suite(tmp_path, server, allowed)
        db = str(tmp_path / "s.duckdb")
        ran = CliRunner().invoke(main, ["run", str(suite), "--db", db, "--quiet"])
    assert ran.exit_code == 0, ran.output
    warnings = [line for line in ran.stderr.splitlines() if line.startswith("warning: score errors:")]
    assert sorted(warnings) == [
        "warning: score errors: 3 row(s) of frontier: scorer scorer.py:quality raised ValueError "
        "(e.g. scorer scorer.py:quality raised ValueError: cannot score spam for e2)",
        "warning: score errors: 3 row(s) of tuned: scorer scorer.py:quality raised ValueError "
        "(e.g. scorer scorer.py:quality raised ValueError: cannot score spam for e2)"]
    gated = CliRunner().invoke(main, ["gate", str(suite), "--db", db, "--json"])
    verdicts = {g["metric"]: g for g in json.loads(gated.stdout)["gates"]}
    if allowed is None:  # default 0: accuracy cannot be trusted, latency still can
        assert gated.exit_code == 1
        assert verdicts["accuracy"]["verdict"] == "error"
        assert "has 3 row(s) with score errors, more than scoring.max_score_errors (0)" in verdicts["accuracy"]["reason"]
    else:
        assert verdicts["accuracy"]["verdict"] != "error"
    assert verdicts["latency_ms_p95"]["verdict"] == "pass"
    out = tmp_path / "r.html"
    reported = CliRunner().invoke(main, ["report", "latest", "--db", db, "-o", str(out)])
    assert reported.exit_code == 0, reported.output
    html = out.read_text()
    assert 'id="score-errors"' in html and "scorer scorer.py:quality raised ValueError" in html


@pytest.mark.parametrize("message, group", [
    ("scorer s.py:q raised ValueError: x; y", "scorer s.py:q raised ValueError"),
    ("feasibility check c.py:slow timed out after 10 s", "feasibility check c.py:slow timed out after 10 s"),
    ("scorer s.py:q returned 2.0 (outside [0, 1]); it must return", "scorer s.py:q returned a value outside [0, 1]"),
    ("scorer s.py:q returned nan (not a number); it must", "scorer s.py:q returned a value not a number"),
    ("feasibility check c.py:f returned NoneType None, not a list", "feasibility check c.py:f returned a NoneType"),
])
def test_messages_group_by_function_and_error_type(message, group):
    assert group_of(message) == group
