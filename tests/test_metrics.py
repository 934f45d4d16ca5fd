"""Metric code checked against independent implementations (scikit-learn, numpy, plain loops)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss

from evalkit.analysis.bootstrap import bootstrap, ece, tail_mean
from evalkit.analysis.metrics import model_metrics


def _frame(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    status = np.where(rng.random(n) < 0.1, "error", "ok")
    conf = rng.random(n)
    correct = (rng.random(n) < conf) & (status == "ok")
    quality = np.where(status == "ok", rng.random(n), 0.0)
    valid = np.where(status == "ok", rng.random(n) < 0.9, False)
    feasible = valid & (rng.random(n) < 0.8)
    return pd.DataFrame({
        "status": status, "correct": correct, "quality": quality,
        "schema_valid": pd.array(valid, dtype="boolean"), "feasible": pd.array(feasible, dtype="boolean"),
        "confidence": np.where(status == "ok", conf, np.nan),
        "latency_ms": np.where(status == "ok", rng.gamma(2.0, 100.0, n), np.nan),
        "ttft_ms": np.where(status == "ok", rng.gamma(2.0, 20.0, n), np.nan),
        "prompt_tokens": np.where(status == "ok", rng.integers(50, 500, n), np.nan),
        "completion_tokens": np.where(status == "ok", rng.integers(1, 50, n), np.nan),
        "cost_usd": np.where(status == "ok", rng.random(n) / 1000, np.nan),
        "score_error": [None] * n,
    })


def ece_reference(conf: list[float], correct: list[float], bins: int = 10) -> float:
    """A plain-loop ECE: bins [0,.1), ..., [.9, 1.0]."""
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [i for i, c in enumerate(conf) if (lo <= c < hi) or (b == bins - 1 and c == 1.0)]
        if members:
            acc = sum(correct[i] for i in members) / len(members)
            avg = sum(conf[i] for i in members) / len(members)
            total += len(members) / len(conf) * abs(acc - avg)
    return total


def test_metrics_match_independent_implementations():
    frame = _frame(2000)
    m = model_metrics(frame, "x", seed=0, resamples=300)
    ok = frame["status"] == "ok"
    assert m["accuracy"].value == pytest.approx(frame["correct"].mean())
    assert m["accuracy_answered"].value == pytest.approx(frame.loc[ok, "correct"].mean())
    assert m["error_rate"].value == pytest.approx((~ok).mean())
    has = frame["confidence"].notna()
    assert m["brier"].value == pytest.approx(brier_score_loss(frame.loc[has, "correct"], frame.loc[has, "confidence"]))
    assert m["ece"].value == pytest.approx(ece_reference(frame.loc[has, "confidence"].tolist(),
                                                         frame.loc[has, "correct"].astype(float).tolist()))
    for q in (50, 90, 95, 99):
        assert m[f"latency_ms_p{q}"].value == pytest.approx(np.percentile(frame.loc[ok, "latency_ms"], q))
    k = math.ceil(0.05 * len(frame))
    assert m["tail5"].value == pytest.approx(np.sort(frame["quality"].to_numpy())[:k].mean())
    valid = frame["schema_valid"].astype(bool)
    feasible = frame["feasible"].astype(bool)
    assert m["schema_valid_rate"].value == pytest.approx(valid.mean())
    assert m["feasible_rate"].value == pytest.approx(feasible.mean())
    assert m["valid_but_infeasible_rate"].value == pytest.approx((valid & ~feasible).mean())
    assert m["cost_usd"].value == pytest.approx(frame["cost_usd"].sum())
    assert m["cost_per_1k"].value == pytest.approx(frame["cost_usd"].mean() * 1000)
    assert m["prompt_tokens"].value == frame["prompt_tokens"].sum()
    for name in ("accuracy", "brier", "tail5", "ece", "schema_valid_rate"):
        v = m[name]
        assert v.ci_low <= v.value <= v.ci_high, name


def test_bootstrap_ci_covers_the_truth_and_is_deterministic():
    rng = np.random.default_rng(7)
    hits = 0
    for trial in range(60):
        x = (rng.random(400) < 0.3).astype(float)
        low, high = bootstrap(x, lambda m: m.mean(axis=1), 400, np.random.default_rng(trial))
        hits += low <= 0.3 <= high
    assert hits >= 51  # nominal 95% coverage; 51/60 leaves room for sampling noise
    x = rng.random(100)
    a = bootstrap(x, lambda m: m.mean(axis=1), 500, np.random.default_rng(1))
    b = bootstrap(x, lambda m: m.mean(axis=1), 500, np.random.default_rng(1))
    assert a == b


def test_bootstrap_ci_width_matches_normal_theory():
    x = (np.random.default_rng(3).random(5000) < 0.5).astype(float)
    low, high = bootstrap(x, lambda m: m.mean(axis=1), 2000, np.random.default_rng(0))
    se = math.sqrt(0.25 / 5000)
    assert (high - low) == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_ece_edges_and_tail():
    assert ece(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.0
    assert ece(np.array([0.0, 1.0]), np.array([1.0, 0.0])) == 1.0
    assert ece(np.array([0.95, 0.95]), np.array([1.0, 0.0])) == pytest.approx(0.45)
    assert tail_mean(np.arange(100, dtype=float)) == pytest.approx(2.0)  # worst 5 of 0..99
    assert tail_mean(np.array([0.3])) == 0.3


def test_undefined_metrics_are_null_not_zero():
    frame = _frame(50)
    frame["feasible"] = pd.array([None] * 50, dtype="boolean")
    frame["confidence"] = np.nan
    frame["cost_usd"] = np.nan
    m = model_metrics(frame, "x", resamples=50)
    for name in ("feasible_rate", "valid_but_infeasible_rate", "brier", "ece", "cost_usd", "cost_per_1k"):
        assert m[name].value is None, name
    assert m["confidence_coverage"].value == 0.0


def test_multinomial_shortcut_matches_row_resampling():
    """Resampling counts over distinct values is the same bootstrap as resampling rows."""
    from evalkit.analysis.bootstrap import row_mean, row_tail

    x = np.random.default_rng(2).integers(0, 5, 3000) / 4.0  # five distinct quality levels
    for stat in (row_mean, row_tail):
        fast = bootstrap(x, stat, 4000, np.random.default_rng(1))
        slow = bootstrap(x, lambda m, s=stat: s(m), 4000, np.random.default_rng(1))  # no shortcut attribute
        assert fast[0] == pytest.approx(slow[0], abs=0.01) and fast[1] == pytest.approx(slow[1], abs=0.01)
