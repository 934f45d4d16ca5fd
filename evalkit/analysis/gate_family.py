"""Which rules a gate checks and at which CI level: ``per_slice`` rules expanded into one rule per slice,
paired deltas per (slice, level) computed once, and the *family* of relative rules that share the error
rate, with Holm–Bonferroni's step-down levels under ``gates.correction: holm``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pandas as pd
from scipy.stats import norm

from evalkit.analysis.metrics import METRICS
from evalkit.analysis.paired import Delta, Pairing, paired_deltas
from evalkit.analysis.power import Spread, spread_of
from evalkit.config.gate_specs import GateRule

Judge = Callable[[GateRule, "Delta | None", float], str]  # a relative rule's verdict on a delta at a CI level


class Evidence:
    """Paired deltas per (slice, CI level), computed once each; a slice's deltas use that slice's pairs."""

    def __init__(self, pairing: Pairing, seed: int, resamples: int) -> None:
        self.pairing, self.seed, self.resamples = pairing, seed, resamples
        self._deltas: dict[tuple[str | None, float], dict[str, Delta]] = {}
        labels = pairing.rows["slice_b"]
        self.slices = sorted(str(v) for v in labels.dropna().unique())

    def rows(self, slice_name: str | None) -> pd.DataFrame:
        rows = self.pairing.rows
        return rows if slice_name is None else rows[rows["slice_b"] == slice_name].reset_index(drop=True)

    def deltas(self, slice_name: str | None, level: float) -> dict[str, Delta]:
        key = (slice_name, level)
        if key not in self._deltas:
            rows = self.rows(slice_name)
            self._deltas[key] = {} if rows.empty else paired_deltas(replace(self.pairing, rows=rows), self.seed,
                                                                    self.resamples, level)
        return self._deltas[key]

    def spread(self, rule: GateRule, level: float) -> Spread | None:
        assert rule.metric is not None
        rows = self.rows(rule.slice)
        if rows.empty:
            return None
        return spread_of(rows, rule.metric, self.deltas(rule.slice, level).get(rule.metric),
                         METRICS[rule.metric].higher_is_better is True, level)


def expand_targets(rules: list[GateRule], evidence: Evidence) -> list[GateRule]:
    """The rules as checked: a ``per_slice`` rule becomes one rule per slice of the paired rows."""
    out = []
    for rule in rules:
        if rule.per_slice:
            out += [rule.model_copy(update={"slice": name, "per_slice": False}) for name in evidence.slices]
        else:
            out.append(rule)
    return out


def in_family(rule: GateRule) -> bool:
    """Rules that spend an error rate: relative metric rules judged on a CI."""
    return (rule.metric is not None and rule.significance != "point"
            and (rule.max_drop is not None or rule.max_rise is not None))


def decisive_p(rule: GateRule, spread: Spread | None) -> float:
    """One-sided p-value (normal approximation) of the outcome the rule can establish: non-inferiority
    for ``noninferiority`` rules, a regression beyond the margin for ``ci`` rules. Orders Holm's steps."""
    margin = rule.max_drop if rule.max_drop is not None else rule.max_rise
    if spread is None or margin is None or spread.n < 1:
        return 1.0
    gap, se = spread.effect + margin, spread.sd / math.sqrt(spread.n)
    if se <= 0:
        return 0.0 if (gap > 0) == (rule.significance == "noninferiority") else 1.0
    z = gap / se
    return float(norm.sf(z) if rule.significance == "noninferiority" else norm.cdf(z))


def family_levels(family: list[GateRule], evidence: Evidence, correction: str, judge: Judge) -> list[float]:
    """Each family rule's CI level: its own ``confidence``, or Holm's step-down level.

    Holm: order the rules by :func:`decisive_p`, smallest first; the rule at step j (of k) is judged on
    its CI at level 1 − α/(k − j + 1), α = 1 − its confidence. The procedure stops at the first rule
    that does not reach its decisive outcome (pass, or fail for ``ci`` rules); every later rule is judged
    at the level of that step."""
    levels = [r.confidence for r in family]
    if correction != "holm" or len(family) < 2:
        return levels
    k = len(family)
    order = sorted(range(k), key=lambda i: decisive_p(family[i], evidence.spread(family[i], family[i].confidence)))
    stopped: int | None = None
    for step, i in enumerate(order):
        rule = family[i]
        levels[i] = 1 - (1 - rule.confidence) / (k - (step if stopped is None else stopped))
        if stopped is None:
            d = evidence.deltas(rule.slice, levels[i]).get(str(rule.metric))
            decisive = "pass" if rule.significance == "noninferiority" else "fail"
            if judge(rule, d, levels[i]) != decisive:
                stopped = step
    return levels


def family_document(family: list[GateRule], levels: list[float], correction: str,
                    describe: Callable[[GateRule], str]) -> dict[str, Any]:
    """The rules that share the error rate, their levels and the familywise error they allow."""
    alphas = [1 - r.confidence for r in family]
    bound = max(alphas, default=0.0) if correction == "holm" else min(1.0, sum(alphas))
    return {"size": len(family), "correction": correction,
            "rules": [f"{r.metric} {describe(r)}" for r in family],
            "levels": levels, "familywise_error_bound": bound}
