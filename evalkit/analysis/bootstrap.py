"""The resampling engine behind every confidence interval: bootstrap percentile intervals, vectorised in
chunks, with shortcuts that resample counts instead of rows when values are few (means, worst-5% means,
per-bin calibration sums), and the paired and cluster bootstraps that compare two models on the same
samples. Statistics here are row-wise: they take (resamples, n) matrices and return one value per row.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

ECE_BINS = 10


TAIL_FRACTION = 0.05


CHUNK_CELLS = 4_000_000  # bootstrap index matrix cells per chunk: bounds memory at ~32 MB


MAX_DISTINCT = 2048  # up to this many distinct values, resample counts instead of rows


FloatArray = npt.NDArray[np.float64]


IndexArray = npt.NDArray[np.integer[Any]]  # row, bin or group indices (int32 or int64)


RowStat = Callable[[FloatArray], FloatArray]  # a row-wise statistic: (b, n, ...) → (b,)


def ece(confidence: FloatArray, correct: FloatArray, bins: int = ECE_BINS) -> float:
    """Σ_b (n_b / n) · |accuracy_b − mean confidence_b| over equal-width bins; 1.0 goes to the last bin."""
    idx = ece_bins(confidence, bins)
    conf_sum = np.bincount(idx, weights=confidence, minlength=bins)
    corr_sum = np.bincount(idx, weights=correct, minlength=bins)
    return float(np.abs(corr_sum - conf_sum).sum() / len(confidence))


def tail_mean(quality: FloatArray, fraction: float = TAIL_FRACTION) -> float:
    k = max(1, math.ceil(fraction * len(quality)))
    return float(np.partition(quality, k - 1)[:k].mean())


def seeded_rng(seed: int, model: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(model.encode())])


def bootstrap(values: FloatArray, stat: RowStat, resamples: int,
              rng: np.random.Generator, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile CI of ``stat``, applied row-wise to (b, n, ...) matrices of resampled rows of ``values``."""
    n = len(values)
    if resamples <= 0 or n < 2:
        return None, None
    kind = getattr(stat, "fast", None)
    if kind is not None and values.ndim == 1 and len(np.unique(values)) <= MAX_DISTINCT:
        out = _multinomial(values, kind, resamples, rng)
    else:
        out = np.empty(resamples)
        for start, idx in resample_indices(n, resamples, rng):
            out[start:start + len(idx)] = stat(values[idx])
    return percentile_interval(out, confidence)


def percentile_interval(out: FloatArray, confidence: float = 0.95) -> tuple[float, float]:
    """The central ``confidence`` interval of bootstrap replicates."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(out, [tail, 100 - tail])
    return float(low), float(high)


def resample_indices(n: int, resamples: int, rng: np.random.Generator) -> Iterator[tuple[int, IndexArray]]:
    """(first resample, (b, n) row indices drawn with replacement) in chunks of bounded size.

    int32 indices: drawing them is ~4x cheaper than int64 and gathers read half the bytes, which is
    most of the cost of a bootstrap over 100k rows.
    """
    chunk = max(1, CHUNK_CELLS // n)
    dtype = np.int32 if n < 2**31 else np.int64
    for start in range(0, resamples, chunk):
        yield start, rng.integers(0, n, size=(min(chunk, resamples - start), n), dtype=dtype)


def ece_bins(confidence: FloatArray, bins: int = ECE_BINS) -> IndexArray:
    """The ECE bin of each confidence (1.0 goes to the last bin)."""
    return np.minimum((confidence * bins).astype(np.int64), bins - 1)


def _multinomial(values: FloatArray, kind: str, resamples: int, rng: np.random.Generator) -> FloatArray:
    """The same bootstrap without an n-wide index per resample: drawing n rows with replacement is
    drawing multinomial counts over the distinct values, so means and worst-k means need O(distinct)."""
    distinct, counts = np.unique(values, return_counts=True)  # ascending
    n = len(values)
    draws = rng.multinomial(n, counts / n, size=resamples)
    if kind == "mean":
        return draws @ distinct / n
    return tail_of_counts(distinct, draws, n)


def tail_of_counts(ascending: FloatArray, draws: IndexArray, n: int) -> FloatArray:
    """Worst-⌈5%·n⌉ mean of each resample given as counts (b, k) of the ``ascending`` values."""
    k = max(1, math.ceil(TAIL_FRACTION * n))
    before = np.cumsum(draws, axis=1) - draws  # rows of lower values already taken
    return np.clip(k - before, 0, draws) @ ascending / k


def row_mean(m: FloatArray) -> FloatArray:
    """Mean of each resample (last axis)."""
    out: FloatArray = m.mean(axis=-1)  # numpy types a reduction with an axis as Any
    return out


def row_tail(m: FloatArray) -> FloatArray:
    """Mean of the worst ⌈5%·n⌉ values of each resample (last axis)."""
    k = max(1, math.ceil(TAIL_FRACTION * m.shape[-1]))
    out: FloatArray = np.partition(m, k - 1, axis=-1)[..., :k].mean(axis=-1)
    return out


row_mean.fast = "mean"  # type: ignore[attr-defined]  # lets bootstrap() take the multinomial path


row_tail.fast = "tail"  # type: ignore[attr-defined]  # as row_mean.fast: a marker attribute on a function


def row_ece(m: FloatArray) -> FloatArray:
    """ECE of each resample in a (b, n, 2) matrix of (confidence, correct), in one bincount."""
    b, n, _ = m.shape
    conf, corr = m[:, :, 0], m[:, :, 1]
    idx = np.minimum((conf * ECE_BINS).astype(np.int64), ECE_BINS - 1) + np.arange(b)[:, None] * ECE_BINS
    conf_sum = np.bincount(idx.ravel(), weights=conf.ravel(), minlength=b * ECE_BINS)
    corr_sum = np.bincount(idx.ravel(), weights=corr.ravel(), minlength=b * ECE_BINS)
    out: FloatArray = np.abs((corr_sum - conf_sum).reshape(b, ECE_BINS)).sum(axis=1) / n
    return out


def calibration_resamples(conf: FloatArray, corr: FloatArray, resamples: int,
                          rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Brier and ECE of ``resamples`` bootstrap resamples of the (confidence, correct) rows."""
    n = len(conf)
    strata = ece_bins(conf)
    brier_out, ece_out = np.empty(resamples), np.empty(resamples)
    columns = np.stack([corr - conf, (conf - corr) ** 2], 1)
    for first, _, sums in stratified_sums(strata, columns, resamples, rng):
        ece_out[first:first + len(sums)] = np.abs(sums[:, :, 0]).sum(axis=1) / n
        brier_out[first:first + len(sums)] = sums[:, :, 1].sum(axis=1) / n
    return brier_out, ece_out


def stratified_sums(strata: IndexArray, columns: FloatArray, resamples: int,
                    rng: np.random.Generator) -> Iterator[tuple[int, IndexArray, FloatArray]]:
    """Per bootstrap resample of the rows, the sums of ``columns`` (n, k) within each stratum.

    Drawing n rows with replacement is the same as drawing how many fall in each stratum (multinomial
    over the strata's shares) and then that many rows uniformly within each stratum — the same
    distribution. Per stratum the draws are contiguous, so their sums are one ``np.add.reduceat``: no
    per-draw stratum lookup and no scatter (bincount), which is what makes the row-wise version slow at
    100k rows. Yields (first resample, occupied strata ids, sums of shape (b, strata, k)).
    """
    n = len(strata)
    order = np.argsort(strata, kind="stable")
    values = [np.ascontiguousarray(columns[order, c]) for c in range(columns.shape[1])]  # 1-D gathers are cheaper
    ids, sizes = np.unique(strata, return_counts=True)
    starts = np.cumsum(sizes) - sizes
    dtype = np.int32 if n < 2**31 else np.int64
    chunk = max(1, CHUNK_CELLS // n)
    for first in range(0, resamples, chunk):
        b = min(chunk, resamples - first)
        per_stratum = rng.multinomial(n, sizes / n, size=b)  # (b, strata)
        sums = np.zeros((b, len(ids), columns.shape[1]))
        for j in range(len(ids)):
            counts = per_stratum[:, j]
            has = counts > 0
            if not has.any():
                continue
            small = np.uint16 if sizes[j] <= 65536 else dtype  # narrower draws are cheaper, same distribution
            picks = starts[j] + rng.integers(0, sizes[j], size=int(counts.sum()), dtype=small)
            offsets = (np.cumsum(counts) - counts)[has]
            for c, column in enumerate(values):
                sums[has, j, c] = np.add.reduceat(column[picks], offsets)
        yield first, ids, sums


def paired_bootstrap(a: FloatArray, b: FloatArray, stat: RowStat, resamples: int,
                     rng: np.random.Generator, confidence: float = 0.95,
                     groups: IndexArray | None = None) -> tuple[float | None, float | None]:
    """CI of stat(b) − stat(a), resampling the same pair indices for both sides.

    ``groups`` (one integer per row, e.g. the sample of each repeat) makes it a cluster bootstrap:
    whole groups are resampled, because rows of one group are not independent evidence.
    """
    if groups is not None and len(np.unique(groups)) < len(groups):
        return _cluster_bootstrap(a, b, stat, groups, resamples, rng, confidence)
    if getattr(stat, "fast", None) == "mean":  # a difference of means is the mean of differences
        return bootstrap(b - a, stat, resamples, rng, confidence)
    pairs = np.stack([a, b], axis=-1)
    if getattr(stat, "fast", None) == "tail" and resamples > 0 and len(a) >= 2:
        distinct, counts = np.unique(pairs, axis=0, return_counts=True)
        if len(distinct) <= MAX_DISTINCT:
            return percentile_interval(_tail_delta_by_counts(distinct, counts, resamples, rng), confidence)
    return bootstrap(pairs, lambda m: stat(m[..., 1]) - stat(m[..., 0]), resamples, rng, confidence)


def _tail_delta_by_counts(distinct: FloatArray, counts: IndexArray, resamples: int,
                          rng: np.random.Generator) -> FloatArray:
    """Worst-5% delta per resample when the (baseline, candidate) pairs take few distinct values.

    Drawing n pairs with replacement is drawing multinomial counts over the distinct pairs; each side's
    tail mean then follows from the counts in that side's ascending order. Same distribution as
    resampling rows, at O(distinct pairs) per resample instead of O(n).
    """
    n = int(counts.sum())
    draws = rng.multinomial(n, counts / n, size=resamples)
    out = np.zeros(resamples)
    for side, sign in ((1, 1.0), (0, -1.0)):
        order = np.argsort(distinct[:, side], kind="stable")
        out += sign * tail_of_counts(distinct[order, side], draws[:, order], n)
    return out


def paired_quantile_cis(a: FloatArray, b: FloatArray, qs: list[float], resamples: int, rng: np.random.Generator,
                        confidence: float = 0.95) -> dict[float, tuple[float | None, float | None]]:
    """CIs of quantile(b, q) − quantile(a, q) for several q from one set of paired resamples.

    Each side's values are replaced by their ranks, so a resample's order statistics come from counts:
    a bincount of the resampled ranks, its running sum, and a binary search for each rank the
    quantiles need (linear interpolation, as ``np.quantile``). That is a counting sort, several times
    cheaper than one ``np.partition`` of the resampled floats per quantile and side. Blocks of a few
    resamples keep the count arrays in cache.
    """
    n = len(a)
    if resamples <= 0 or n < 2:
        return {q: (None, None) for q in qs}
    positions = np.array([q * (n - 1) for q in qs])
    lo = np.floor(positions).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = positions - lo
    targets = np.concatenate([lo, hi]) + 1  # the k-th smallest is where the running count reaches k + 1
    sides = []
    for values in (a, b):
        order = np.argsort(values, kind="stable")
        rank = np.empty(n, dtype=np.int32)
        rank[order] = np.arange(n, dtype=np.int32)
        sides.append((values[order], rank))
    out = np.empty((len(qs), resamples))
    block = 4
    for start, idx in resample_indices(n, resamples, rng):
        for first in range(0, len(idx), block):
            rows = idx[first:first + block]
            offsets = (np.arange(len(rows), dtype=np.int64) * n)[:, None]
            per_side = []
            for ascending, rank in sides:
                running = np.cumsum(np.bincount((rank[rows] + offsets).ravel(), minlength=len(rows) * n)
                                    .reshape(len(rows), n), axis=1)
                at = np.stack([np.searchsorted(r, targets) for r in running])  # (rows, 2 × len(qs))
                v_lo, v_hi = ascending[at[:, :len(qs)]], ascending[at[:, len(qs):]]
                per_side.append(v_lo + (v_hi - v_lo) * frac)
            out[:, start + first:start + first + len(rows)] = (per_side[1] - per_side[0]).T
    return {q: percentile_interval(out[i], confidence) for i, q in enumerate(qs)}


def _cluster_bootstrap(a: FloatArray, b: FloatArray, stat: RowStat, groups: IndexArray,
                       resamples: int, rng: np.random.Generator,
                       confidence: float) -> tuple[float | None, float | None]:
    order = np.argsort(groups, kind="stable")
    a, b = a[order], b[order]
    _, g = np.unique(groups[order], return_inverse=True)
    n_groups = int(g.max()) + 1
    if resamples <= 0 or n_groups < 2:
        return None, None
    sizes = np.bincount(g, minlength=n_groups)
    out = np.empty(resamples)
    chunk = max(1, CHUNK_CELLS // len(a))
    if getattr(stat, "fast", None) == "mean":
        # The row mean of a resample is Σ count·(sum of the group) / Σ count·(size of the group):
        # multinomial counts of whole groups are all it needs, O(groups) per resample.
        sums = np.bincount(g, weights=b - a, minlength=n_groups)
        for start in range(0, resamples, chunk):
            draws = rng.multinomial(n_groups, np.full(n_groups, 1 / n_groups), size=min(chunk, resamples - start))
            out[start:start + len(draws)] = (draws @ sums) / (draws @ sizes)
    elif np.all(sizes == sizes[0]):  # the usual case: every sample has the same number of repeats
        ga, gb = a.reshape(n_groups, -1), b.reshape(n_groups, -1)
        for start in range(0, resamples, chunk):
            idx = rng.integers(0, n_groups, size=(min(chunk, resamples - start), n_groups))
            out[start:start + len(idx)] = (stat(gb[idx].reshape(len(idx), -1))
                                           - stat(ga[idx].reshape(len(idx), -1)))
    else:  # a repeat missing somewhere: resamples differ in length, so one at a time
        starts = np.cumsum(sizes) - sizes
        for i in range(resamples):
            picked = rng.integers(0, n_groups, size=n_groups)
            lengths = sizes[picked]
            offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            rows = np.repeat(starts[picked], lengths) + offsets
            out[i] = stat(b[rows][None, :])[0] - stat(a[rows][None, :])[0]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(out, [tail, 100 - tail])
    return float(low), float(high)


def low_tail_replicates(columns: FloatArray, resamples: int, rng: np.random.Generator,
                        spare_sd: float = 8.0) -> FloatArray:
    """Worst-⌈5%·n⌉ means (lowest values) of each column of (n, s) rows, on the same bootstrap resamples of the rows.

    Only the lowest values can enter a resample's tail. Take each column's t lowest rows (t a few standard
    deviations above k) and their union U: a resample's draws that land in U are Binomial(n, |U|/n) in number
    and uniform over U, and whenever a column has at least k of them among its own t lowest, its tail is the k
    lowest of those draws. So each resample costs O(t), not O(n) — the same distribution as resampling n
    rows. A resample where a column falls short (odds far below 1e-9) draws its remaining n − c rows outside
    U and is computed in full, so the result stays exact (``spare_sd``: how many standard deviations of spare
    rows t holds above k; fewer only make that completion more frequent). Returns (resamples, s).
    """
    n, sides = columns.shape
    k = max(1, math.ceil(TAIL_FRACTION * n))
    t = min(n, k + math.ceil(spare_sd * math.sqrt(k)) + 16)
    low = [np.argpartition(columns[:, j], t - 1)[:t] if t < n else np.arange(n) for j in range(sides)]
    union = np.unique(np.concatenate(low))
    per_side = [np.ascontiguousarray(columns[union, j]) for j in range(sides)]  # 1-D gathers are cheaper
    in_low = np.zeros((len(union), sides), dtype=bool)
    for j, rows in enumerate(low):
        in_low[np.searchsorted(union, rows), j] = True
    # which sides' low sets each union row is in, as one code: a bincount of the picks' codes counts them all
    code = (in_low * (1 << np.arange(sides))).sum(axis=1)
    members = np.array([[(c >> j) & 1 for j in range(sides)] for c in range(1 << sides)])  # (codes, sides)
    outside = np.setdiff1d(np.arange(n), union, assume_unique=True)
    counts = rng.binomial(n, len(union) / n, size=resamples)
    out = np.empty((resamples, sides))
    for i, c in enumerate(counts):
        picks = rng.integers(0, len(union), size=int(c), dtype=np.int32)
        enough = np.bincount(code[picks], minlength=1 << sides) @ members >= k
        if enough.all():
            out[i] = [np.partition(values[picks], k - 1)[:k].mean() for values in per_side]
        else:  # complete this very resample with its draws outside U
            rest = outside[rng.integers(0, len(outside), size=n - int(c))] if len(outside) else outside
            full = np.concatenate([columns[union[picks]], columns[rest]])
            out[i] = np.partition(full, k - 1, axis=0)[:k].mean(axis=0)
    return out
