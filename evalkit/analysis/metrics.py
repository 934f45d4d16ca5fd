"""Aggregate metrics per model, computed from stored result rows (never from in-memory state).

Every point estimate here equals a documented SQL query over the ``results`` table (README, "Metric
definitions"; ``tests/test_metrics_sql.py`` checks each one). Means carry a 95% percentile-bootstrap
confidence interval, resampling samples with a seeded generator, vectorised in chunks.

The metric names and directions are a public contract (``evalkit show --json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.analysis.bootstrap import (
    ECE_BINS,
    MAX_DISTINCT,
    FloatArray,
    RowStat,
    bootstrap,
    calibration_resamples,
    ece,
    low_tail_replicates,
    percentile_interval,
    row_mean,
    row_tail,
    seeded_rng,
    tail_mean,
)
from evalkit.analysis.capacity import stored_cost_values, throughput
from evalkit.analysis.judge_metrics import JUDGE_INFO, judge_values

if TYPE_CHECKING:
    from evalkit.store.db import Store


@dataclass(frozen=True)
class MetricInfo:
    """What a metric means and which way is better (None: neither, e.g. a count)."""

    name: str
    higher_is_better: bool | None
    description: str


_INFO = [
    MetricInfo("n", None, "result rows (samples × repeats)"),
    MetricInfo("n_errors", False, "rows whose model call failed after retries"),
    MetricInfo("accuracy", True, "share of rows judged correct; errors count as incorrect"),
    MetricInfo("accuracy_answered", True, "share correct among rows whose call succeeded"),
    MetricInfo("quality_mean", True, "mean quality score in [0, 1]; errors count as 0"),
    MetricInfo("schema_valid_rate", True, "share of rows whose answer is schema-valid (label: a known label)"),
    MetricInfo("feasible_rate", True, "share of rows whose answer passes every feasibility check"),
    MetricInfo("valid_but_infeasible_rate", False, "share schema-valid yet infeasible: looks right, isn't"),
    MetricInfo("brier", False, "mean (confidence − correct)² over rows with a confidence"),
    MetricInfo("ece", False, f"expected calibration error, {ECE_BINS} equal-width bins"),
    MetricInfo("confidence_coverage", True, "share of rows that have a confidence"),
    MetricInfo("tail5", True, "mean quality of the worst ⌈5%·n⌉ rows"),
    MetricInfo("tail5_brier", False, "mean (confidence − correct)² of the worst ⌈5%·m⌉ of the m rows with a "
               "confidence (worst: highest squared error)"),
    MetricInfo("confident_error_rate", False, "share of the rows with a confidence that are wrong with "
               "confidence ≥ confidence.confident_threshold (default 0.9)"),
    MetricInfo("latency_ms_p50", False, "median wall latency of successful calls (ms)"),
    MetricInfo("latency_ms_p90", False, "90th percentile latency (ms)"),
    MetricInfo("latency_ms_p95", False, "95th percentile latency (ms)"),
    MetricInfo("latency_ms_p99", False, "99th percentile latency (ms)"),
    MetricInfo("ttft_ms_p50", False, "median time to first token of streamed calls (ms)"),
    MetricInfo("ttft_ms_p95", False, "95th percentile time to first token (ms)"),
    MetricInfo("client_lag_ms_p95", False, "95th percentile of how late the client's event loop ran during a "
               "call (ms): the harness's own share of the latency, at most"),
    MetricInfo("error_rate", False, "share of rows whose call failed after retries"),
    MetricInfo("prompt_tokens", None, "prompt tokens, summed"),
    MetricInfo("completion_tokens", None, "completion tokens, summed"),
    MetricInfo("prompt_tokens_mean", None, "prompt tokens per successful call"),
    MetricInfo("completion_tokens_mean", None, "completion tokens per successful call"),
    MetricInfo("cost_usd", False, "total cost of the rows that have one (USD)"),
    MetricInfo("cost_per_1k", False, "cost per 1,000 rows (USD), mean over priced rows × 1000"),
    MetricInfo("n_score_errors", False, "rows where a custom scorer or check raised"),
    MetricInfo("throughput_rps", True, "successful requested (not cached) rows per second of the model's wall time"),
    MetricInfo("output_tokens_per_s", True, "completion tokens of those rows per second of wall time"),
    MetricInfo("monthly_cost_usd", False, "monthly cost at run.volume_per_day: always-on replicas when "
               "self-hosted, per call for APIs (USD)"),
    MetricInfo("replicas_needed", False, "self-hosted replicas that volume needs (at least cost.min_replicas)"),
    MetricInfo("break_even_requests_per_day", False, "lowest daily volume at which self-hosting costs no more "
               "than the baseline's API (null: never, or not self-hosted)"),
    *(MetricInfo(*info) for info in JUDGE_INFO),  # the LLM judge's (evalkit.analysis.judge_metrics)
]
METRICS: dict[str, MetricInfo] = {m.name: m for m in _INFO}


@dataclass(frozen=True)
class MetricValue:
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0


def _bool(series: pd.Series) -> FloatArray:
    """A nullable boolean column as float (1/0) with NULL → NaN."""
    # asarray: no copy (already float64), but pandas-stubs type any float Series' to_numpy as floating[Any]
    return np.asarray(series.astype("float64").to_numpy(na_value=np.nan), dtype=np.float64)


def _mean_metric(x: FloatArray, resamples: int, rng: np.random.Generator,
                 stat: RowStat = row_mean) -> MetricValue:
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return MetricValue(None, n=0)
    point = float(stat(x[None, :])[0])
    low, high = bootstrap(x, stat, resamples, rng)
    return MetricValue(point, low, high, len(x))


def _calibration_metrics(conf: FloatArray, corr: FloatArray, resamples: int,
                         rng: np.random.Generator) -> tuple[MetricValue, MetricValue]:
    """Brier and ECE with CIs, from the same resamples (both are over the rows with a confidence)."""
    n = len(conf)
    squared = (conf - corr) ** 2
    brier_ci: tuple[float | None, float | None] = (None, None)
    ece_ci: tuple[float | None, float | None] = (None, None)
    if resamples > 0 and n >= 2:
        brier_out, ece_out = calibration_resamples(conf, corr, resamples, rng)
        brier_ci, ece_ci = percentile_interval(brier_out), percentile_interval(ece_out)
    return (MetricValue(float(squared.mean()), *brier_ci, n),
            MetricValue(ece(conf, corr), *ece_ci, n))


def _confidence_tails(conf: FloatArray, corr: FloatArray, threshold: float, resamples: int,
                      rng: np.random.Generator) -> tuple[MetricValue, MetricValue]:
    """tail5_brier and confident_error_rate over the rows with a confidence.

    The worst 5% by squared error is the lowest 5% of its negation: the tail machinery of ``tail5`` (its
    count shortcut for few distinct values, else the low-tail shortcut) applies to −(confidence − correct)²,
    negated back.
    """
    neg = -((conf - corr) ** 2)
    low: float | None
    high: float | None
    if resamples > 0 and len(neg) >= 2 and len(np.unique(neg)) > MAX_DISTINCT:  # e.g. logprob confidences
        low, high = percentile_interval(low_tail_replicates(neg[:, None], resamples, rng)[:, 0])
    else:
        low, high = bootstrap(neg, row_tail, resamples, rng)
    tail = MetricValue(-tail_mean(neg), None if high is None else -high, None if low is None else -low, len(conf))
    confident_wrong = ((corr == 0.0) & (conf >= threshold)).astype("float64")
    return tail, _mean_metric(confident_wrong, resamples, rng)


def _percentile(x: FloatArray, q: float) -> MetricValue:
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return MetricValue(None, n=0)
    return MetricValue(float(np.percentile(x, q)), n=len(x))


def model_metrics(frame: pd.DataFrame, model: str, seed: int = 0, resamples: int = 1000,
                  confident_threshold: float = 0.9) -> dict[str, MetricValue]:
    """All metrics of one model from its result rows (``confident_threshold``: confident_error_rate's)."""
    rng = seeded_rng(seed, model)
    n = len(frame)
    ok = (frame["status"] == "ok").to_numpy()
    correct = _bool(frame["correct"])
    quality = frame["quality"].to_numpy(dtype="float64")
    schema_valid = _bool(frame["schema_valid"])
    feasible = _bool(frame["feasible"])
    confidence = frame["confidence"].to_numpy(dtype="float64", na_value=np.nan)
    latency = frame["latency_ms"].to_numpy(dtype="float64", na_value=np.nan)[ok]
    ttft = frame["ttft_ms"].to_numpy(dtype="float64", na_value=np.nan)[ok]
    out: dict[str, MetricValue] = {
        "n": MetricValue(float(n), n=n),
        "n_errors": MetricValue(float((~ok).sum()), n=n),
        "accuracy": _mean_metric(correct, resamples, rng),
        "accuracy_answered": _mean_metric(correct[ok], resamples, rng),
        "quality_mean": _mean_metric(quality, resamples, rng),
        "error_rate": _mean_metric((~ok).astype("float64"), resamples, rng),
        "tail5": _mean_metric(quality, resamples, rng, row_tail),
    }
    # A rate over all rows, when the suite defines the property at all (NULL for every row: not defined).
    defined = not np.all(np.isnan(schema_valid))
    out["schema_valid_rate"] = (_mean_metric(np.nan_to_num(schema_valid, nan=0.0), resamples, rng)
                                if defined else MetricValue(None))
    if not np.all(np.isnan(feasible)):
        out["feasible_rate"] = _mean_metric(np.nan_to_num(feasible, nan=0.0), resamples, rng)
        vbi = ((schema_valid == 1.0) & (feasible == 0.0)).astype("float64")
        out["valid_but_infeasible_rate"] = _mean_metric(vbi, resamples, rng)
    else:
        out["feasible_rate"] = MetricValue(None)
        out["valid_but_infeasible_rate"] = MetricValue(None)
    has_conf = ~np.isnan(confidence)
    out["confidence_coverage"] = MetricValue(float(has_conf.mean()) if n else None, n=n)
    if has_conf.any():
        conf, corr = confidence[has_conf], correct[has_conf]
        out["brier"], out["ece"] = _calibration_metrics(conf, corr, resamples, rng)
    else:
        out["brier"] = MetricValue(None)
        out["ece"] = MetricValue(None)
    for q in (50, 90, 95, 99):
        out[f"latency_ms_p{q}"] = _percentile(latency, q)
    for q in (50, 95):
        out[f"ttft_ms_p{q}"] = _percentile(ttft, q)
    lag = (frame["client_lag_ms"].to_numpy(dtype="float64", na_value=np.nan)[ok] if "client_lag_ms" in frame
           else np.full(int(ok.sum()), np.nan))
    out["client_lag_ms_p95"] = _percentile(lag, 95)
    prompt = frame["prompt_tokens"].to_numpy(dtype="float64", na_value=np.nan)
    completion = frame["completion_tokens"].to_numpy(dtype="float64", na_value=np.nan)
    for name, col in (("prompt_tokens", prompt), ("completion_tokens", completion)):
        have = ~np.isnan(col)
        out[name] = MetricValue(float(col[have].sum()) if have.any() else None, n=int(have.sum()))
        out[f"{name}_mean"] = MetricValue(float(col[have].mean()) if have.any() else None, n=int(have.sum()))
    cost = frame["cost_usd"].to_numpy(dtype="float64", na_value=np.nan)
    priced = ~np.isnan(cost)
    if priced.any():
        out["cost_usd"] = MetricValue(float(cost[priced].sum()), n=int(priced.sum()))
        per = _mean_metric(cost * 1000.0, resamples, rng)
        out["cost_per_1k"] = per
    else:
        out["cost_usd"] = MetricValue(None)
        out["cost_per_1k"] = MetricValue(None)
    out["n_score_errors"] = MetricValue(float(frame["score_error"].notna().sum()), n=n)
    if has_conf.any():  # last, so the CIs above keep the random draws they had before these metrics existed
        out["tail5_brier"], out["confident_error_rate"] = _confidence_tails(
            confidence[has_conf], correct[has_conf], confident_threshold, resamples, rng)
    else:
        out["tail5_brier"] = MetricValue(None)
        out["confident_error_rate"] = MetricValue(None)
    return out


def confident_threshold(config: dict[str, Any] | None) -> float:
    """``confidence.confident_threshold`` of a stored run config (0.9 when absent, e.g. an imported log)."""
    value = ((config or {}).get("confidence") or {}).get("confident_threshold")
    return 0.9 if value is None else float(value)


METRIC_COLUMNS = ("model", "status", "correct", "quality", "schema_valid", "feasible", "confidence", "latency_ms",
                  "ttft_ms", "prompt_tokens", "completion_tokens", "cost_usd", "score_error", "cache_hit",
                  "client_lag_ms")


def compute_run_metrics(store: Store, run_id: str, seed: int = 0, resamples: int = 1000) -> list[dict[str, Any]]:
    """Compute every model's metrics from the stored rows and replace the run's metric rows."""
    frame: pd.DataFrame = store.results_frame(run_id, METRIC_COLUMNS)
    threshold = confident_threshold(_config(store, run_id))
    walls = {m["model"]: m["wall_s"] for m in store.run_models(run_id)}
    per_model: dict[str, dict[str, MetricValue]] = {}
    for model, group in frame.groupby("model", sort=True):
        out = per_model[str(model)] = model_metrics(group, str(model), seed, resamples, threshold)
        rps, tokens_per_s = throughput(group, walls.get(str(model)))
        n_called = int(((group["status"] == "ok") & ~group["cache_hit"].fillna(False).astype(bool)).sum())
        out["throughput_rps"] = MetricValue(rps, n=n_called)
        out["output_tokens_per_s"] = MetricValue(tokens_per_s, n=n_called)
    for model, judged in judge_values(store, run_id, _config(store, run_id), seed, resamples).items():
        per_model.get(model, {}).update({name: MetricValue(*value) for name, value in judged.items()})
    costs = stored_cost_values(store, run_id, {m: {k: v.value for k, v in mv.items()} for m, mv in per_model.items()})
    rows: list[dict[str, Any]] = []
    for model, metrics in per_model.items():
        for name, value in costs.get(model, {}).items():
            metrics[name] = MetricValue(value, n=metrics["n"].n)
        for name, mv in metrics.items():
            rows.append({"run_id": run_id, "model": model, "metric": name, "value": mv.value,
                         "ci_low": mv.ci_low, "ci_high": mv.ci_high, "n": mv.n})
    store.replace_metrics(run_id, rows)
    return rows


def _config(store: Store, run_id: str) -> dict[str, Any]:
    run = store.get_run(run_id)
    config: dict[str, Any] = json.loads(run["config"]) if isinstance(run["config"], str) else run["config"] or {}
    return config


def recompute_run_metrics(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Recompute a stored run's metrics with the seed and resample count of its own suite config."""
    config = _config(store, run_id)
    run_cfg = config.get("run") or {}
    return compute_run_metrics(store, run_id, int(run_cfg.get("seed", 0)), int(run_cfg.get("bootstrap", 1000)))
