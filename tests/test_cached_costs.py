"""A fully cached rerun keeps the cost figures of the run that measured its answers' throughput."""

from __future__ import annotations

import pytest
from conftest import EMAILS, LABEL_SUITE, TEST_KEY, TRIAGE_RULES, write_jsonl

from evalkit.analysis.summary import run_payload
from evalkit.config.loader import load_suite
from evalkit.engine.runner import run_suite
from evalkit.report.terminal import render_table
from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import RuleResponder

CHAT = "/v1/chat/completions"
CAPACITY = ("throughput_rps", "output_tokens_per_s", "monthly_cost_usd", "replicas_needed")


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)


@pytest.mark.slow
def test_a_fully_cached_rerun_carries_throughput_and_costs_from_the_run_that_measured_them(tmp_path):
    write_jsonl(tmp_path / "data.jsonl", EMAILS)
    text = LABEL_SUITE.format(base="{base}").replace(
        "    stream: false\n", "    stream: false\n    cost: {gpu_usd_per_hour: 2.5}\n")
    text = text.replace("  warmup: 0 ", "  volume_per_day: 40000000\n  warmup: 0 ")
    db = str(tmp_path / "c.duckdb")
    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY, latency_ms=20) as server:
        suite = tmp_path / "suite.yaml"
        suite.write_text(text.replace("{base}", server.url).lstrip(), encoding="utf-8")
        first = run_suite(load_suite(suite), db)
        calls = len(server.calls(path=CHAT))
        second = run_suite(load_suite(suite), db)
        assert len(server.calls(path=CHAT)) == calls  # the rerun called no model
    with Store(db, read_only=True) as store:
        before, after = run_payload(store, first.run_id), run_payload(store, second.run_id)
    tuned_before, tuned_after = before["models"]["tuned"], after["models"]["tuned"]
    for metric in CAPACITY:
        assert tuned_before["metrics"][metric]["value"] is not None, metric
        assert tuned_after["metrics"][metric]["value"] == pytest.approx(tuned_before["metrics"][metric]["value"]), metric
    assert tuned_after["metrics"]["replicas_needed"]["value"] >= 2  # the volume needs more than one box
    assert tuned_after["cost"]["monthly_cost_usd"] == pytest.approx(tuned_before["cost"]["monthly_cost_usd"])
    # ...and says where the figure was measured
    assert tuned_before["cost"]["throughput_measured_in_run"] is None
    assert tuned_after["cost"]["throughput_measured_in_run"] == first.run_id
    assert f"measured in run {first.run_id}" in tuned_after["cost"]["throughput_source"]
    assert f"measured in run {first.run_id}" in render_table(after)
