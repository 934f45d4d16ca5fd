"""The cost model: always-on replicas, the exact break-even of a step function, the throughput's source."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.analysis.capacity import CostInputs, model_cost, model_costs
from evalkit.analysis.costs import (
    GOODPUT,
    MEASURED,
    STATED,
    break_even,
    replicas_needed,
    self_hosted_monthly,
    sustainable_rps,
)


def test_known_always_on_case():
    # $1/h GPU, 10 requests/s per replica, API $0.001 a call
    monthly, replicas = self_hosted_monthly(1.0, 100_000, 10)
    assert (monthly, replicas) == (pytest.approx(730.0), 1)
    found = break_even(0.001, 1.0, 10)
    assert found.first == pytest.approx(24_333.333333, rel=1e-9)  # 730 / 30 / 0.001
    assert found.stays_cheaper_from == pytest.approx(found.first)
    # 900k calls/day is 10.42 requests/s: 2 replicas, $1,460 against the API's $27,000
    assert self_hosted_monthly(1.0, 900_000, 10) == (pytest.approx(1460.0), 2)


def test_replica_steps_and_min_replicas():
    cap = 10 * 86_400  # calls/day one replica serves at 10 requests/s
    assert replicas_needed(cap, 10) == 1  # exactly full: still one
    assert replicas_needed(cap + 1, 10) == 2
    assert replicas_needed(3 * cap, 10) == 3
    assert replicas_needed(3 * cap + 1, 10) == 4
    assert replicas_needed(0, 10) == 1
    assert replicas_needed(cap, 10, min_replicas=3) == 3
    assert replicas_needed(5 * cap, 10, min_replicas=3) == 5
    # min_replicas multiplies the break-even
    assert break_even(0.001, 1.0, 10, min_replicas=3).first == pytest.approx(3 * 24_333.333333)


def _brute(api: float, gpu: float, rps: float, min_r: int, volumes: np.ndarray) -> np.ndarray:
    replicas = np.maximum(min_r, np.ceil(volumes / 86_400 / rps - 1e-12))
    return replicas * gpu * 730 <= api * volumes * 30


@pytest.mark.parametrize("api,gpu,rps,min_r", [
    (0.001, 1.0, 10, 1),
    (3.1293e-5, 1.0, 10, 1),  # one replica at full capacity costs 90% of the API: gaps past the steps
    (3.1293e-5, 1.0, 10, 2),
    (2.5e-5, 1.0, 12, 1),  # 94%: cheaper again past the first 15 steps
])
def test_break_even_is_exact_against_a_brute_force_scan(api, gpu, rps, min_r):
    found = break_even(api, gpu, rps, min_r)
    assert found.first is not None and found.stays_cheaper_from is not None
    volumes = np.linspace(0, found.stays_cheaper_from * 3 + 5 * rps * 86_400, 400_001)
    cheaper = _brute(api, gpu, rps, min_r, volumes)
    first = volumes[np.argmax(cheaper)]
    step = volumes[1] - volumes[0]
    assert found.first <= first <= found.first + step  # the lowest volume at which self-hosting is no dearer
    last_dearer = volumes[np.nonzero(~cheaper)[0].max()]
    assert last_dearer <= found.stays_cheaper_from <= last_dearer + step  # cheaper at every volume above it
    if found.stays_cheaper_from > found.first * 1.0001:
        assert "cheaper again" in found.note


def test_break_even_never_when_a_full_replica_costs_more_than_the_api():
    found = break_even(1e-6, 1.0, 10)  # a full replica's 864k calls/day cost $25.92 a month by API, vs $730
    assert found.first is None and found.stays_cheaper_from is None and found.note.startswith("never")
    scan = _brute(1e-6, 1.0, 10, 1, np.linspace(0, 1e9, 100_001))
    assert not scan.any()


def test_sustainable_rps_source_order():
    assert sustainable_rps(5.0, 7.0, 9.0) == (5.0, STATED)
    assert sustainable_rps(None, 7.0, 9.0) == (7.0, GOODPUT)
    assert sustainable_rps(None, None, 9.0) == (9.0, MEASURED)
    assert sustainable_rps(None, None, None) is None
    assert sustainable_rps(None, 0.0, None) is None


def test_model_cost_blocks():
    api = CostInputs(cost_per_call=0.001)
    tuned = CostInputs(gpu_usd_per_hour=1.0, cost_per_call=0.00002, throughput_rps=10.0)
    blocks = model_costs({"frontier": api, "tuned": tuned}, "frontier", 900_000)
    assert blocks["frontier"]["basis"] == "per-call"
    assert blocks["frontier"]["monthly_cost_usd"] == pytest.approx(27_000)
    assert blocks["frontier"]["break_even_requests_per_day"] is None
    t = blocks["tuned"]
    assert t["basis"] == "always-on" and t["replicas_needed"] == 2 and t["monthly_cost_usd"] == pytest.approx(1460)
    assert t["throughput_source"] == MEASURED and t["requests_per_second"] == 10.0
    assert t["break_even_requests_per_day"] == pytest.approx(24_333.333333)
    # the GPU-time cost per call (cost_per_call) never becomes the monthly cost
    assert t["monthly_cost_usd"] != pytest.approx(0.00002 * 900_000 * 30)
    stated = model_cost(CostInputs(gpu_usd_per_hour=1.0, requests_per_second=100.0, throughput_rps=10.0), 900_000)
    assert stated["replicas_needed"] == 1 and stated["throughput_source"] == STATED
    unknown = model_cost(CostInputs(gpu_usd_per_hour=1.0), 900_000)
    assert unknown["monthly_cost_usd"] is None and "no throughput" in unknown["note"]


def test_show_json_and_table_carry_the_cost_block(tmp_path):
    from evalkit.analysis.metrics import compute_run_metrics
    from evalkit.analysis.summary import run_payload
    from evalkit.report.terminal import render_table
    from evalkit.store import Store
    from evalkit.store.db import now

    with Store(tmp_path / "c.duckdb") as store:
        store.create_run({"run_id": "r", "suite_name": "s", "suite_hash": "h", "status": "complete", "created_at": now(),
                          "n_samples": 40, "repeats": 1,
                          "config": {"run": {"volume_per_day": 900_000}, "gates": {"baseline": "frontier"}}})
        rows = []
        for model, cost in (("frontier", 0.001), ("tuned", 0.00001)):
            # tuned: 40 answers in 4 s of wall time = 10 requests/s, 3 tokens each
            store.upsert_run_model({"run_id": "r", "model": model, "provider": "vllm", "status": "complete",
                                    "wall_s": 4.0, "config": {"cost": {"gpu_usd_per_hour": 1.0} if model == "tuned"
                                                              else {"input_per_mtok": 1.0}}})
            rows += [{"run_id": "r", "model": model, "sample_id": f"s{i}", "repeat": 0, "status": "ok", "quality": 1.0,
                      "correct": True, "latency_ms": 10.0, "completion_tokens": 3, "cost_usd": cost, "attempts": 1,
                      "cache_hit": False, "cache_key": f"{model}{i}", "created_at": now()} for i in range(40)]
        # two cached answers: no wall time here, so not part of the throughput
        rows += [{**rows[-1], "sample_id": f"c{i}", "cache_hit": True, "cache_key": f"c{i}"} for i in range(2)]
        store.insert_results(rows)
        compute_run_metrics(store, "r", resamples=0)
        payload = run_payload(store, "r")
    tuned = payload["models"]["tuned"]
    assert tuned["metrics"]["throughput_rps"]["value"] == pytest.approx(10.0)
    assert tuned["metrics"]["output_tokens_per_s"]["value"] == pytest.approx(30.0)
    assert tuned["metrics"]["replicas_needed"]["value"] == 2  # 900k/day = 10.4 requests/s
    assert tuned["metrics"]["monthly_cost_usd"]["value"] == pytest.approx(1460.0)
    assert tuned["metrics"]["break_even_requests_per_day"]["value"] == pytest.approx(24_333.333333)
    assert payload["models"]["frontier"]["metrics"]["monthly_cost_usd"]["value"] == pytest.approx(27_000)
    assert tuned["cost"]["throughput_source"] == MEASURED and tuned["cost"]["baseline"] == "frontier"
    assert payload["models"]["frontier"]["cost"]["basis"] == "per-call"
    text = render_table(payload)
    assert "tuned: always-on at 900,000 requests/day: 2 replica(s)" in text and "24,333 requests/day" in text
