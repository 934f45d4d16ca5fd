"""Retry-After in both of RFC 9110's forms: delta-seconds and an HTTP date, through both client paths."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from conftest import LABEL_SUITE, TEST_KEY, TRIAGE_RULES

from evalkit.backends.base import retry_after_seconds
from evalkit.config.loader import load_suite
from evalkit.engine.runner import run_suite
from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.faults import Fault
from evalkit.testing.replies import RuleResponder


def _date(seconds_from_now: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now), usegmt=True)


def test_delta_seconds_and_http_dates_are_both_read():
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after": " 1.5 "}) == 1.5
    assert 8.0 <= retry_after_seconds({"retry-after": _date(10)}) <= 10.0
    assert retry_after_seconds({"retry-after": _date(-60)}) == 0.0  # a date already past: retry now
    assert retry_after_seconds({"retry-after": "-4"}) == 0.0
    assert retry_after_seconds({"retry-after": "Sun, 06 Nov 1994 08:49:37 GMT"}) == 0.0
    for junk in ("soon", "", "inf", "nan", "Mon, 99 Foo 2020 99:99:99 GMT"):
        assert retry_after_seconds({"retry-after": junk}) is None, junk
    assert retry_after_seconds({}) is None and retry_after_seconds(None) is None


def test_the_devserver_can_send_retry_after_as_an_http_date():
    import httpx

    with DevServer(RuleResponder.from_dict(TRIAGE_RULES),
                   faults=[Fault("status", status=429, retry_after=3, retry_after_form="date")]) as server:
        resp = httpx.post(server.url + "/chat/completions",
                          json={"model": "frontier", "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 429 and resp.headers["retry-after"].endswith(" GMT")
    assert 2.0 <= retry_after_seconds(resp.headers) <= 4.0


@pytest.mark.slow
@pytest.mark.parametrize("model", ["frontier", "tuned"])  # LiteLLM and evalkit's aiohttp client
def test_an_http_date_retry_after_is_honoured(make_suite, email_rows, monkeypatch, tmp_path, model):
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY) as server:
        server.faults.add(Fault("status", status=429, retry_after=3, retry_after_form="date", times=1,
                                model=model))
        loaded = load_suite(make_suite(LABEL_SUITE.format(base=server.url), rows=email_rows[:1]))
        started = time.monotonic()
        summary = run_suite(loaded, str(tmp_path / "r.duckdb"), models=[model])
        elapsed = time.monotonic() - started
        calls = [r.time for r in server.calls(path="/v1/chat/completions")]
    with Store(tmp_path / "r.duckdb", read_only=True) as store:
        [row] = store.dicts("SELECT status, attempts FROM results WHERE run_id = ?", [summary.run_id])
    assert row == {"status": "ok", "attempts": 2}
    # The date has one-second resolution: the second call comes 2-3 s after the first, never at once.
    assert calls[1] - calls[0] >= 1.9 and elapsed >= 1.9
