"""Provider faults through the real LiteLLM and vLLM-client paths: retried, or kept as error rows."""

from __future__ import annotations

import time

import pytest
from conftest import LABEL_SUITE, TEST_KEY, TRIAGE_RULES

from evalkit.config.loader import load_suite
from evalkit.engine.runner import run_suite
from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.faults import Fault
from evalkit.testing.replies import RuleResponder


@pytest.fixture
def faulty(make_suite, email_rows, monkeypatch):
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY) as server:
        text = LABEL_SUITE.format(base=server.url).replace("retries: 1", "retries: 2\n  timeout_s: 1.0")
        yield server, load_suite(make_suite(text, rows=email_rows))


def _rows(db, run_id):
    with Store(db, read_only=True) as store:
        return store.dicts("SELECT model, sample_id, status, attempts, error_kind, correct FROM results "
                           "WHERE run_id = ? ORDER BY model, sample_id", [run_id])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["frontier", "tuned"])  # frontier: LiteLLM (streaming); tuned: aiohttp client
@pytest.mark.parametrize("spec", [
    {"kind": "status", "status": 429, "retry_after": 0.3}, {"kind": "status", "status": 503},
    {"kind": "garbage"}, {"kind": "truncate"}, {"kind": "reset"}, {"kind": "hang", "hang_s": 5},
], ids=["429-retry-after", "503", "garbage", "truncated", "reset", "hang-past-timeout"])
def test_transient_faults_are_retried_and_nothing_is_lost(faulty, tmp_path, model, spec):
    server, loaded = faulty
    fault = Fault(**spec, times=2, model=model)
    server.faults.add(fault)
    started = time.monotonic()
    summary = run_suite(loaded, str(tmp_path / "f.duckdb"), models=[model])
    elapsed = time.monotonic() - started
    rows = _rows(tmp_path / "f.duckdb", summary.run_id)
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}, rows
    assert sum(r["attempts"] for r in rows) == 8  # two faults, each cost one extra attempt
    assert sum(r["correct"] for r in rows) == (6 if model == "frontier" else 5)
    if fault.retry_after:
        assert elapsed >= fault.retry_after  # Retry-After was honoured


@pytest.mark.slow
@pytest.mark.parametrize("model", ["frontier", "tuned"])
def test_persistent_failure_becomes_error_rows_with_reasons(faulty, tmp_path, model):
    server, loaded = faulty
    # one call at a time, so the first three requests are the three attempts of the first sample
    text = loaded.text.replace("concurrency: 4", "concurrency: 1")
    (loaded.path.parent / "seq.yaml").write_text(text)
    sequential = load_suite(loaded.path.parent / "seq.yaml")
    server.faults.add(Fault(kind="status", status=500, model=model, nth=(1, 2, 3)))
    summary = run_suite(sequential, str(tmp_path / "f.duckdb"), models=[model])
    rows = _rows(tmp_path / "f.duckdb", summary.run_id)
    errors = [r for r in rows if r["status"] == "error"]
    assert len(rows) == 6 and len(errors) == 1 and errors[0]["attempts"] == 3
    metrics = {r["metric"]: r["value"] for r in summary.metrics}
    assert metrics["error_rate"] == pytest.approx(1 / 6) and metrics["n_errors"] == 1


def test_wrong_api_key_stops_the_model_at_once(faulty, tmp_path, monkeypatch):
    server, loaded = faulty
    monkeypatch.setenv("EVALKIT_TEST_KEY", "sk-wrong-key-000000")
    summary = run_suite(loaded, str(tmp_path / "f.duckdb"))
    assert summary.status == "incomplete"
    assert {o.model: o.status for o in summary.outcomes} == {"frontier": "aborted", "tuned": "aborted"}
    assert all("401" in (o.error or "") or "Authentication" in (o.error or "") for o in summary.outcomes)
    assert len(server.calls(path="/v1/chat/completions")) <= 2 * 4  # stopped, not 6 samples × 3 attempts per model
