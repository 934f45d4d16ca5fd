"""Cost projections for routing and capacity decisions: the one place a per-call cost becomes a monthly
figure, and where always-on self-hosting is weighed against a per-call API.
"""

from __future__ import annotations

import math

DAYS_PER_MONTH = 30
HOURS_PER_MONTH = 730


def per_call_cost(input_tokens: float, output_tokens: float, input_per_mtok: float, output_per_mtok: float) -> float:
    """USD of one call at per-million-token prices (800 in / 200 out at $3 / $15 → $0.0054)."""
    return (input_tokens * input_per_mtok + output_tokens * output_per_mtok) / 1e6


def projected_cost(cost_per_call: float, calls_per_day: float, days: float = DAYS_PER_MONTH) -> float:
    """Spend over ``days`` at a daily volume (365 days: the annual cost)."""
    return cost_per_call * calls_per_day * days


def monthly_cost(cost_per_1k: float | None, calls_per_day: float) -> float | None:
    """Monthly spend at a daily volume from a cost per 1,000 calls (None: the cost is unknown)."""
    return None if cost_per_1k is None else projected_cost(cost_per_1k / 1000, calls_per_day)


def self_hosted_monthly(gpu_usd_per_hour: float, calls_per_day: float, requests_per_second: float,
                        min_gpus: int = 1) -> tuple[float, int]:
    """(monthly USD, GPUs) to serve a daily volume at a measured per-GPU throughput, GPUs always on."""
    needed = max(min_gpus, math.ceil(calls_per_day / (requests_per_second * 86_400))) if requests_per_second else min_gpus
    return needed * gpu_usd_per_hour * HOURS_PER_MONTH, needed


def break_even_calls_per_day(api_cost_per_call: float, gpu_usd_per_hour: float, gpus: int = 1) -> float | None:
    """Daily volume above which always-on self-hosting (``gpus`` GPUs) costs less than the API."""
    if api_cost_per_call <= 0:
        return None
    return gpus * gpu_usd_per_hour * HOURS_PER_MONTH / DAYS_PER_MONTH / api_cost_per_call
