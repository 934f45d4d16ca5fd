"""How many paired samples a non-inferiority gate needs, shared by the gate's ``n_needed`` and ``evalkit plan``.

A relative rule compares the change Δ = candidate − baseline with a margin m in the metric's bad
direction. In the *good* orientation g (g = Δ for higher-is-better metrics, −Δ for lower-is-better
ones) a ``noninferiority`` rule passes when the lower bound of the two-sided CI at level 1 − α lies
above −m, and fails when the upper bound lies below −m. With the normal approximation of the paired
difference (per-sample standard deviation σ, n samples) and z = Φ⁻¹(1 − α/2), the chance to pass at a
true change g > −m is Φ((g + m)·√n/σ − z), so reaching power 1 − β takes

    n = ((z + Φ⁻¹(1 − β)) · σ / |g + m|)²

samples — the same formula gives the samples needed to *fail* when g < −m. σ comes from:

- **paired binary metrics** (accuracy, schema_valid_rate, feasible_rate, error_rate,
  valid_but_infeasible_rate): the discordance rates of the paired 2×2 table, b (baseline yes,
  candidate no) and c (baseline no, candidate yes): σ² = b + c − (c − b)². With repeats, the
  per-sample mean differences (a sample's repeats are one unit of evidence).
- **every other metric**: the paired bootstrap, σ = SE·√n with SE = (CI width) / (2z).

The margin a data set of n samples can resolve at that power is m = (z + Φ⁻¹(1 − β))·σ/√n − g.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from evalkit.analysis.paired import Delta, flags

DEFAULT_POWER = 0.8
BINARY_METRICS = ("accuracy", "schema_valid_rate", "feasible_rate", "error_rate", "valid_but_infeasible_rate")


@dataclass(frozen=True)
class Spread:
    """The evidence a sample size rests on: the observed change (good orientation), the per-sample
    standard deviation of the paired difference, the samples it was estimated on, and how."""

    effect: float
    sd: float
    n: int
    basis: str
    b: float | None = None  # discordance rates (binary metrics): lost, gained
    c: float | None = None


def critical(confidence: float) -> float:
    """z of a two-sided interval at ``confidence``."""
    return float(norm.ppf(1 - (1 - confidence) / 2))


def n_needed(effect: float, sd: float, margin: float, confidence: float, power: float = DEFAULT_POWER) -> int | None:
    """Samples for the CI's decisive bound to clear −margin with probability ``power`` at the true change
    ``effect`` (good orientation): to pass when effect > −margin, to fail when below. None when the
    change sits exactly on the margin (no sample size resolves it) or there is no spread to scale."""
    gap = abs(effect + margin)
    if gap < 1e-12 or not math.isfinite(sd) or sd <= 0:
        return None
    return max(2, math.ceil(((critical(confidence) + float(norm.ppf(power))) * sd / gap) ** 2))


def pass_power(effect: float, sd: float, margin: float, n: int, confidence: float) -> float:
    """Chance that a noninferiority rule passes at ``n`` samples when the true change is ``effect``."""
    if sd <= 0:
        return 1.0 if effect + margin > 0 else 0.0
    return float(norm.cdf((effect + margin) * math.sqrt(n) / sd - critical(confidence)))


def resolvable_margin(effect: float, sd: float, n: int, confidence: float, power: float = DEFAULT_POWER) -> float:
    """The smallest margin a noninferiority rule passes with ``power`` at ``n`` samples (never below 0)."""
    return max(0.0, (critical(confidence) + float(norm.ppf(power))) * sd / math.sqrt(n) - effect)


def binary_columns(rows: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Baseline and candidate 0/1 columns of a paired binary metric (as paired_deltas computes it)."""
    if metric == "accuracy":
        return flags(rows["correct_b"]), flags(rows["correct_c"])
    if metric == "error_rate":
        return (rows["status_b"] != "ok").to_numpy(float), (rows["status_c"] != "ok").to_numpy(float)
    if metric in ("schema_valid_rate", "feasible_rate"):
        column = metric.removesuffix("_rate")
        return flags(rows[f"{column}_b"]), flags(rows[f"{column}_c"])
    if metric == "valid_but_infeasible_rate":
        return (flags(rows["schema_valid_b"]) * (1 - flags(rows["feasible_b"])),
                flags(rows["schema_valid_c"]) * (1 - flags(rows["feasible_c"])))
    return None


def binary_spread(a: np.ndarray, b: np.ndarray, sign: float, samples: np.ndarray | None = None) -> Spread:
    """σ of a paired binary difference from its discordance rates (per-sample means with repeats)."""
    lost, gained = float(np.mean((a > 0) & (b == 0))), float(np.mean((a == 0) & (b > 0)))
    diff = b - a
    if samples is not None and len(np.unique(samples)) < len(samples):
        diff = pd.Series(diff).groupby(samples).mean().to_numpy()
    sd = float(np.std(diff)) if len(diff) else 0.0
    return Spread(sign * float(np.mean(b - a)), sd, len(diff), f"discordance b={lost:.3g}, c={gained:.3g}",
                  lost, gained)


def spread_of(rows: pd.DataFrame, metric: str, delta: Delta | None, higher_is_better: bool,
              confidence: float) -> Spread | None:
    """The spread behind a paired comparison of ``metric`` on ``rows`` (see the module docstring)."""
    sign = 1.0 if higher_is_better else -1.0
    columns = binary_columns(rows, metric)
    samples = pd.factorize(rows["sample_id"])[0]
    if columns is not None:
        return binary_spread(*columns, sign, samples)
    if delta is None or delta.delta is None or delta.ci_low is None or delta.ci_high is None:
        return None
    units = max(1, round(delta.n * len(np.unique(samples)) / max(1, len(rows))))  # samples, not repeats
    se = (delta.ci_high - delta.ci_low) / (2 * critical(confidence))
    return Spread(sign * delta.delta, se * math.sqrt(units), units, "paired bootstrap")


def stated_spread(metric: str, discordance: float | None, rate: float | None, sd: float | None,
                  delta: float, higher_is_better: bool) -> Spread | None:
    """A spread from stated rates, for planning before any pilot run.

    Binary metrics: ``discordance`` (share of pairs the models disagree on, b + c), else from the
    baseline ``rate`` p assuming independent errors, b + c = 2p(1 − p) (conservative: correlated models
    disagree less). Other metrics: ``sd``, the per-sample standard deviation of the paired difference.
    ``delta`` is the assumed true change candidate − baseline in the metric's units.
    """
    sign = 1.0 if higher_is_better else -1.0
    if metric in BINARY_METRICS:
        if discordance is None and rate is not None:
            discordance = 2 * rate * (1 - rate)
        if discordance is None:
            return None
        if abs(delta) > discordance:
            raise ValueError(f"{metric}: a change of {delta:+g} needs at least that share of discordant pairs "
                             f"(discordance {discordance:g})")
        lost, gained = (discordance - delta) / 2, (discordance + delta) / 2
        return Spread(sign * delta, math.sqrt(max(0.0, discordance - delta ** 2)), 0,
                      f"stated discordance {discordance:g}", lost, gained)
    if sd is None:
        return None
    return Spread(sign * delta, sd, 0, f"stated sd {sd:g}")


PLAN_FORMAT = "evalkit.plan/1"


@dataclass(frozen=True)
class Stated:
    """Rates stated on the command line; each maps a metric name (or None: every metric) to a value."""

    discordance: dict[str | None, float]
    rate: dict[str | None, float]
    sd: dict[str | None, float]
    delta: dict[str | None, float]

    def get(self, kind: str, metric: str) -> float | None:
        values: dict[str | None, float] = getattr(self, kind)
        return values.get(metric, values.get(None))


def plan_row(metric: str, slice_name: str | None, rule_text: str, margin: float, level: float,
             spread: Spread | None, available: int, power: float) -> dict[str, Any]:
    """One rule of an ``evalkit.plan/1`` document: the samples it needs, and what the data set resolves."""
    row: dict[str, Any] = {"metric": metric, "slice": slice_name, "rule": rule_text, "margin": margin,
                           "level": level, "power": power, "available": available, "effect": None, "sd": None,
                           "basis": None, "n_needed": None, "power_at_available": None, "resolvable_margin": None,
                           "note": None}
    if spread is None:
        row["note"] = ("no spread: give a pilot --run, or --discordance / --accuracy / --rate for a binary metric, "
                       "--sd for another")
        return row
    row.update(effect=spread.effect, sd=spread.sd, basis=spread.basis,
               n_needed=n_needed(spread.effect, spread.sd, margin, level, power))
    if spread.effect + margin <= 0:
        row["note"] = ("the assumed change is at or beyond the margin: the rule cannot be expected to pass; "
                       "n_needed is the number of samples that would show it fails")
    if available > 0:
        row["power_at_available"] = pass_power(spread.effect, spread.sd, margin, available, level)
        row["resolvable_margin"] = resolvable_margin(spread.effect, spread.sd, available, level, power)
    return row
