"""Tails that carry information on label tasks: tail5_brier and confident_error_rate, per model and paired."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from test_compare import N, bernoulli, build_run, by_metric, gate_json, suite  # noqa: F401  (suite: a fixture)

from evalkit.analysis.metrics import METRICS, model_metrics
from evalkit.analysis.paired import PAIRED_METRICS, Side, pair, paired_deltas
from evalkit.store import Store


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ok = rng.random(n) > 0.05
    conf = np.where(ok & (rng.random(n) > 0.1), rng.choice([0.3, 0.6, 0.9, 0.95, 1.0], n), np.nan)
    correct = ok & (rng.random(n) < 0.7)
    return pd.DataFrame({
        "status": np.where(ok, "ok", "error"), "correct": correct, "quality": correct.astype(float),
        "schema_valid": pd.array(ok, dtype="boolean"), "feasible": pd.array([None] * n, dtype="boolean"),
        "confidence": conf, "latency_ms": np.full(n, 10.0), "ttft_ms": np.full(n, np.nan),
        "prompt_tokens": np.full(n, 5.0), "completion_tokens": np.full(n, 1.0), "cost_usd": np.full(n, np.nan),
        "score_error": [None] * n})


def _loops(frame: pd.DataFrame, threshold: float) -> tuple[float, float, int]:
    """Plain-Python tail5_brier and confident_error_rate over the rows with a confidence."""
    pairs = [(float(c), float(y)) for c, y in zip(frame["confidence"], frame["correct"]) if not math.isnan(c)]
    errors = sorted(((c - y) ** 2 for c, y in pairs), reverse=True)
    k = math.ceil(0.05 * len(errors))
    confident_wrong = sum(1 for c, y in pairs if y == 0 and c >= threshold)
    return sum(errors[:k]) / k, confident_wrong / len(pairs), len(pairs)


@pytest.mark.parametrize("threshold", [0.9, 0.6])
def test_per_model_values_match_plain_loops_with_cis(threshold):
    frame = _frame(1000, seed=3)
    m = model_metrics(frame, "m", resamples=300, confident_threshold=threshold)
    tail, rate, n_conf = _loops(frame, threshold)
    assert m["tail5_brier"].value == pytest.approx(tail, abs=1e-12) and m["tail5_brier"].n == n_conf
    assert m["confident_error_rate"].value == pytest.approx(rate, abs=1e-12) and m["confident_error_rate"].n == n_conf
    for name in ("tail5_brier", "confident_error_rate"):
        v = m[name]
        assert v.ci_low <= v.value <= v.ci_high, name
    # on 0/1 quality the old tail says nothing: the worst 5% is all wrong answers
    assert m["tail5"].value == 0.0 and m["tail5"].ci_high == 0.0
    again = model_metrics(frame, "m", resamples=300, confident_threshold=threshold)
    assert again["tail5_brier"] == m["tail5_brier"]  # seeded


def test_no_confidence_is_null_and_the_metrics_are_registered():
    frame = _frame(200, seed=4).assign(confidence=np.nan)
    m = model_metrics(frame, "m", resamples=50)
    assert m["tail5_brier"].value is None and m["confident_error_rate"].value is None
    assert METRICS["tail5_brier"].higher_is_better is False
    assert METRICS["confident_error_rate"].higher_is_better is False
    assert {"tail5_brier", "confident_error_rate"} <= PAIRED_METRICS


def _confidently_wrong_candidate(tmp_path, repeats: int = 1):
    """Same answers (accuracy, tail5 equal); the candidate says 0.95 on its wrong ones, the baseline 0.2."""
    correct = bernoulli(0.8, 7)
    cb = np.where(correct == 1, 0.9, 0.2)
    cc = np.where(correct == 1, 0.9, 0.95)
    cc[:6] = np.nan  # the candidate has no confidence on six samples: both-confidence pairs only
    db = tmp_path / "d.duckdb"
    build_run(db, "r1", {"base": {"correct": correct, "confidence": cb},
                         "cand": {"correct": correct, "confidence": cc}}, repeats=repeats)
    return db, correct.astype(float), cb, cc


def test_paired_deltas_match_numpy_on_the_pairs_with_both_confidences(tmp_path):
    db, y, cb, cc = _confidently_wrong_candidate(tmp_path)
    with Store(db, read_only=True) as store:
        deltas = paired_deltas(pair(store, Side("r1", "base"), Side("r1", "cand")), seed=1, resamples=400)
    both = ~np.isnan(cc)
    k = math.ceil(0.05 * both.sum())
    worst = {side: np.sort((c[both] - y[both]) ** 2)[::-1][:k].mean() for side, c in (("b", cb), ("c", cc))}
    rate = {side: ((y[both] == 0) & (c[both] >= 0.9)).mean() for side, c in (("b", cb), ("c", cc))}
    for name, values in (("tail5_brier", worst), ("confident_error_rate", rate)):
        d = deltas[name]
        assert (d.baseline, d.candidate, d.delta) == pytest.approx(
            (values["b"], values["c"], values["c"] - values["b"]), abs=1e-12), name
        assert d.ci_low <= d.delta <= d.ci_high and d.n == int(both.sum()), name
    assert deltas["confident_error_rate"].ci_low > 0.1  # every wrong answer is now a confident one
    assert deltas["tail5"].delta == 0.0 and deltas["accuracy"].delta == 0.0


def test_gates_bound_the_new_tails_where_tail5_cannot_see(suite, tmp_path):  # noqa: F811
    db, *_ = _confidently_wrong_candidate(tmp_path)
    report = gate_json(suite("{metric: confident_error_rate, max_rise: 0.02}", "{metric: tail5_brier, max_rise: 0.05}",
                             "{metric: tail5, max_drop: 0.0}", "{metric: confident_error_rate, max: 0.05}"),
                       "--db", str(db))
    assert by_metric(report, "tail5")["verdict"] == "pass"  # the 0/1 tail did not move
    rise = [g for g in report["gates"] if g["metric"] == "confident_error_rate"]
    assert [g["verdict"] for g in rise] == ["fail", "fail"]
    tail = by_metric(report, "tail5_brier")
    assert tail["verdict"] == "fail" and tail["delta"] == pytest.approx(0.95 ** 2 - 0.2 ** 2)


def test_repeats_resample_whole_samples(tmp_path):
    db, *_ = _confidently_wrong_candidate(tmp_path, repeats=3)
    with Store(db, read_only=True) as store:
        p = pair(store, Side("r1", "base"), Side("r1", "cand"))
        deltas = paired_deltas(p, seed=1, resamples=300)
    for name in ("tail5_brier", "confident_error_rate"):
        d = deltas[name]
        assert d.ci_low <= d.delta <= d.ci_high and d.n == 3 * (N - 6), name


@pytest.mark.parametrize("spare_sd", [8.0, 0.0])  # 0: most resamples take the completion path
def test_low_tail_shortcut_has_the_distribution_of_row_resampling(spare_sd):
    from evalkit.analysis.bootstrap import low_tail_replicates, resample_indices, row_tail

    rng = np.random.default_rng(2)
    columns = np.stack([rng.random(3000), rng.gamma(2.0, 1.0, 3000)], 1)
    fast = low_tail_replicates(columns, 3000, np.random.default_rng(3), spare_sd=spare_sd)
    rows = np.concatenate([np.stack([row_tail(columns[idx, 0]), row_tail(columns[idx, 1])], 1)
                           for _, idx in resample_indices(3000, 3000, np.random.default_rng(4))])
    for j in range(2):
        assert fast[:, j].mean() == pytest.approx(rows[:, j].mean(), abs=4 * rows[:, j].std() / math.sqrt(3000))
        assert fast[:, j].std() == pytest.approx(rows[:, j].std(), rel=0.08)
    # the delta's spread (what a paired gate reads) agrees too
    assert (fast[:, 1] - fast[:, 0]).std() == pytest.approx((rows[:, 1] - rows[:, 0]).std(), rel=0.08)


def test_paired_tail_on_many_distinct_confidences_matches_numpy(tmp_path):
    n = 2500  # over 2048 distinct pairs: the low-tail shortcut, not the count shortcut
    rng = np.random.default_rng(9)
    cb, cc = rng.random(n), rng.random(n)
    yb, yc = rng.random(n) < cb, rng.random(n) < cc * 0.8
    db = tmp_path / "d.duckdb"
    build_run(db, "r1", {"base": {"correct": yb, "confidence": cb}, "cand": {"correct": yc, "confidence": cc}}, n=n)
    with Store(db, read_only=True) as store:
        d = paired_deltas(pair(store, Side("r1", "base"), Side("r1", "cand")), seed=1, resamples=500)["tail5_brier"]
    k = math.ceil(0.05 * n)
    worst_b = np.sort((cb - yb) ** 2)[::-1][:k].mean()
    worst_c = np.sort((cc - yc) ** 2)[::-1][:k].mean()
    assert (d.baseline, d.candidate) == pytest.approx((worst_b, worst_c), abs=1e-12)
    assert d.ci_low < d.delta < d.ci_high and d.ci_high - d.ci_low < 0.1
