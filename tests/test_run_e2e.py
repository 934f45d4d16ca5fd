"""End to end: the CLI runs a suite against a loopback OpenAI-protocol server through the real
LiteLLM and vLLM-client code paths, stores everything in a real DuckDB file, caches and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from conftest import LABEL_SUITE, TEST_KEY, run_cli

from evalkit.store import Store


@pytest.fixture
def suite_path(make_suite, email_rows, triage_server) -> Path:
    return make_suite(LABEL_SUITE.format(base=triage_server.url), rows=email_rows)


def test_run_scores_stores_and_reports_every_metric(suite_path, triage_server, cli_env, tmp_path):
    db = tmp_path / "e.duckdb"
    proc = run_cli(["run", str(suite_path), "--db", str(db), "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["format"] == "evalkit.show/1" and payload["run"]["status"] == "complete"
    frontier, tuned = payload["models"]["frontier"]["metrics"], payload["models"]["tuned"]["metrics"]
    assert frontier["accuracy"]["value"] == 1.0
    assert tuned["accuracy"]["value"] == pytest.approx(5 / 6)
    assert tuned["schema_valid_rate"]["value"] == 1.0 and tuned["error_rate"]["value"] == 0.0
    # confidence comes from the server's logprobs: 0.8 on spam answers and 0.7 on ham for 'tuned'
    expected_brier = ((1 - 0.8) ** 2 * 3 + (0 - 0.8) ** 2 + (1 - 0.7) ** 2 * 2) / 6
    assert tuned["brier"]["value"] == pytest.approx(expected_brier)
    assert frontier["ttft_ms_p50"]["value"] is not None  # streamed through LiteLLM
    assert tuned["ttft_ms_p50"]["value"] is None          # stream: false
    assert frontier["latency_ms_p95"]["value"] > 0
    assert frontier["completion_tokens"]["value"] == 6
    assert frontier["tail5"]["value"] == 1.0 and tuned["tail5"]["value"] == 0.0
    assert triage_server.counts == {"frontier": 6, "tuned": 6}
    # every request carried the key; the key itself never reached the store
    assert all(r.headers.get("authorization") == f"Bearer {TEST_KEY}" for r in triage_server.requests)
    assert TEST_KEY.encode() not in db.read_bytes()
    with Store(db, read_only=True) as store:
        rows = store.dicts("SELECT * FROM results ORDER BY model, sample_id")
        assert len(rows) == 12 and {r["status"] for r in rows} == {"ok"}
        wrong = [r for r in rows if not r["correct"]]
        assert [(r["model"], r["sample_id"], r["output"]) for r in wrong] == [("tuned", "e3", "spam")]
        assert json.loads(wrong[0]["request_params"])["max_tokens"] == 8
        run = store.get_run(payload["run"]["run_id"])
        assert run["n_samples"] == 6 and len(run["dataset_hash"]) == 64 and run["packages"]
        assert {m["model_ref"] for m in store.run_models(run["run_id"])} == {"openai/frontier", "tuned"}
        slices = store.sql("SELECT slice, count(*) FROM samples GROUP BY slice ORDER BY slice")
        assert slices == [("easy", 2), ("hard", 1), ("spam", 3)]


def test_rerun_of_unchanged_suite_makes_no_model_call(suite_path, triage_server, cli_env, tmp_path):
    db = tmp_path / "e.duckdb"
    assert run_cli(["run", str(suite_path), "--db", str(db), "--quiet"], cli_env).returncode == 0
    calls = len(triage_server.calls(path="/v1/chat/completions"))
    second = run_cli(["run", str(suite_path), "--db", str(db), "--json"], cli_env)
    assert second.returncode == 0, second.stderr
    assert len(triage_server.calls(path="/v1/chat/completions")) == calls
    run_id = json.loads(second.stdout)["run"]["run_id"]
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*), bool_and(cache_hit), sum(attempts) FROM results WHERE run_id = ?",
                       [run_id]).fetchall() == [(12, True, 0)]
    con.close()
    third = run_cli(["run", str(suite_path), "--db", str(db), "--no-cache", "--quiet"], cli_env)
    assert third.returncode == 0 and len(triage_server.calls(path="/v1/chat/completions")) == calls + 12


def test_resume_requests_only_missing_samples(suite_path, triage_server, cli_env, tmp_path):
    db = tmp_path / "e.duckdb"
    first = run_cli(["run", str(suite_path), "--db", str(db), "--json", "--no-cache"], cli_env)
    run_id = json.loads(first.stdout)["run"]["run_id"]
    with Store(db) as store:  # as if the process died after storing half of the answers
        store.sql("DELETE FROM results WHERE run_id = ? AND sample_id IN ('e1', 'e2', 'e3')", [run_id])
        store.set_run_status(run_id, "interrupted")
    before = len(triage_server.calls(path="/v1/chat/completions"))
    resumed = run_cli(["run", str(suite_path), "--db", str(db), "--resume", run_id[:15], "--no-cache", "--json"],
                      cli_env)
    assert resumed.returncode == 0, resumed.stderr
    assert len(triage_server.calls(path="/v1/chat/completions")) - before == 6  # 3 samples × 2 models, nothing else
    with Store(db, read_only=True) as store:
        counts = store.sql("SELECT model, count(*), count(DISTINCT sample_id) FROM results WHERE run_id = ? "
                           "GROUP BY model ORDER BY model", [run_id])
        assert counts == [("frontier", 6, 6), ("tuned", 6, 6)]
        assert store.get_run(run_id)["status"] == "complete"
    assert json.loads(resumed.stdout)["models"]["tuned"]["metrics"]["accuracy"]["value"] == pytest.approx(5 / 6)


def test_show_runs_and_validate(suite_path, cli_env, tmp_path):
    db = tmp_path / "e.duckdb"
    assert run_cli(["run", str(suite_path), "--db", str(db), "--quiet"], cli_env).returncode == 0
    shown = run_cli(["show", "latest", "--db", str(db)], cli_env)
    assert shown.returncode == 0 and "accuracy" in shown.stdout and "frontier" in shown.stdout
    listed = run_cli(["runs", "--db", str(db)], cli_env)
    assert listed.returncode == 0 and "triage" in listed.stdout
    valid = run_cli(["validate", str(suite_path)], cli_env)
    assert valid.returncode == 0 and "6 samples rendered" in valid.stdout


@pytest.mark.parametrize("case", ["missing_key", "unreachable", "template_field", "unknown_model", "no_run"])
def test_bad_input_gives_one_line_and_calls_nothing(case, make_suite, email_rows, triage_server, cli_env, tmp_path):
    db = tmp_path / "e.duckdb"
    text = LABEL_SUITE.format(base=triage_server.url)
    args = ["run", "SUITE", "--db", str(db)]
    expect_code, expect_text = 2, ""
    if case == "missing_key":
        cli_env.pop("EVALKIT_TEST_KEY")
        expect_text = "environment variable EVALKIT_TEST_KEY is not set"
    elif case == "unreachable":
        text = LABEL_SUITE.format(base="http://127.0.0.1:9/v1")
        expect_code, expect_text = 4, "cannot connect"
    elif case == "template_field":
        text = text.replace("{{ body }}", "{{ bodyy }}")
        expect_text = "sample 'e1': prompt.user uses a field the sample lacks"
    elif case == "unknown_model":
        args += ["--model", "gpt5"]
        expect_text = "--model 'gpt5' is not in the suite"
    else:
        args = ["show", "nope", "--db", str(db)]
        Store(db).close()
        expect_text = "no run 'nope'"
    path = make_suite(text, rows=email_rows)
    proc = run_cli([str(path) if a == "SUITE" else a for a in args], cli_env)
    assert proc.returncode == expect_code, (proc.stdout, proc.stderr)
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert error_lines and expect_text in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    if case != "unreachable":
        assert len(triage_server.requests) == 0
