"""Gating a stored run needs the store, not the models: the suite's ${VAR} endpoints may be unset."""

from __future__ import annotations

from click.testing import CliRunner
from conftest import LABEL_SUITE, TEST_KEY

from evalkit.cli import main
from evalkit.config.loader import load_suite
from evalkit.engine.runner import run_suite

GATES = "gates:\n  baseline: frontier\n  candidate: tuned\n  rules:\n    - {metric: accuracy, max_drop: 0.5}\n"


def test_gate_on_a_stored_run_does_not_need_the_suites_variables(make_suite, email_rows, triage_server,
                                                                  tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    monkeypatch.setenv("EVALKIT_GATE_BASE", triage_server.url)
    text = LABEL_SUITE.format(base="${EVALKIT_GATE_BASE}") + GATES
    path = make_suite(text, rows=email_rows)
    db = str(tmp_path / "g.duckdb")
    run_id = run_suite(load_suite(path), db).run_id
    monkeypatch.delenv("EVALKIT_GATE_BASE")
    monkeypatch.delenv("EVALKIT_TEST_KEY")
    result = CliRunner().invoke(main, ["gate", str(path), "--run", run_id, "--db", db])
    assert result.exit_code == 0, result.output
    assert "pass" in result.stdout.lower()
    result = CliRunner().invoke(main, ["gate", str(path), "--db", db])  # the latest run of the suite
    assert result.exit_code == 0, result.output
    # Running first does need them, and says so.
    result = CliRunner().invoke(main, ["gate", str(path), "--run-first", "--db", db])
    assert result.exit_code == 2 and "EVALKIT_GATE_BASE is not set" in result.stderr, result.output
