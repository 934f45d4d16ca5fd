"""The LLM judge's metrics, from the stored ``judgements`` (never from memory): what the judge cost, how
often it failed, whether it agrees with people, and (pairwise) the candidate's win rate and how often the
judge changed its mind when the two answers swapped places.

Per judged model:

- ``judge_calls``: judge requests made by this run (attempts; 0 when every verdict came from the cache);
- ``judge_cost_usd``: the judge calls' cost (a reused verdict keeps its original cost, as a reused answer
  does) — never part of the model's own ``cost_usd``;
- ``judge_errors``: verdicts that could not be read or whose call failed (pointwise ones are score errors);
- with ``scoring.judge.human``, on the model people scored (``human_model``, default ``gates.baseline``),
  over its rows whose sample has a person's score (``n``): ``judge_agreement``
  (share where the judge's score equals the person's), ``judge_kappa`` (Cohen's kappa, pass_fail) or
  ``judge_spearman`` (Spearman's rank correlation, scales), each with a percentile-bootstrap CI;
- with ``pairwise``, on the candidate, over the pairs judged readably in both orders (``n``):
  ``judge_win_rate`` (win 1, tie 0.5, loss 0, the mean of the two orders) and
  ``judge_position_disagreement`` (share of pairs whose two verdicts differ).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from evalkit.analysis.bootstrap import (
    FloatArray,
    bootstrap,
    percentile_interval,
    resample_indices,
    row_mean,
    seeded_rng,
)
from evalkit.config.judge_spec import JudgeSpec
from evalkit.scoring.judge import human_rater_model, human_score

if TYPE_CHECKING:
    from evalkit.store.db import Store

Value = tuple[float | None, float | None, float | None, int]  # value, ci_low, ci_high, n

JUDGE_INFO: list[tuple[str, bool | None, str]] = [
    ("judge_calls", None, "LLM judge requests made for this model's rows by this run (0: all from the cache)"),
    ("judge_cost_usd", False, "cost of the judge calls for this model's rows (USD), never in its cost_usd"),
    ("judge_errors", False, "judge verdicts that could not be read or whose call failed"),
    ("judge_agreement", True, "share of the human-labelled rows where the judge's score equals the person's"),
    ("judge_kappa", True, "Cohen's kappa of judge and people on the labelled rows (pass_fail judges)"),
    ("judge_spearman", True, "Spearman rank correlation of judge and people on the labelled rows (scales)"),
    ("judge_win_rate", True, "pairwise: candidate's mean score against the baseline (win 1, tie 0.5), both orders"),
    ("judge_position_disagreement", False, "pairwise: share of pairs whose verdict changed when the answers "
     "swapped places"),
]


def kappa_rows(j: FloatArray, h: FloatArray) -> FloatArray:
    """Cohen's kappa of two binary raters, row-wise over (b, n) matrices; NaN where chance agreement is 1."""
    po = (j == h).mean(axis=1)
    pj, ph = j.mean(axis=1), h.mean(axis=1)
    pe = pj * ph + (1 - pj) * (1 - ph)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = np.where(pe < 1.0, (po - pe) / (1.0 - pe), np.nan)
    return out


MAX_CODES = 64


def _row_ranks(m: FloatArray) -> FloatArray:
    """Average ranks (ties share the mean of their positions) of each row; for rows of small non-negative
    integers (a scale's dense codes) by counting, without sorting."""
    k = int(m.max()) + 1 if m.size else 0
    if not m.size or m.min() < 0 or k > MAX_CODES or not np.array_equal(m, np.floor(m)):
        ranked: FloatArray = rankdata(m, axis=1)
        return ranked
    b = m.shape[0]
    codes = m.astype(np.int64)
    counts = np.bincount((np.arange(b)[:, None] * k + codes).ravel(), minlength=b * k).reshape(b, k)
    average = np.cumsum(counts, axis=1) - counts + (counts + 1) / 2.0
    out: FloatArray = np.take_along_axis(average, codes, axis=1)
    return out


def dense_codes(x: FloatArray) -> FloatArray:
    """Each value's index among the distinct values (order kept, so ranks are unchanged)."""
    codes: FloatArray = np.unique(x, return_inverse=True)[1].astype("float64").reshape(x.shape)
    return codes


def spearman_rows(j: FloatArray, h: FloatArray) -> FloatArray:
    """Spearman's rho row-wise (average ranks for ties); NaN where either side is constant."""
    rj = _row_ranks(j)
    rh = _row_ranks(h)
    rj -= rj.mean(axis=1, keepdims=True)
    rh -= rh.mean(axis=1, keepdims=True)
    den = np.sqrt((rj * rj).sum(axis=1) * (rh * rh).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = np.where(den > 0, (rj * rh).sum(axis=1) / den, np.nan)
    return out


def agreement_rows(j: FloatArray, h: FloatArray) -> FloatArray:
    out: FloatArray = (np.abs(j - h) < 1e-9).mean(axis=1)
    return out


def _paired(stat: Any, j: FloatArray, h: FloatArray, resamples: int, rng: np.random.Generator) -> Value:
    n = len(j)
    if n == 0:
        return (None, None, None, 0)
    point = float(stat(j[None, :], h[None, :])[0])
    value = None if np.isnan(point) else point
    if resamples <= 0 or n < 2:
        return (value, None, None, n)
    out = np.empty(resamples)
    for start, idx in resample_indices(n, resamples, rng):
        out[start:start + len(idx)] = stat(j[idx], h[idx])
    out = out[~np.isnan(out)]
    low, high = percentile_interval(out) if len(out) else (None, None)
    return (value, low, high, n)


def _mean(x: FloatArray, resamples: int, rng: np.random.Generator) -> Value:
    """A mean with its bootstrap CI (few distinct values: the multinomial shortcut of :func:`bootstrap`)."""
    if len(x) == 0:
        return (None, None, None, 0)
    low, high = bootstrap(x, row_mean, resamples, rng)
    return (float(x.mean()), low, high, len(x))


def _spec(config: dict[str, Any]) -> JudgeSpec | None:
    raw = ((config or {}).get("scoring") or {}).get("judge")
    if not raw:
        return None
    return JudgeSpec(model="-", rubric="-", scale=raw.get("scale", [1, 5]), human=raw.get("human"))


def _human(spec: JudgeSpec, text: Any) -> float | None:
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return None
    try:
        return human_score(spec, json.loads(str(text)))
    except ValueError:
        return None


def judge_values(store: Store, run_id: str, config: dict[str, Any], seed: int,
                 resamples: int) -> dict[str, dict[str, Value]]:
    """Every judged model's judge metrics (empty when the run has no judge)."""
    spec = _spec(config)
    if spec is None:
        return {}
    frame: pd.DataFrame = store.judgements_frame(run_id, spec.human)
    out: dict[str, dict[str, Value]] = {}
    for model, rows in frame.groupby("model", sort=True):
        rng = seeded_rng(seed, f"judge:{model}")
        called = rows[~rows["cache_hit"].astype(bool)]
        cost = rows["cost_usd"].to_numpy(dtype="float64", na_value=np.nan)
        priced = ~np.isnan(cost)
        values: dict[str, Value] = {
            "judge_calls": (float(called["attempts"].fillna(0).sum()), None, None, len(rows)),
            "judge_cost_usd": (float(cost[priced].sum()) if priced.any() else None, None, None, int(priced.sum())),
            "judge_errors": (float((rows["status"] == "error").sum()), None, None, len(rows)),
        }
        point = rows[(rows["kind"] == "pointwise") & (rows["status"] == "ok")]
        if spec.human is not None and str(model) == human_rater_model(config):
            texts = point["human"].astype(object).where(point["human"].notna(), None)
            known = {t: _human(spec, t) for t in set(texts)}  # each distinct label read once
            humans = np.array([known[t] for t in texts], dtype="float64")
            labelled = ~np.isnan(humans)
            j = point["score"].to_numpy(dtype="float64")[labelled]
            h = humans[labelled]
            values["judge_agreement"] = _paired(agreement_rows, j, h, resamples, rng)
            if spec.pass_fail:
                values["judge_kappa"] = _paired(kappa_rows, j, h, resamples, rng)
            else:  # on dense codes: the same ranks, counted instead of sorted
                values["judge_spearman"] = _paired(spearman_rows, dense_codes(j), dense_codes(h), resamples, rng)
        pairs = rows[(rows["kind"] == "pairwise") & (rows["status"] == "ok")]
        if len(pairs):
            wide = pairs.pivot_table(index=["sample_id", "repeat"], columns="pair_order", values="score",
                                     aggfunc="first")
            both = wide.dropna(subset=[c for c in ("AB", "BA") if c in wide.columns]) if {"AB", "BA"} <= set(
                wide.columns) else wide.iloc[0:0]
            ab = both["AB"].to_numpy(dtype="float64") if len(both) else np.empty(0)
            ba = both["BA"].to_numpy(dtype="float64") if len(both) else np.empty(0)
            values["judge_win_rate"] = _mean((ab + ba) / 2.0, resamples, rng)
            values["judge_position_disagreement"] = _mean((np.abs(ab - ba) > 1e-9).astype("float64"), resamples, rng)
        out[str(model)] = values
    return out


def judge_summary(config: dict[str, Any]) -> dict[str, Any] | None:
    """``evalkit show --json``'s ``judge`` block: who judged how (None without a judge); its metrics are the
    judged models' ``judge_*`` metrics."""
    raw = ((config or {}).get("scoring") or {}).get("judge")
    if not raw:
        return None
    return {"model": raw.get("model"), "scale": raw.get("scale", [1, 5]), "pairwise": bool(raw.get("pairwise")),
            "human": raw.get("human"), "human_model": human_rater_model(config) if raw.get("human") else None,
            "reference": raw.get("reference") is not None}
