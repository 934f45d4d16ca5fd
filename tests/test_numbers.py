"""One number formatter for the terminal and the report: units, real minus signs, no scientific notation."""

from __future__ import annotations

from evalkit.report.numbers import interval, number, share, threshold_words, timestamp, unit, usd


def test_units_follow_the_metric_name():
    assert number("latency_ms_p50", 10_723.4) == "10,723 ms"  # not 1.072e+04
    assert number("ttft_ms_p50", 4.25) == "4.2 ms"
    assert number("cost_per_1k", -0.012, signed=True) == "\u2212$0.0120"  # a real minus, before the dollar
    assert number("cost_per_1k", 12.5) == "$12.50" and usd(0.012, signed=True) == "+$0.0120"
    assert number("monthly_cost_usd", 1825) == "$1,825.00"
    assert number("accuracy", -0.05, signed=True) == "\u22120.0500" and number("accuracy", 0.8333) == "0.8333"
    assert number("n", 12_345) == "12,345" and number("throughput_rps", 3.456) == "3.46/s"
    assert number("ece", 1e-6) == "0.0000" and "e" not in number("brier", 123456.7)
    assert number("accuracy", None) == "—" and number("latency_ms_p95", float("nan")) == "—"
    assert unit("latency_ms_p95 [hard]") == "ms"
    assert interval("latency_ms_p50", -12.0, 30.0, signed=True) == "[\u221212 ms, +30 ms]"


def test_words_shares_and_timestamps():
    assert threshold_words(float("-inf")) == "never escalate"
    assert threshold_words(float("inf")) == "escalate every sample"
    assert threshold_words(0.8) == "escalate below confidence 0.8000"
    assert share(0.125) == "12.5%"
    assert timestamp("2026-12-01 16:11:03.123456") == "2026-12-01 16:11:03"
