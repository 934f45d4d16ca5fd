"""Per-class counts and F1 statistics of label outputs, and their bootstrap resamples, vectorised.

A sample's contribution to every classification metric is a vector of per-class counts — true
positives, false positives and false negatives (``tp``, ``fp``, ``fn``, one column per class) — and
every metric (macro-, weighted- and micro-F1) is a function of their sums. So a bootstrap resample
needs only the summed counts of the units it draws: units with the same count vector are
interchangeable, and drawing n units with replacement is drawing multinomial counts over the
distinct vectors (few for single-label data: one per (target, answer) cell of the confusion matrix).
When the distinct vectors are many, the resample indices are drawn and counted with one ``bincount``
per chunk. Either way no Python loop runs per resample.

F1 of a class is 2·tp / (2·tp + fp + fn), 0 when that is 0/0 (scikit-learn's ``zero_division=0``); the
macro average is over the classes *present* in the data (a target or a valid answer of that class:
2·tp + fp + fn > 0), as scikit-learn averages over the labels it sees in ``y_true`` and ``y_pred``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from evalkit.analysis.bootstrap import CHUNK_CELLS, MAX_DISTINCT, FloatArray

F1_METRICS = ("macro_f1", "weighted_f1", "micro_f1")


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    out: FloatArray = np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)
    return out


def f1_from_counts(tp: FloatArray, fp: FloatArray, fn: FloatArray) -> dict[str, FloatArray]:
    """macro_f1, weighted_f1 and micro_f1 of count sums shaped (..., classes); one value per leading index."""
    denominator = 2 * tp + fp + fn
    f1 = _ratio(2 * tp, denominator)
    present = denominator > 0
    support = tp + fn
    return {
        "macro_f1": _ratio((f1 * present).sum(axis=-1), present.sum(axis=-1).astype(float)),
        "weighted_f1": _ratio((f1 * support).sum(axis=-1), support.sum(axis=-1)),
        "micro_f1": _ratio(2 * tp.sum(axis=-1), denominator.sum(axis=-1)),
    }


def count_features(truth: npt.NDArray[np.bool_], pred: npt.NDArray[np.bool_]) -> FloatArray:
    """Per-row (tp | fp | fn) count columns, (n, 3·classes), from (n, classes) target and answer indicators."""
    return np.concatenate([truth & pred, pred & ~truth, truth & ~pred], axis=1).astype(np.float64)


def per_unit(features: FloatArray, groups: npt.NDArray[np.integer] | None) -> FloatArray:
    """Rows summed per resampling unit (a sample with all its repeats), or the rows themselves."""
    if groups is None or len(np.unique(groups)) == len(groups):
        return features
    _, g = np.unique(groups, return_inverse=True)
    out = np.zeros((int(g.max()) + 1, features.shape[1]))
    np.add.at(out, g, features)
    return out


def row_codes(units: FloatArray) -> npt.NDArray[np.int64]:
    """One integer per row, equal exactly for equal rows (columns factorised one after another: hash-based,
    O(rows) per column, where ``np.unique(axis=0)`` sorts rows as opaque bytes)."""
    code = np.zeros(len(units), dtype=np.int64)
    for j in range(units.shape[1]):
        column = units[:, j]
        if not column.any():
            continue
        values, _ = pd.factorize(column)
        code, _ = pd.factorize(code * (int(values.max()) + 1) + values)
        code = code.astype(np.int64)
    return code


def resampled_sums(units: FloatArray, resamples: int, rng: np.random.Generator,
                   max_distinct: int | None = None, codes: npt.NDArray[np.integer] | None = None) -> FloatArray:
    """Column sums of ``resamples`` bootstrap resamples of the rows of ``units`` (units, f) → (resamples, f).

    Up to ``max_distinct`` distinct rows (default: 2,048 or a sixteenth of the rows, whichever is more —
    a multinomial draw costs about twenty times a drawn index per category): multinomial counts over them;
    more: drawn indices, bincounted.
    ``codes``: one integer per row, equal for equal rows, when the caller knows them (else :func:`row_codes`)."""
    n = len(units)
    _, first, inverse = np.unique(row_codes(units) if codes is None else codes, return_index=True,
                                  return_inverse=True)
    inverse = inverse.reshape(-1)
    distinct = units[first]
    counts = np.bincount(inverse, minlength=len(first))
    out = np.empty((resamples, units.shape[1]))
    if len(distinct) <= (max(MAX_DISTINCT, n // 16) if max_distinct is None else max_distinct):
        draws = rng.multinomial(n, counts / n, size=resamples)  # (resamples, distinct)
        out[:] = draws.astype(np.float64) @ distinct
        return out
    k = len(distinct)
    chunk = max(1, CHUNK_CELLS // max(n, k))
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(b, n), dtype=np.int32 if n < 2**31 else np.int64)
        codes = inverse[idx] + (np.arange(b, dtype=np.int64) * k)[:, None]
        drawn = np.bincount(codes.ravel(), minlength=b * k).reshape(b, k)
        out[start:start + b] = drawn.astype(np.float64) @ distinct
    return out


def split(sums: FloatArray, classes: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(tp, fp, fn) blocks of summed count features."""
    return sums[..., :classes], sums[..., classes:2 * classes], sums[..., 2 * classes:3 * classes]
