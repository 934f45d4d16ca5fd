"""Paired comparison of a baseline and a candidate on the same samples.

A *side* is one model of one run. Rows of both sides are matched by (sample id, repeat); samples on
one side only are reported, never silently dropped. On the matched pairs:

- **McNemar** for correctness, schema validity and feasibility: b = baseline yes / candidate no,
  c = baseline no / candidate yes; exact two-sided binomial test when b + c < 25, else the χ² test
  with continuity correction.
- **Paired bootstrap** for the difference (candidate − baseline) of every mean metric and of latency
  percentiles: both sides are resampled with the *same* sample indices (seeded, vectorised in chunks),
  and the percentile interval of the differences is reported with the point estimate. With repeats,
  whole samples are resampled (all their repeats together): repeats of one sample are correlated — a
  model at temperature 0 answers the same five times — so counting them as independent rows would
  narrow the interval by up to √repeats and fail gates on noise.

Samples on one side only are listed by id; a sample on both sides whose repeat counts differ (one run
with ``repeats: 1``, the other with 3) is paired on the repeats both have, and the surplus rows are
counted in ``unpaired_repeats``, not listed as missing samples.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from evalkit.analysis.bootstrap import (
    ECE_BINS,
    _cluster_bootstrap,
    ece,
    ece_bins,
    paired_bootstrap,
    paired_quantile_cis,
    percentile_interval,
    row_ece,
    row_mean,
    row_tail,
    stratified_sums,
)
from evalkit.analysis.classification import label_spec, paired_values
from evalkit.analysis.metrics import confident_threshold
from evalkit.analysis.tail_deltas import confidence_tail_deltas
from evalkit.analysis.text_quality import text_metric_arrays
from evalkit.errors import ConfigError
from evalkit.scoring.text_metrics import TEXT_METRICS
from evalkit.store.db import Store

EXACT_BELOW = 25
# Metrics paired_deltas() compares; a relative gate (max_drop / max_rise) needs one of them.
PAIRED_METRICS = frozenset({
    "accuracy", "quality_mean", "error_rate", "schema_valid_rate", "feasible_rate", "valid_but_infeasible_rate",
    "tail5", "brier", "ece", "cost_per_1k", "latency_ms_p50", "latency_ms_p90", "latency_ms_p95",
    "latency_ms_p99", "ttft_ms_p50", "ttft_ms_p95",
    "tail5_brier", "confident_error_rate", "macro_f1", "weighted_f1", "micro_f1", "jaccard", "token_f1", "rouge_l",
    "chrf"})


@dataclass(frozen=True)
class Side:
    """One model of one run."""

    run_id: str
    model: str

    def __str__(self) -> str:
        return f"{self.run_id}:{self.model}"


def parse_side(text: str, default_run: str | None, store: Store) -> Side:
    """``RUN:MODEL`` or ``MODEL`` (of ``default_run``); RUN may be an id, a unique prefix or 'latest'."""
    run, sep, model = text.rpartition(":")
    if not sep:
        if default_run is None:
            raise ConfigError(f"'{text}' names no run; write RUN_ID:{text}")
        run, model = default_run, text
    run_id = store.resolve_run_id(run)
    models = [m["model"] for m in store.run_models(run_id)]
    if model not in models:
        raise ConfigError(f"run {run_id} has no model '{model}'; it has {models}")
    return Side(run_id, model)


@dataclass
class Pairing:
    """Matched rows of both sides (columns suffixed _b for baseline, _c for candidate)."""

    baseline: Side
    candidate: Side
    rows: pd.DataFrame
    only_baseline: list[str] = field(default_factory=list)
    only_candidate: list[str] = field(default_factory=list)
    unpaired_repeats: dict[str, int] = field(default_factory=lambda: {"baseline": 0, "candidate": 0})
    confident_threshold: float = 0.9  # confident_error_rate's, from the candidate run's config
    labels: tuple[str | None, list[str]] = (None, [])  # output type and allowed labels (candidate run's config)


def _load(store: Store, side: Side) -> pd.DataFrame:
    frame: pd.DataFrame = store.side_frame(side.run_id, side.model)
    return frame


def pair(store: Store, baseline: Side, candidate: Side) -> Pairing:
    """Match the two sides' rows by sample id and repeat."""
    b, c = _load(store, baseline), _load(store, candidate)
    merged = b.merge(c, on=["sample_id", "repeat"], how="outer", suffixes=("_b", "_c"), indicator=True)
    ids_b, ids_c = set(b["sample_id"]), set(c["sample_id"])
    # A sample is on one side only when the other side has none of its repeats; a surplus repeat of a
    # sample both sides have is counted, not reported as a missing sample.
    only_b, only_c = sorted(ids_b - ids_c), sorted(ids_c - ids_b)
    one_side = merged[merged["_merge"] != "both"]  # usually empty: test membership only there
    shared = one_side["sample_id"].isin(ids_b & ids_c)
    surplus = {"baseline": int((shared & (one_side["_merge"] == "left_only")).sum()),
               "candidate": int((shared & (one_side["_merge"] == "right_only")).sum())}
    rows = merged[merged["_merge"] == "both"].drop(columns="_merge").reset_index(drop=True)
    if rows.empty:
        raise ConfigError(f"{baseline} and {candidate} share no sample: nothing to compare")
    run = store.get_run(candidate.run_id)
    config = json.loads(run["config"]) if isinstance(run.get("config"), str) else run.get("config")
    return Pairing(baseline, candidate, rows, only_b, only_c, surplus, confident_threshold(config), label_spec(config))


@dataclass(frozen=True)
class McNemar:
    """Paired test of a yes/no property: b = lost by the candidate, c = gained."""

    b: int
    c: int
    statistic: float | None
    p_value: float
    method: str


def mcnemar(baseline_yes: np.ndarray, candidate_yes: np.ndarray) -> McNemar:
    """McNemar's test; exact binomial below 25 discordant pairs, χ² with continuity correction above."""
    b = int(np.sum(baseline_yes & ~candidate_yes))
    c = int(np.sum(~baseline_yes & candidate_yes))
    if b + c == 0:
        return McNemar(b, c, None, 1.0, "no discordant pairs")
    if b + c < EXACT_BELOW:
        return McNemar(b, c, float(min(b, c)), float(stats.binomtest(min(b, c), b + c, 0.5).pvalue), "exact binomial")
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    return McNemar(b, c, float(statistic), float(stats.chi2.sf(statistic, 1)), "chi-square, continuity corrected")


@dataclass(frozen=True)
class Delta:
    """A metric on the paired samples: both values, the difference and its bootstrap CI."""

    metric: str
    baseline: float | None
    candidate: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    n: int


def flags(series: pd.Series) -> np.ndarray:
    """A nullable boolean column as 1.0/0.0, NULL counting as 0 (not correct, not valid, not feasible)."""
    return series.astype("float64").fillna(0.0).to_numpy()


def _quantile(q: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda m: np.quantile(m, q, axis=-1)


def _delta(name: str, a: np.ndarray, b: np.ndarray, stat: Callable[[np.ndarray], np.ndarray], resamples: int,
           rng: np.random.Generator, confidence: float, groups: np.ndarray | None = None) -> Delta:
    if len(a) == 0:
        return Delta(name, None, None, None, None, None, 0)
    va, vb = float(stat(a[None, :])[0]), float(stat(b[None, :])[0])
    low, high = paired_bootstrap(a, b, stat, resamples, rng, confidence, groups)
    return Delta(name, va, vb, vb - va, low, high, len(a))


def _paired_calibration_cis(cb: np.ndarray, yb: np.ndarray, cc: np.ndarray, yc: np.ndarray, resamples: int,
                            rng: np.random.Generator, confidence: float) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """CIs of ECE(candidate) − ECE(baseline) and of the Brier difference, from the same paired resamples.

    The pairs are stratified by (baseline bin, candidate bin); each side's per-bin sums of
    (correct − confidence) are sums over the strata that share its bin, and the Brier difference is the
    sum of the per-pair squared-error differences.
    """
    n = len(cb)
    if resamples <= 0 or n < 2:
        return (None, None), (None, None)
    bins_b, bins_c = ece_bins(cb), ece_bins(cc)
    columns = np.stack([yb - cb, yc - cc, (cc - yc) ** 2 - (cb - yb) ** 2], 1)
    ece_out, brier_out = np.empty(resamples), np.empty(resamples)
    for first, ids, sums in stratified_sums(bins_b * ECE_BINS + bins_c, columns, resamples, rng):
        to_b = np.eye(ECE_BINS)[ids // ECE_BINS]  # (strata, bins): which baseline bin each stratum is in
        to_c = np.eye(ECE_BINS)[ids % ECE_BINS]
        ece_b = np.abs(sums[:, :, 0] @ to_b).sum(axis=1) / n
        ece_c = np.abs(sums[:, :, 1] @ to_c).sum(axis=1) / n
        ece_out[first:first + len(sums)] = ece_c - ece_b
        brier_out[first:first + len(sums)] = sums[:, :, 2].sum(axis=1) / n
    return percentile_interval(ece_out, confidence), percentile_interval(brier_out, confidence)


def paired_deltas(pairing: Pairing, seed: int = 0, resamples: int = 2000, confidence: float = 0.95) -> dict[str, Delta]:
    """Candidate − baseline for every comparable metric, with paired bootstrap CIs."""
    rows = pairing.rows
    rng = np.random.default_rng([seed, zlib.crc32(f"{pairing.baseline}|{pairing.candidate}".encode())])
    sample = pd.factorize(rows["sample_id"])[0]  # the resampling unit: a sample with all its repeats
    out: dict[str, Delta] = {}
    ok_b, ok_c = (rows["status_b"] == "ok").to_numpy(), (rows["status_c"] == "ok").to_numpy()
    means = {
        "accuracy": (flags(rows["correct_b"]), flags(rows["correct_c"])),
        "quality_mean": (rows["quality_b"].to_numpy(float), rows["quality_c"].to_numpy(float)),
        "error_rate": ((~ok_b).astype(float), (~ok_c).astype(float)),
    }
    if rows["schema_valid_b"].notna().any() or rows["schema_valid_c"].notna().any():
        means["schema_valid_rate"] = (flags(rows["schema_valid_b"]), flags(rows["schema_valid_c"]))
    if rows["feasible_b"].notna().any() or rows["feasible_c"].notna().any():
        means["feasible_rate"] = (flags(rows["feasible_b"]), flags(rows["feasible_c"]))
        vbi_b = flags(rows["schema_valid_b"]) * (1 - flags(rows["feasible_b"]))
        vbi_c = flags(rows["schema_valid_c"]) * (1 - flags(rows["feasible_c"]))
        means["valid_but_infeasible_rate"] = (vbi_b, vbi_c)
    for name, (a, b) in means.items():
        out[name] = _delta(name, a, b, row_mean, resamples, rng, confidence, sample)
    out["tail5"] = _delta("tail5", *means["quality_mean"], row_tail, resamples, rng, confidence, sample)
    conf = rows["confidence_b"].notna() & rows["confidence_c"].notna()
    if conf.any():
        cb, cc = rows.loc[conf, "confidence_b"].to_numpy(float), rows.loc[conf, "confidence_c"].to_numpy(float)
        yb, yc = flags(rows.loc[conf, "correct_b"]), flags(rows.loc[conf, "correct_c"])
        in_conf = sample[conf.to_numpy()]
        sq_b, sq_c = (cb - yb) ** 2, (cc - yc) ** 2
        e_b, e_c = ece(cb, yb), ece(cc, yc)
        if len(np.unique(in_conf)) < len(in_conf):  # repeats: resample whole samples
            out["brier"] = _delta("brier", sq_b, sq_c, row_mean, resamples, rng, confidence, in_conf)
            low, high = _cluster_bootstrap(np.stack([cb, yb], 1), np.stack([cc, yc], 1),
                                           lambda m: row_ece(m.reshape(len(m), -1, 2)), in_conf, resamples, rng,
                                           confidence)
        else:
            (low, high), brier_ci = _paired_calibration_cis(cb, yb, cc, yc, resamples, rng, confidence)
            vb, vc = float(sq_b.mean()), float(sq_c.mean())
            out["brier"] = Delta("brier", vb, vc, vc - vb, *brier_ci, len(cb))
        out["ece"] = Delta("ece", e_b, e_c, e_c - e_b, low, high, int(conf.sum()))
    cost = rows["cost_usd_b"].notna() & rows["cost_usd_c"].notna()
    if cost.any():
        out["cost_per_1k"] = _delta("cost_per_1k", rows.loc[cost, "cost_usd_b"].to_numpy(float) * 1000,
                                    rows.loc[cost, "cost_usd_c"].to_numpy(float) * 1000, row_mean, resamples, rng,
                                    confidence, sample[cost.to_numpy()])
    both_ok = ok_b & ok_c
    # an imported log may hold no latency (NULL, never invented): compare the pairs timed on both sides
    timed = both_ok & rows["latency_ms_b"].notna().to_numpy() & rows["latency_ms_c"].notna().to_numpy()
    lat_b, lat_c = rows.loc[timed, "latency_ms_b"].to_numpy(float), rows.loc[timed, "latency_ms_c"].to_numpy(float)
    out.update(_quantile_deltas("latency_ms", lat_b, lat_c, (50, 90, 95, 99), resamples, rng, confidence,
                                sample[timed]))
    streamed = both_ok & rows["ttft_ms_b"].notna().to_numpy() & rows["ttft_ms_c"].notna().to_numpy()
    ttft_b, ttft_c = rows.loc[streamed, "ttft_ms_b"].to_numpy(float), rows.loc[streamed, "ttft_ms_c"].to_numpy(float)
    out.update(_quantile_deltas("ttft_ms", ttft_b, ttft_c, (50, 95), resamples, rng, confidence, sample[streamed]))
    if conf.any():  # last, so the CIs above keep the random draws they had before these metrics existed
        for name, values in confidence_tail_deltas(cb, yb, cc, yc, pairing.confident_threshold, resamples, rng,
                                                   confidence, in_conf).items():
            out[name] = Delta(name, *values)
    text_b, text_c = (text_metric_arrays(rows.get(f"text_scores_{s}")) for s in "bc")
    for name in TEXT_METRICS if text_b or text_c else ():  # last: the draws above stay as they were
        zeros = np.zeros(len(rows))
        out[name] = _delta(name, text_b.get(name, zeros), text_c.get(name, zeros), row_mean, resamples, rng,
                           confidence, sample)
    kind, labels = pairing.labels  # classification: after the rest, for the same reason
    for name, values in paired_values(rows, kind, labels, resamples, rng, confidence, sample).items():
        out[name] = Delta(name, *values)
    return out


def _quantile_deltas(prefix: str, a: np.ndarray, b: np.ndarray, percents: tuple[int, ...], resamples: int,
                     rng: np.random.Generator, confidence: float, groups: np.ndarray) -> dict[str, Delta]:
    """Percentile deltas with paired CIs; all percentiles share one set of resamples (one per sample
    cluster when there are repeats)."""
    if len(a) == 0 or len(np.unique(groups)) < len(groups):
        return {f"{prefix}_p{q}": _delta(f"{prefix}_p{q}", a, b, _quantile(q / 100), resamples, rng, confidence,
                                         groups) for q in percents}
    cis = paired_quantile_cis(a, b, [q / 100 for q in percents], resamples, rng, confidence)
    out = {}
    for q in percents:
        va, vb = float(np.quantile(a, q / 100)), float(np.quantile(b, q / 100))
        low, high = cis[q / 100]
        out[f"{prefix}_p{q}"] = Delta(f"{prefix}_p{q}", va, vb, vb - va, low, high, len(a))
    return out


def mcnemar_tests(pairing: Pairing) -> dict[str, McNemar]:
    """McNemar on correctness, and on schema validity and feasibility where the suite defines them."""
    rows = pairing.rows
    out = {"correct": mcnemar(flags(rows["correct_b"]) > 0, flags(rows["correct_c"]) > 0)}
    for name in ("schema_valid", "feasible"):
        if rows[f"{name}_b"].notna().any():
            out[name] = mcnemar(flags(rows[f"{name}_b"]) > 0, flags(rows[f"{name}_c"]) > 0)
    return out


def regressions(pairing: Pairing, limit: int | None = None) -> list[dict[str, Any]]:
    """Samples the candidate gets wrong (or newly invalid or infeasible) that the baseline got right."""
    rows = pairing.rows
    def lost(column: str) -> npt.NDArray[np.bool_]:  # had it on the baseline side, lost it on the candidate side
        had: npt.NDArray[np.bool_] = (flags(rows[f"{column}_b"]) > 0) & (flags(rows[f"{column}_c"]) == 0)
        return had

    lost_correct, lost_valid, lost_feasible = lost("correct"), lost("schema_valid"), lost("feasible")
    where = np.flatnonzero(lost_correct | lost_valid | lost_feasible)
    # Column lists instead of iterrows(): a 100k-sample comparison can have 10k regressions.
    picked = rows.iloc[where]
    columns = {name: picked[name].tolist() for name in (
        "sample_id", "repeat", "slice_b", "target_b", "output_b", "output_c", "error_c", "violations_c",
        "quality_b", "quality_c")}
    out = []
    for j, i in enumerate(where):
        kinds = [k for k, flag in (("wrong", lost_correct[i]), ("invalid", lost_valid[i]),
                                   ("infeasible", lost_feasible[i])) if flag]
        out.append({"sample_id": columns["sample_id"][j], "repeat": int(columns["repeat"][j]),
                    "slice": _text(columns["slice_b"][j]), "lost": kinds, "target": _text(columns["target_b"][j]),
                    "baseline_output": _text(columns["output_b"][j]), "candidate_output": _text(columns["output_c"][j]),
                    "candidate_error": _text(columns["error_c"][j]),
                    "candidate_violations": _text(columns["violations_c"][j]),
                    "quality_baseline": float(columns["quality_b"][j]),
                    "quality_candidate": float(columns["quality_c"][j])})
    return out[:limit] if limit else out


def _text(value: Any) -> str | None:
    """A text cell as str or None: pandas reads NULL in a string column as NaN, which is not JSON."""
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def slice_table(pairing: Pairing) -> list[dict[str, Any]]:
    """Per slice: pairs, baseline and candidate accuracy, and the difference."""
    rows = pairing.rows
    if rows["slice_b"].isna().all():
        return []
    frame = pd.DataFrame({"slice": rows["slice_b"].fillna("(none)"), "b": flags(rows["correct_b"]),
                          "c": flags(rows["correct_c"])})
    out = []
    for name, g in frame.groupby("slice", sort=True):
        out.append({"slice": str(name), "n": int(len(g)), "baseline_accuracy": float(g["b"].mean()),
                    "candidate_accuracy": float(g["c"].mean()), "delta": float(g["c"].mean() - g["b"].mean())})
    return sorted(out, key=lambda r: r["delta"])


__all__ = ["PAIRED_METRICS", "flags", "Side", "Pairing", "McNemar", "Delta", "parse_side", "pair", "mcnemar", "mcnemar_tests",
           "paired_bootstrap", "paired_deltas", "regressions", "slice_table"]


COMPARE_FORMAT = "evalkit.compare/1"


def compare_document(pairing: Pairing, seed: int = 0, resamples: int = 2000) -> dict[str, Any]:
    """The ``evalkit.compare/1`` document: every paired delta with its CI, McNemar tests, regressions, slices."""
    regressed = regressions(pairing)
    return {"format": COMPARE_FORMAT, "baseline": str(pairing.baseline), "candidate": str(pairing.candidate),
            "n_pairs": len(pairing.rows), "only_baseline": pairing.only_baseline,
            "only_candidate": pairing.only_candidate, "unpaired_repeats": pairing.unpaired_repeats,
            "deltas": {k: asdict(v) for k, v in paired_deltas(pairing, seed, resamples).items()},
            "mcnemar": {k: asdict(v) for k, v in mcnemar_tests(pairing).items()},
            "regressions": regressed, "slices": slice_table(pairing), "n_regressions": len(regressed)}
