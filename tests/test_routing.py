"""Hybrid routing on constructed runs with known answers, the split's independence, and the cost model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from evalkit.analysis.costs import break_even_calls_per_day, per_call_cost, projected_cost, self_hosted_monthly
from evalkit.analysis.paired import Side, pair
from evalkit.analysis.routing import analyse, choose, routing_data, split_mask, sweep
from evalkit.cli import main
from evalkit.store import Store
from evalkit.store.db import now

N = 100


def build(db: Path) -> None:
    """small is wrong exactly on its 20 least confident samples, where large is right; elsewhere they agree."""
    conf = np.linspace(0.05, 0.99, N)  # sample i has the i-th lowest confidence
    small = np.ones(N, dtype=bool)
    small[:20] = False
    large = np.ones(N, dtype=bool)
    large[20:30] = False  # both wrong on these ten
    small[20:30] = False
    with Store(db) as store:
        store.create_run({"run_id": "r", "suite_name": "s", "suite_hash": "h", "status": "complete", "created_at": now()})
        store.insert_samples([{"run_id": "r", "sample_id": f"x{i:03d}", "position": i} for i in range(N)])
        rows = []
        for model, correct, cost, lat in (("tuned", small, 0.0001, 50.0), ("frontier", large, 0.005, 400.0)):
            store.upsert_run_model({"run_id": "r", "model": model, "provider": "vllm", "status": "complete"})
            for i in range(N):
                rows.append({"run_id": "r", "model": model, "sample_id": f"x{i:03d}", "repeat": 0, "status": "ok",
                             "quality": float(correct[i]), "correct": bool(correct[i]),
                             "confidence": float(conf[i]) if model == "tuned" else 0.9, "latency_ms": lat,
                             "cost_usd": cost, "attempts": 1, "cache_hit": False, "cache_key": f"{model}{i}",
                             "created_at": now()})
        store.insert_results(rows)


def test_routing_the_least_confident_fifth_recovers_the_large_models_accuracy(tmp_path):
    db = tmp_path / "r.duckdb"
    build(db)
    with Store(db) as store:
        result = analyse(store, "r", "tuned", "frontier", max_drop=0.0, volume_per_day=1_000_000)
    assert result["small_only"]["accuracy"] == pytest.approx(0.7)
    assert result["large_only"]["accuracy"] == pytest.approx(0.9)
    at_20 = [p for p in result["policies"]["cascade"] if p["share_escalated"] == pytest.approx(0.2)]
    assert at_20 and all(p["accuracy"] == pytest.approx(0.9) for p in at_20)
    best = at_20[0]
    assert best["cost_per_1k"] == pytest.approx((0.0001 + 0.2 * 0.005) * 1000)  # cascade: small always, large on 20%
    assert best["latency_ms_p95"] == pytest.approx(450.0)
    router = [p for p in result["policies"]["router"] if p["share_escalated"] == pytest.approx(0.2)][0]
    assert router["cost_per_1k"] == pytest.approx((0.8 * 0.0001 + 0.2 * 0.005) * 1000)
    assert result["oracle"] == {"share_escalated": pytest.approx(0.2), "accuracy": pytest.approx(0.9),
                                "cost_per_1k": pytest.approx(best["cost_per_1k"])}
    folds = result["recommendation"]["cascade"]
    for fold in folds:  # chosen on one half, judged on the other: close to, not exactly, the in-sample answer
        assert fold["share_escalated_test"] == pytest.approx(0.2, abs=0.08)
        assert fold["accuracy_test"] >= fold["large_accuracy_test"] - 0.05
        assert fold["delta_ci_low"] <= fold["delta_vs_large_test"] <= fold["delta_ci_high"]
    assert any(f["meets_target_test"] for f in folds)
    pareto = [p for p in result["policies"]["cascade"] if p["pareto"]]
    assert all(p["share_escalated"] <= 0.2 + 1e-9 for p in pareto)  # escalating more costs more, gains nothing
    with Store(db, read_only=True) as store:
        stored = store.one("SELECT count(*), count(*) FILTER (WHERE pareto) FROM routing_policies WHERE run_id = 'r'")
        assert stored[0] == len(result["policies"]["cascade"]) + len(result["policies"]["router"]) and stored[1] > 0
        monthly = store.one("SELECT monthly_cost_usd FROM routing_policies WHERE style = 'cascade' AND "
                            "threshold = ?", [best["threshold"]])[0]
        assert monthly == pytest.approx(best["cost_per_1k"] / 1000 * 1_000_000 * 30)
        assert store.one("SELECT count(*) FROM routing_recommendations")[0] == 4


def test_the_threshold_is_chosen_without_looking_at_the_held_out_half(tmp_path):
    db = tmp_path / "r.duckdb"
    build(db)
    with Store(db, read_only=True) as store:
        d = routing_data(pair(store, Side("r", "tuned"), Side("r", "frontier")))
    mask = split_mask(d.sample_ids, seed=0)
    assert 30 < mask.sum() < 70 and (split_mask(d.sample_ids, seed=0) == mask).all()
    fit = d.subset(mask)
    before = choose(sweep(fit, "cascade"), float(fit.correct_l.mean()), 0.0)
    scrambled = d.subset(np.ones(N, dtype=bool))
    rng = np.random.default_rng(1)
    scrambled.correct_l[~mask] = rng.integers(0, 2, (~mask).sum())  # change only the held-out half
    scrambled.signal[~mask] = rng.random((~mask).sum())
    after = choose(sweep(scrambled.subset(mask), "cascade"), float(scrambled.subset(mask).correct_l.mean()), 0.0)
    assert before == after


def test_cost_model_worked_examples():
    call = per_call_cost(800, 200, 3, 15)
    assert call == pytest.approx(0.0054)
    assert projected_cost(call, 1_000_000, 365) == pytest.approx(1_971_000)
    monthly, gpus = self_hosted_monthly(2.5, calls_per_day=10_000_000, requests_per_second=50)
    assert gpus == 3 and monthly == pytest.approx(3 * 2.5 * 730)
    volume = break_even_calls_per_day(call, gpu_usd_per_hour=2.5)
    assert projected_cost(call, volume) == pytest.approx(2.5 * 730)  # at break-even both cost the same per month


@pytest.mark.slow
def test_route_cli_json_and_bad_signal(tmp_path):
    db = tmp_path / "r.duckdb"
    build(db)
    result = CliRunner().invoke(main, ["route", "r", "--small", "tuned", "--large", "frontier", "--db", str(db),
                                       "--json", "--max-drop", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["format"] == "evalkit.route/1"
    table = CliRunner().invoke(main, ["route", "r", "--small", "tuned", "--large", "frontier", "--db", str(db)])
    assert "oracle routing: accuracy 0.900 escalating 20.0%" in table.stdout
    unknown = CliRunner().invoke(main, ["route", "r", "--small", "tuned", "--large", "frontier", "--db", str(db),
                                        "--gpu-usd-per-hour", "2.5", "--json"])
    # no throughput was measured in this constructed run (no wall time) and none is stated: no replicas, no guess
    assert json.loads(unknown.stdout)["self_hosting"]["break_even_calls_per_day"] is None
    assert "no throughput" in json.loads(unknown.stdout)["self_hosting"]["note"]
    hosted = CliRunner().invoke(main, ["route", "r", "--small", "tuned", "--large", "frontier", "--db", str(db),
                                       "--gpu-usd-per-hour", "2.5", "--requests-per-second", "5", "--json",
                                       "--volume", "1000000"])
    route = json.loads(hosted.stdout)
    hosting = route["self_hosting"]
    # frontier costs $0.005 a call: one $2.5/h replica (1,825 $/month) pays off above 12,167 calls a day
    assert hosting["break_even_calls_per_day"] == pytest.approx(2.5 * 730 / 30 / 0.005)
    # 1M calls/day is 11.6 requests/s: 3 replicas at 5 requests/s each, always on
    assert hosting["replicas_needed"] == 3 and hosting["throughput_source"] == "stated"
    assert hosting["monthly_cost_usd"] == pytest.approx(3 * 2.5 * 730)
    assert route["small_only"]["monthly_cost_usd"] == pytest.approx(3 * 2.5 * 730)
    assert route["large_only"]["monthly_cost_usd"] == pytest.approx(0.005 * 1_000_000 * 30)  # the API alone
    cascade = {round(p["share_escalated"], 6): p for p in route["policies"]["cascade"]}
    router = {round(p["share_escalated"], 6): p for p in route["policies"]["router"]}
    # cascade at 20%: 3 always-on replicas for every request + the API for the escalated fifth
    assert cascade[0.2]["monthly_cost_usd"] == pytest.approx(3 * 1825 + 0.2 * 0.005 * 1_000_000 * 30)
    # router-first at 20%: 800k/day on the replicas (9.3 requests/s: 2 replicas) + the API for 200k/day
    assert router[0.2]["monthly_cost_usd"] == pytest.approx(2 * 1825 + 0.2 * 0.005 * 1_000_000 * 30)
    bad = CliRunner().invoke(main, ["route", "r", "--small", "frontier", "--large", "tuned", "--db", str(db),
                                    "--signal", "gpt9"])
    assert bad.exit_code == 2 and "no model 'gpt9'" in bad.stderr


@pytest.mark.slow
def test_report_shows_the_routing_analysis(tmp_path):
    from evalkit.report import render_report

    db = tmp_path / "r.duckdb"
    build(db)
    with Store(db) as store:
        result = analyse(store, "r", "tuned", "frontier", max_drop=0.0)
    with Store(db, read_only=True) as store:
        html = render_report(store, "r", baseline="frontier", candidate="tuned")
    pareto = [p for p in result["policies"]["cascade"] if p["pareto"]]
    shares = {p["share_escalated"] for p in pareto if p["share_escalated"] > 0}  # one row per share; 0 is "tuned alone"
    assert 'id="routing"' in html and html.count("data-routing-share=") == len(shares)
    assert "routing policies: accuracy against cost" in html and "recommended (A→B, held out)" in html


def test_the_recommendation_ranks_by_monthly_cost_at_the_volume_not_by_cost_per_call(tmp_path):
    """tuned costs $0.0001 a call in GPU time but its box is always on ($730/month at $1/h); frontier is $0.005 a
    call. Per call, sending nothing to frontier is cheapest; at 1,000 requests/day the month says the opposite
    (frontier alone: ~$152 < $730), at 10M/day it agrees again (12 boxes, $8,760 < frontier's ~$1.5M)."""
    db = tmp_path / "r.duckdb"
    build(db)
    with Store(db) as store:
        d = routing_data(pair(store, Side("r", "tuned"), Side("r", "frontier")))
        policies = sweep(d, "router")
        per_call = choose(policies, float(d.correct_l.mean()), 1.0)
        assert per_call is not None and per_call.share_escalated == 0.0
        picks = {}
        for volume in (1_000, 10_000_000):
            result = analyse(store, "r", "tuned", "frontier", max_drop=1.0, volume_per_day=volume, resamples=0,
                             gpu_usd_per_hour=1.0, requests_per_second=10.0)
            picks[volume] = {f["share_escalated_test"] for f in result["recommendation"]["router"]}
            listed = result["policies"]["router"]
            cheapest = min(listed, key=lambda p: (p["monthly_cost_usd"], p["share_escalated"]))
            assert cheapest["share_escalated"] in (0.0, 1.0)
    # everything (or all but the most confident few of the held-out half) escalated at 1,000/day; nothing at 10M
    assert min(picks[1_000]) > 0.9 and picks[10_000_000] == {0.0}
