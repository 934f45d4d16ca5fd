"""Every stored metric equals the documented SQL (docs/metrics.sql) over the stored rows."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from evalkit.analysis.metrics import compute_run_metrics
from evalkit.store import Store
from evalkit.store.db import now

SQL_FILE = Path(__file__).resolve().parents[1] / "docs" / "metrics.sql"


def documented_queries() -> dict[str, str]:
    text = SQL_FILE.read_text()
    parts = re.split(r"^-- name: (\w+)\n", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def fill_random_run(store: Store, run_id: str, n: int = 400, seed: int = 5) -> None:
    rng = np.random.default_rng(seed)
    store.create_run({"run_id": run_id, "suite_name": "s", "suite_hash": "h", "status": "complete",
                      "created_at": now(), "n_samples": n, "repeats": 1})
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
                "attempts": 1, "cache_hit": False, "cache_key": f"{model}{i}", "created_at": now(),
            })
    store.insert_results(rows)


def test_stored_metrics_equal_documented_sql(tmp_path: Path):
    with Store(tmp_path / "m.duckdb") as store:
        fill_random_run(store, "r1")
        compute_run_metrics(store, "r1", seed=0, resamples=100)
        stored = {(r["model"], r["metric"]): r["value"] for r in store.metrics("r1")}
        queries = documented_queries()
        assert set(queries) == {"per_model", "tail5", "ece", "load_points"}  # load_points: tests/test_load.py
        checked = set()
        for name, sql in queries.items():
            if name == "load_points":
                continue
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

        assert checked == set(METRICS), set(METRICS) - checked
