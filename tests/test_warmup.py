"""Warm-up before timing, event-loop lag per row, per-model loops, and a cache that survives a new port."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time

import pytest
from conftest import EMAILS, LABEL_SUITE, TEST_KEY, TRIAGE_RULES, write_jsonl

from evalkit.analysis.summary import run_payload
from evalkit.backends.served_identity import is_loopback
from evalkit.config.loader import load_suite
from evalkit.engine.loops import LagMonitor, run_on_threads
from evalkit.engine.runner import run_suite
from evalkit.report.render import render_report as _render
from evalkit.report.terminal import render_table
from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import Reply, RuleResponder

CHAT = "/v1/chat/completions"


class ColdFirst(RuleResponder):
    """The triage rules, but each model's very first request answers 'cold' after 300 ms (a cold engine)."""

    def __init__(self) -> None:
        base = RuleResponder.from_dict(TRIAGE_RULES)
        super().__init__(base.rules, base.default, base.per_model, base.model_defaults)
        self.seen: set[str] = set()

    def __call__(self, body):
        model = body.get("model")
        if model not in self.seen:
            self.seen.add(model)
            return Reply("cold", delay_s=0.3)
        return super().__call__(body)


def render_report(store_path: str, run_id: str) -> str:
    with Store(store_path, read_only=True) as store:
        return _render(store, run_id)


def _suite(tmp_path, base: str, warmup: int):
    write_jsonl(tmp_path / "data.jsonl", EMAILS)
    text = LABEL_SUITE.format(base=base).replace("  warmup: 0 ", f"  warmup: {warmup} ")
    assert f"warmup: {warmup}" in text
    path = tmp_path / "suite.yaml"
    path.write_text(text.lstrip(), encoding="utf-8")
    return load_suite(path)


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)


@pytest.mark.slow
def test_warmup_runs_before_timing_and_is_never_a_result_or_cached(tmp_path):
    with DevServer(ColdFirst(), api_key=TEST_KEY) as server:
        loaded = _suite(tmp_path, server.url, warmup=3)
        db = str(tmp_path / "w.duckdb")
        first = run_suite(loaded, db)
        chat = server.calls(path=CHAT)
        assert first.status == "complete"
        # 6 samples + 3 warm-up requests per model; the warm-up came first, on the first samples
        assert len(chat) == 2 * (6 + 3)
        for model in ("frontier", "tuned"):
            mine = [r.body for r in chat if r.model == model]
            # one at a time, on the dataset's first samples, before the first timed request
            assert [m["messages"][-1]["content"] for m in mine[:3]] == [
                f"Subject: {e['subject']}\n\n{e['body']}" for e in EMAILS[:3]]
        with Store(db, read_only=True) as store:
            rows = store.dicts("SELECT model, output, latency_ms, client_lag_ms, cache_hit FROM results "
                               "WHERE run_id = ?", [first.run_id])
            models = {m["model"]: m for m in store.run_models(first.run_id)}
            payload = run_payload(store, first.run_id)
        assert {n: (m["warmup_calls"], m["cold_start_ms"]) for n, m in payload["models"].items()} == {
            n: (3, m["cold_start_ms"]) for n, m in models.items()}
        assert "cold start (first warm-up request" in render_table(payload)
        html = render_report(store_path=db, run_id=first.run_id)
        for name, m in models.items():  # the HTML scorecard shows it too, as stored
            cell = re.search(rf'data-metric="cold_start_ms" data-model="{name}" data-value="([^"]*)"', html)
            assert cell and float(cell.group(1)) == pytest.approx(m["cold_start_ms"])
        assert payload["models"]["tuned"]["metrics"]["client_lag_ms_p95"]["value"] is not None
        assert len(rows) == 12 and "cold" not in {r["output"] for r in rows}  # warm-up answers are not results
        assert all(r["client_lag_ms"] is not None and r["client_lag_ms"] >= 0 for r in rows)
        for m in models.values():
            latencies = json.loads(m["warmup_latencies_ms"])
            assert m["warmup_calls"] == 3 and len(latencies) == 3 and m["n_calls"] == 6
            assert m["cold_start_ms"] == latencies[0] >= 300.0  # the cold request, reported apart
        # warm-up never answers from the cache nor fills it: an unchanged rerun calls nothing at all
        second = run_suite(loaded, db)
        assert len(server.calls(path=CHAT)) == len(chat)
        with Store(db, read_only=True) as store:
            again = {m["model"]: m for m in store.run_models(second.run_id)}
        assert all(m["warmup_calls"] == 0 and m["cold_start_ms"] is None for m in again.values())


@pytest.mark.slow
def test_warmup_zero_sends_no_extra_request(tmp_path):
    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY) as server:
        summary = run_suite(_suite(tmp_path, server.url, warmup=0), str(tmp_path / "z.duckdb"))
        assert len(server.calls(path=CHAT)) == 12
        with Store(tmp_path / "z.duckdb", read_only=True) as store:
            assert {(m["warmup_calls"], m["cold_start_ms"]) for m in store.run_models(summary.run_id)} == {(0, None)}


@pytest.mark.slow
def test_cache_survives_a_new_port_but_never_crosses_servers_with_other_replies(tmp_path):
    db = str(tmp_path / "c.duckdb")
    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY) as a:
        run_suite(_suite(tmp_path, a.url, warmup=2), db)
        assert len(a.calls(path=CHAT)) == 2 * (6 + 2)
    # the same server configuration on another port: every answer from the cache, no model call
    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY) as b:
        assert b.port != a.port
        summary = run_suite(_suite(tmp_path, b.url, warmup=2), db)
        assert b.calls(path=CHAT) == []
        with Store(db, read_only=True) as store:
            hits = store.sql("SELECT count(*), bool_and(cache_hit) FROM results WHERE run_id = ?", [summary.run_id])
            identity = json.loads(store.run_models(summary.run_id)[0]["identity"])
        assert hits == [(12, True)] and "api_base" not in identity and "evalkit_content" in identity["server"]
    # a server with other scripted replies, on yet another port, is asked again
    other = {"models": {m: {"default": {"reply": "spam", "confidence": 0.6}} for m in ("frontier", "tuned")}}
    with DevServer(RuleResponder.from_dict(other), api_key=TEST_KEY) as c:
        summary = run_suite(_suite(tmp_path, c.url, warmup=0), db)
        assert len(c.calls(path=CHAT)) == 12
        with Store(db, read_only=True) as store:
            outputs = store.sql("SELECT DISTINCT output, bool_or(cache_hit) FROM results WHERE run_id = ? "
                                "GROUP BY output", [summary.run_id])
        assert outputs == [("spam", False)]


def test_a_server_whose_replies_cannot_be_described_is_its_own_identity():
    def opaque(body):
        return "ok"

    first, second = DevServer(opaque), DevServer(opaque)
    assert first.content_identity() != second.content_identity()  # never shared between two instances
    assert DevServer(RuleResponder.from_dict(TRIAGE_RULES)).content_identity() == \
        DevServer(RuleResponder.from_dict(TRIAGE_RULES), latency_ms=50).content_identity()
    assert is_loopback("http://127.0.0.1:41234/v1") and is_loopback("http://localhost:8000/v1")
    assert not is_loopback("https://api.openai.com/v1") and not is_loopback(None)


def test_lag_monitor_sees_a_blocked_loop():
    async def blocked() -> tuple[float, float]:
        monitor = LagMonitor.start()
        await asyncio.sleep(0.01)
        mark = monitor.mark()
        time.sleep(0.06)  # the loop's thread busy: what another client's CPU does to a timed call
        blocked_ms = monitor.lag_ms_since(mark)
        mark = monitor.mark()
        await asyncio.sleep(0.01)
        monitor.stop()
        return blocked_ms, monitor.lag_ms_since(mark)

    blocked_ms, free_ms = asyncio.run(blocked())
    assert blocked_ms >= 50.0 and free_ms < blocked_ms


def test_each_job_runs_on_its_own_thread_and_loop_while_the_caller_ticks():
    seen: list[tuple[int, int]] = []
    ticks: list[float] = []

    async def job() -> int:
        await asyncio.sleep(0.05)
        seen.append((threading.get_ident(), id(asyncio.get_running_loop())))
        return len(seen)

    def tick(wait_s: float) -> None:
        ticks.append(wait_s)
        time.sleep(wait_s)

    results = run_on_threads([[("a", job), ("b", job)], [("c", job)]], tick)
    assert sorted(results[:2]) == [1, 2] and results[2] == 3  # side by side, then the next batch
    (thread_a, loop_a), (thread_b, loop_b) = seen[:2]
    assert thread_a != thread_b and loop_a != loop_b  # one batch: a thread and an event loop each
    assert threading.get_ident() not in {t for t, _ in seen} and ticks


def test_an_error_in_one_loop_is_raised_in_the_caller():
    async def boom() -> None:
        raise ValueError("boom")

    async def slow() -> None:
        await asyncio.sleep(30)

    started = time.monotonic()
    with pytest.raises(ValueError, match="boom"):
        run_on_threads([[("boom", boom)], [("never", slow)]], lambda wait_s: time.sleep(wait_s))
    assert time.monotonic() - started < 10
