"""The cost model: the one place a price becomes a monthly figure at a daily volume.

- **API models** (token prices, or LiteLLM's table) pay per call: monthly = cost per call × volume × 30 days.
- **Self-hosted models** (a ``cost.gpu_usd_per_hour``) pay for always-on replicas whether they answer or
  not: replicas = max(``min_replicas``, ⌈volume per second ÷ sustainable requests/s of one replica⌉),
  monthly = replicas × $/hour × 730 hours. The per-request GPU-time cost stored in ``cost_usd``
  ($/h × wall time ÷ rows) is a per-call figure only; it never becomes a monthly cost.
- **Break-even** against a per-call API: the lowest daily volume at which always-on self-hosting costs no
  more than the API. With replicas the self-hosted cost is a step function; the exact solution is
  closed-form (see :func:`break_even`): None ("never") when one replica at full capacity costs more than
  the API for the same calls.

``report/templates/report.js`` computes the same formulas with the same constants for the report's
volume input; tests/test_report.py checks it in a browser against this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DAYS_PER_MONTH = 30
HOURS_PER_MONTH = 730
SECONDS_PER_DAY = 86_400
DEFAULT_VOLUME_PER_DAY = 100_000

STATED = "stated"
GOODPUT = "goodput at SLO"
MEASURED = "measured closed-loop throughput"


def per_call_cost(input_tokens: float, output_tokens: float, input_per_mtok: float, output_per_mtok: float) -> float:
    """USD of one call at per-million-token prices (800 in / 200 out at $3 / $15 → $0.0054)."""
    return (input_tokens * input_per_mtok + output_tokens * output_per_mtok) / 1e6


def projected_cost(cost_per_call: float, calls_per_day: float, days: float = DAYS_PER_MONTH) -> float:
    """Spend over ``days`` at a daily volume (365 days: the annual cost)."""
    return cost_per_call * calls_per_day * days


def monthly_cost(cost_per_1k: float | None, calls_per_day: float) -> float | None:
    """Per-call (API) monthly spend at a daily volume from a cost per 1,000 calls (None: the cost is unknown)."""
    return None if cost_per_1k is None else projected_cost(cost_per_1k / 1000, calls_per_day)


def sustainable_rps(stated: float | None, goodput: float | None, measured: float | None) -> tuple[float, str] | None:
    """The requests/s one replica sustains, and where the figure comes from.

    A stated ``cost.requests_per_second`` wins; then the goodput of a load sweep (the highest rate that met
    the SLO, ``evalkit load``); then the closed-loop throughput measured in the run (``throughput_rps``).
    None: no figure (the replicas, and so the always-on cost beyond ``min_replicas``, are unknown).
    """
    for value, source in ((stated, STATED), (goodput, GOODPUT), (measured, MEASURED)):
        if value is not None and value > 0 and math.isfinite(value):
            return float(value), source
    return None


def replicas_needed(calls_per_day: float, requests_per_second: float, min_replicas: int = 1) -> int:
    """Replicas to serve a daily volume at a per-replica throughput: ⌈volume/s ÷ rps⌉, at least ``min_replicas``."""
    if calls_per_day <= 0:
        return min_replicas
    return max(min_replicas, math.ceil(calls_per_day / SECONDS_PER_DAY / requests_per_second - 1e-12))


def always_on_monthly(gpu_usd_per_hour: float, replicas: int) -> float:
    """Monthly USD of ``replicas`` always-on replicas (730 hours each)."""
    return replicas * gpu_usd_per_hour * HOURS_PER_MONTH


def self_hosted_monthly(gpu_usd_per_hour: float, calls_per_day: float, requests_per_second: float,
                        min_replicas: int = 1) -> tuple[float, int]:
    """(monthly USD, replicas) to serve a daily volume at a per-replica throughput, replicas always on."""
    needed = replicas_needed(calls_per_day, requests_per_second, min_replicas)
    return always_on_monthly(gpu_usd_per_hour, needed), needed


@dataclass(frozen=True)
class BreakEven:
    """Where always-on self-hosting stops costing more than a per-call API (volumes in requests/day).

    ``first``: the lowest volume at which self-hosting costs no more than the API. ``stays_cheaper_from``:
    the volume from which it stays so at every higher volume; above ``first`` but below it, the API is
    cheaper again just past some replica steps (each new replica costs a whole replica-month). Both None:
    never (one replica serving its full capacity costs more than the API for the same calls).
    """

    first: float | None
    stays_cheaper_from: float | None
    note: str


def break_even(api_cost_per_call: float, gpu_usd_per_hour: float, requests_per_second: float,
               min_replicas: int = 1) -> BreakEven:
    """The exact break-even volume(s) of always-on replicas against a per-call API.

    With M = $/h × 730 per replica-month, c = the API's cost per call, cap = rps × 86,400 calls/day per
    replica: on the volumes that k replicas serve (((k−1)·cap, k·cap], from 0 for k = min_replicas) the
    self-hosted cost is k·M and the API's 30·c·V, so self-hosting wins from V = k·M / (30·c) if that is
    inside the step. The first step with a solution is always ``min_replicas`` (whenever M ≤ 30·c·cap), so
    ``first`` = min_replicas·M / (30·c). Just past step k the API is cheaper again unless
    k·cap·30·c ≥ (k+1)·M; from the first k ≥ min_replicas where that holds, self-hosting stays cheaper.
    """
    if api_cost_per_call <= 0:
        return BreakEven(None, None, "never: the API costs nothing per call")
    per_replica = gpu_usd_per_hour * HOURS_PER_MONTH
    if per_replica <= 0:
        return BreakEven(0.0, 0.0, "always: self-hosting costs nothing")
    api_at_capacity = DAYS_PER_MONTH * api_cost_per_call * requests_per_second * SECONDS_PER_DAY
    if per_replica > api_at_capacity * (1 + 1e-12):
        return BreakEven(None, None, f"never: one replica costs ${per_replica:,.2f}/month, more than the API's "
                                     f"${api_at_capacity:,.2f} for the {requests_per_second * SECONDS_PER_DAY:,.0f} "
                                     "calls/day it can serve")
    unit = per_replica / (DAYS_PER_MONTH * api_cost_per_call)  # volume at which k replicas cost k·unit·30·c
    first = min_replicas * unit
    if per_replica >= api_at_capacity * (1 - 1e-12):  # exactly equal: cheaper only at each step's full capacity
        return BreakEven(first, None, "self-hosting only ties the API at each replica's full capacity")
    k = max(min_replicas, math.ceil(per_replica / (api_at_capacity - per_replica) - 1e-9))
    while k * api_at_capacity < (k + 1) * per_replica:  # guard the float ceiling
        k += 1
    stays = k * unit
    note = "cheaper above this volume" if k == min_replicas else (
        f"cheaper from {first:,.0f}/day, but the API is cheaper again just past some replica steps; "
        f"cheaper at every volume from {stays:,.0f}/day")
    return BreakEven(first, stays, note)


def break_even_calls_per_day(api_cost_per_call: float, gpu_usd_per_hour: float,
                             requests_per_second: float = math.inf, min_replicas: int = 1) -> float | None:
    """The lowest daily volume at which always-on self-hosting costs no more than the API (see :func:`break_even`)."""
    return break_even(api_cost_per_call, gpu_usd_per_hour, requests_per_second, min_replicas).first
