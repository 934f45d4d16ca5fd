"""Paired deltas of the confidence tails (``tail5_brier``, ``confident_error_rate``) on the pairs where both
models gave a confidence; :func:`evalkit.analysis.paired.paired_deltas` reports them with the other deltas."""

from __future__ import annotations

import numpy as np

from evalkit.analysis.bootstrap import (
    MAX_DISTINCT,
    low_tail_replicates,
    paired_bootstrap,
    percentile_interval,
    row_mean,
    row_tail,
    tail_mean,
)

# (baseline, candidate, delta, ci_low, ci_high, n): the fields of a paired Delta after its metric name
DeltaValues = tuple[float, float, float, float | None, float | None, int]


def _negate(v: float | None) -> float | None:
    return None if v is None else -v


def confidence_tail_deltas(cb: np.ndarray, yb: np.ndarray, cc: np.ndarray, yc: np.ndarray, threshold: float,
                           resamples: int, rng: np.random.Generator, confidence: float,
                           groups: np.ndarray) -> dict[str, DeltaValues]:
    """Candidate − baseline of tail5_brier and confident_error_rate, with paired bootstrap CIs.

    The worst 5% by squared error is the lowest 5% of its negation, so the tail machinery applies to
    −(confidence − correct)², negated back (the interval's ends swap): the count shortcut for few distinct
    pairs, the low-tail shortcut for many (without repeats), the cluster bootstrap with repeats.
    """
    neg_b, neg_c = -((cb - yb) ** 2), -((cc - yc) ** 2)
    va, vb = tail_mean(neg_b), tail_mean(neg_c)
    pairs = np.stack([neg_b, neg_c], 1)
    low: float | None
    high: float | None
    if (resamples > 0 and len(pairs) >= 2 and len(np.unique(groups)) == len(groups)
            and len(np.unique(pairs, axis=0)) > MAX_DISTINCT):
        reps = low_tail_replicates(pairs, resamples, rng)
        low, high = percentile_interval(reps[:, 1] - reps[:, 0], confidence)
    else:
        low, high = paired_bootstrap(neg_b, neg_c, row_tail, resamples, rng, confidence, groups)
    n = len(pairs)
    out: dict[str, DeltaValues] = {"tail5_brier": (-va, -vb, va - vb, _negate(high), _negate(low), n)}
    wrong_b = ((yb == 0) & (cb >= threshold)).astype(float)
    wrong_c = ((yc == 0) & (cc >= threshold)).astype(float)
    ra, rb = float(wrong_b.mean()), float(wrong_c.mean())
    out["confident_error_rate"] = (ra, rb, rb - ra,
                                   *paired_bootstrap(wrong_b, wrong_c, row_mean, resamples, rng, confidence, groups), n)
    return out
