"""Human number formats for every terminal table and the report: one place that knows a metric's unit.

"10,723 ms" not 1.072e+04, "−$0.012" with a real minus sign, counts with thousands separators, shares as
percentages, and no scientific notation anywhere. The unit follows from the metric's name.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

MINUS = "\u2212"
COUNTS = {"n", "n_errors", "n_score_errors", "prompt_tokens", "completion_tokens", "replicas_needed",
          "break_even_requests_per_day", "n_pairs", "n_regressions", "judge_calls", "judge_errors"}


def unit(metric: str) -> str:
    """ms, usd, usd_month, count, mean_count, per_s or score, from the metric's name."""
    name = metric.split("[", 1)[0].strip()
    if name.startswith(("latency", "ttft", "client_lag", "cold_start")) or name.endswith("_ms"):
        return "ms"
    if name in ("monthly_cost_usd",) or name.startswith("monthly"):
        return "usd_month"
    if name.startswith("cost") or name.endswith("_usd"):
        return "usd"
    if name.endswith("_mean") and "tokens" in name:
        return "mean_count"
    if name in COUNTS or name.endswith(("_tokens", "_count")):
        return "count"
    if name in ("throughput_rps", "output_tokens_per_s") or name.endswith("_per_s"):
        return "per_s"
    return "score"


def _sign(text: str, value: float, signed: bool) -> str:
    if value < 0 and any(c in "123456789" for c in text):
        return MINUS + text
    return ("+" + text) if signed else text


def plain(value: float, digits: int = 4) -> str:
    """A unitless number without scientific notation: 4 decimals below 10, fewer as it grows."""
    a = abs(value)
    if a >= 10_000:
        return f"{a:,.0f}"
    if a >= 100:
        return f"{a:,.1f}"
    if a >= 10:
        return f"{a:,.2f}"
    return f"{a:.{digits}f}"


def usd(value: float | None, signed: bool = False, digits: int | None = None) -> str:
    """Dollars: "$0.0120", "−$0.012" style signs, 2 decimals from $1 up (unless ``digits``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    a = abs(value)
    d = digits if digits is not None else (2 if a >= 1 else 4)
    return _sign(f"${a:,.{d}f}", value, signed)


def ms(value: float | None, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    a = abs(value)
    return _sign(f"{a:,.1f} ms" if 0 < a < 10 else f"{a:,.0f} ms", value, signed)


def share(value: float | None, digits: int = 1) -> str:
    """A fraction as a percentage: 0.25 → "25.0%"."""
    return "—" if value is None else _sign(f"{abs(value) * 100:.{digits}f}%", value, False)


def count(value: float | None) -> str:
    return "—" if value is None else _sign(f"{abs(value):,.0f}", value, False)


def number(metric: str, value: Any, signed: bool = False) -> str:
    """``value`` of ``metric`` in its unit; ``signed``: a difference, with "+" or "−"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    v = float(value)
    kind = unit(metric)
    if kind == "ms":
        return ms(v, signed)
    if kind == "usd":
        return usd(v, signed)
    if kind == "usd_month":
        return usd(v, signed, 2)
    if kind == "count":
        return _sign(f"{abs(v):,.0f}", v, signed)
    if kind == "per_s":
        return _sign(f"{abs(v):,.2f}/s", v, signed)
    if kind == "mean_count":
        return _sign(f"{abs(v):,.1f}", v, signed)
    return _sign(plain(v), v, signed)


def interval(metric: str, low: float | None, high: float | None, signed: bool = False) -> str:
    """"[low, high]" in the metric's unit, or "—"."""
    if low is None or high is None:
        return "—"
    return f"[{number(metric, low, signed)}, {number(metric, high, signed)}]"


def threshold_words(t: float | None) -> str:
    """A routing threshold in words: never escalate / escalate every sample / escalate below confidence t."""
    if t is None:
        return "—"
    if math.isinf(t):
        return "never escalate" if t < 0 else "escalate every sample"
    return f"escalate below confidence {t:.4f}"


def timestamp(value: Any) -> str:
    """A stored timestamp to the second, "2026-12-01 16:11:03"."""
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    text = str(value).replace("T", " ")
    return text.split(".", 1)[0].split("+", 1)[0]
