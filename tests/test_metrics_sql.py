"""Every stored metric equals the documented SQL (docs/metrics.sql) over the stored rows."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from evalkit.analysis.judge_metrics import JUDGE_INFO
from evalkit.analysis.metrics import compute_run_metrics
from evalkit.store import Store
from evalkit.store.db import now

SQL_FILE = Path(__file__).resolve().parents[1] / "docs" / "metrics.sql"


def documented_queries() -> dict[str, str]:
    text = SQL_FILE.read_text()
    parts = re.split(r"^-- name: (\w+)\n", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def fill_random_run(store: Store, run_id: str, n: int = 400, seed: int = 5, volume: float = 3_000_000,
                    config: dict | None = None) -> None:
    rng = np.random.default_rng(seed)
    # a: an API baseline; b: self-hosted, 2 always-on replicas at least, throughput measured in the run
    config = {"run": {"volume_per_day": volume}, "gates": {"baseline": "a", "candidate": "b"}, **(config or {})}
    store.create_run({"run_id": run_id, "suite_name": "s", "suite_hash": "h", "status": "complete",
                      "created_at": now(), "n_samples": n, "repeats": 1, "config": config})
    for model, cost, wall in (("a", {"input_per_mtok": 0.15}, 31.5),
                              ("b", {"gpu_usd_per_hour": 0.4, "min_replicas": 2}, 17.25)):
        store.upsert_run_model({"run_id": run_id, "model": model, "provider": "litellm", "status": "complete",
                                "config": {"cost": cost}, "wall_s": wall})
    rows = []
    for model, has_checks in (("a", True), ("b", False)):
        for i in range(n):
            error = rng.random() < 0.07
            conf = None if (error or rng.random() < 0.1) else float(rng.choice([1.0, rng.random()]))
            valid = None if error else bool(rng.random() < 0.9)
            rows.append({
                "run_id": run_id, "model": model, "sample_id": f"s{i}", "repeat": 0,
                "status": "error" if error else "ok", "quality": 0.0 if error else float(rng.random()),
                "correct": (not error) and bool(rng.random() < 0.7), "confidence": conf,
                "schema_valid": False if error else valid,
                "feasible": (False if error or not valid else bool(rng.random() < 0.8)) if has_checks else None,
                "latency_ms": None if error else float(rng.gamma(2, 50)),
                "ttft_ms": None if error else float(rng.gamma(2, 10)),
                "prompt_tokens": None if error else int(rng.integers(10, 100)),
                "completion_tokens": None if error else int(rng.integers(1, 20)),
                "cost_usd": None if error else float(rng.random() / 100),
                "score_error": "boom" if rng.random() < 0.01 else None,
                "attempts": 1, "cache_hit": bool(rng.random() < 0.2), "cache_key": f"{model}{i}", "created_at": now(),
            })
    store.insert_results(rows)


@pytest.mark.parametrize("threshold", [None, 0.5])
def test_stored_metrics_equal_documented_sql(tmp_path: Path, threshold: float | None):
    with Store(tmp_path / "m.duckdb") as store:
        config = None if threshold is None else {"confidence": {"confident_threshold": threshold}}
        fill_random_run(store, "r1", config=config)
        compute_run_metrics(store, "r1", seed=0, resamples=100)
        stored = {(r["model"], r["metric"]): r["value"] for r in store.metrics("r1")}
        queries = documented_queries()
        assert set(queries) == {"per_model", "tail5", "ece", "confidence_tails", "throughput", "capacity",
                                "load_points", "judge"}  # load_points: tests/test_load.py; judge: below
        assert stored[("b", "replicas_needed")] is not None and stored[("b", "break_even_requests_per_day")] is not None
        checked = set()
        for name, sql in queries.items():
            if name in ("load_points", "judge"):
                continue
            sql = sql.replace("$confident_threshold", str(0.9 if threshold is None else threshold))
            for record in store.dicts(sql.replace("$run_id", "'r1'")):
                model = record.pop("model")
                for metric, value in record.items():
                    expected = stored[(model, metric)]
                    if value is None or expected is None:
                        assert value is None and expected is None, (model, metric, value, expected)
                    else:
                        assert math.isclose(float(value), expected, rel_tol=1e-9, abs_tol=1e-12), (model, metric)
                    checked.add(metric)
        from evalkit.analysis.metrics import METRICS

        assert checked == set(METRICS) - JUDGE_METRICS, set(METRICS) - JUDGE_METRICS - checked


JUDGE_METRICS = {name for name, _, _ in JUDGE_INFO}


def fill_judgements(store: Store, run_id: str, pass_fail: bool, seed: int) -> None:
    """Random verdicts on fill_random_run's rows: pointwise for both models, pairwise for b against a, some
    unreadable, some from the cache; people's scores on part of the samples."""
    rng = np.random.default_rng(seed)
    points = [0.0, 1.0] if pass_fail else [0.0, 0.25, 0.5, 0.75, 1.0]
    rows = []
    for model in ("a", "b"):
        for i in range(400):
            kinds = [("pointwise", "-")] + ([("pairwise", "AB"), ("pairwise", "BA")] if model == "b" else [])
            for kind, order in kinds:
                error = rng.random() < 0.05
                score = None if error else float(rng.choice([0.0, 0.5, 1.0] if kind == "pairwise" else points))
                rows.append({"run_id": run_id, "model": model, "sample_id": f"s{i}", "repeat": 0, "kind": kind,
                             "pair_order": order, "judge_model": "j", "status": "error" if error else "ok",
                             "score": score, "error": "judge reply is not a JSON object" if error else None,
                             "cost_usd": None if rng.random() < 0.1 else float(rng.random() / 1000),
                             "attempts": int(rng.integers(1, 3)), "cache_hit": bool(rng.random() < 0.3),
                             "cache_key": f"{model}{i}{order}", "created_at": now()})
    store.insert_judgements(rows)
    labels = ["pass", "fail", 1, 0, "yes"] if pass_fail else [1, 2, 3, 4, 5, "3"]
    fields = {f"s{i}": {"human": (None if rng.random() < 0.3 else labels[int(rng.integers(len(labels)))])}
              for i in range(400)}
    store.insert_samples([{"run_id": run_id, "sample_id": sid, "position": i, "fields": json.dumps(f)}
                          for i, (sid, f) in enumerate(fields.items())])


@pytest.mark.parametrize("pass_fail", [True, False])
def test_judge_metrics_equal_documented_sql(tmp_path: Path, pass_fail: bool):
    with Store(tmp_path / "j.duckdb") as store:
        judge = {"model": "j", "rubric": "r", "scale": "pass_fail" if pass_fail else [1, 5], "human": "human"}
        fill_random_run(store, "r1", config={"scoring": {"judge": judge}})
        fill_judgements(store, "r1", pass_fail, seed=11)
        compute_run_metrics(store, "r1", seed=0, resamples=100)
        stored = {(r["model"], r["metric"]): r["value"] for r in store.metrics("r1")}
        low, high = (0, 1) if pass_fail else (1, 5)
        sql = (documented_queries()["judge"].replace("$run_id", "'r1'").replace("$human_model", "'a'")
               .replace("$human", "'human'").replace("$low", str(low)).replace("$high", str(high))
               .replace("$pass_fail", str(pass_fail).lower()))
        checked = set()
        for record in store.dicts(sql):
            model = record.pop("model")
            for metric, value in record.items():
                expected = stored.get((model, metric))
                if value is None or expected is None:
                    assert value is None and expected is None, (model, metric, value, expected)
                else:
                    assert math.isclose(float(value), expected, rel_tol=1e-9, abs_tol=1e-12), (model, metric)
                    checked.add(metric)
        assert checked == JUDGE_METRICS - {"judge_spearman" if pass_fail else "judge_kappa"}
