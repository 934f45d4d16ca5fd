"""A real DuckDB store holding one two-model run of N samples, written in bulk through the Store's own insert
methods (DuckDB reads the Arrow tables): the report at 100,000 samples in seconds, and strings a suite could not
carry (model names, sample ids) for the explorer's escaping tests. Metrics are computed by evalkit itself."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from evalkit.analysis.metrics import compute_run_metrics
from evalkit.store import Store
from evalkit.store.results import RESULT_SCHEMA
from evalkit.store.runs import SAMPLE_SCHEMA

SYSTEM = "Classify the email as spam or ham. Answer with one word."


def build_store(path: Path, n: int, baseline: str = "frontier", candidate: str = "tuned", seed: int = 0,
                hostile: dict[int, dict[str, str]] | None = None, run_id: str = "synthetic-run",
                resamples: int = 200) -> str:
    """``n`` samples; the baseline right 90%, the candidate 85% (≈ n·0.1 regressions); ``hostile[i]`` overrides
    sample i's ``sample_id``, ``message`` or a model's answer (``answer_<model>``, wrong), the
    baseline then right. Returns the run id."""
    rng = np.random.default_rng(seed)
    hostile = hostile or {}
    ids = [hostile.get(i, {}).get("sample_id", f"s{i:06d}") for i in range(n)]
    label = np.where(rng.random(n) < 0.5, "spam", "ham")
    slices = np.where(np.arange(n) % 3 == 0, "hard", "easy")
    config = {"name": "synthetic", "run": {"seed": seed, "bootstrap": resamples},
              "gates": {"baseline": baseline, "candidate": candidate,
                        "rules": [{"metric": "accuracy", "max_drop": 0.02, "significance": "point"}]},
              "models": {baseline: {"provider": "openai"}, candidate: {"provider": "openai"}}}
    now = datetime(2026, 1, 1, 12, 0, 0)
    with Store(path) as store:
        store.create_run({"run_id": run_id, "suite_name": "synthetic", "suite_version": "1", "suite_hash": "0" * 64,
                          "dataset_path": "synthetic.jsonl", "dataset_hash": "0" * 64, "n_samples": n, "repeats": 1,
                          "status": "complete", "created_at": now, "finished_at": now, "evalkit_version": "test",
                          "packages": json.dumps({}), "config": json.dumps(config)})
        messages = []
        for i in range(n):
            body = hostile.get(i, {}).get("message", f"Subject: note {i}\n\nmessage body {i}")
            messages.append(json.dumps([{"role": "system", "content": SYSTEM}, {"role": "user", "content": body}]))
        store.insert_samples(pa.table({
            "run_id": [run_id] * n, "sample_id": ids, "position": np.arange(n, dtype=np.int32),
            "slice": slices.tolist(), "fields": ["{}"] * n, "messages": messages,
            "target": [json.dumps(v) for v in label.tolist()],
            "target_label": [json.dumps(v) for v in label.tolist()]}, schema=SAMPLE_SCHEMA))  # a label run
        for model, accuracy in ((baseline, 0.9), (candidate, 0.85)):
            store.upsert_run_model({"run_id": run_id, "model": model, "provider": "openai", "model_ref": model,
                                    "status": "complete", "wall_s": n / 50.0, "n_calls": n, "config": "{}"})
            right = rng.random(n) < accuracy
            answers = np.where(right, label, np.where(label == "spam", "ham", "spam")).tolist()
            for i, h in hostile.items():
                if f"answer_{model}" in h or "answer" in h:
                    answers[i] = h.get(f"answer_{model}", h.get("answer", answers[i]))
                    right[i] = False
                elif model == baseline:  # the baseline gets a hostile sample right: it is a regression
                    answers[i], right[i] = str(label[i]), True
            confidence = np.clip(np.where(right, 0.8, 0.6) + rng.normal(0, 0.12, n), 0.01, 0.99)
            latency = rng.lognormal(np.log(300 if model == candidate else 700), 0.4, n)
            columns = {
                "run_id": [run_id] * n, "model": [model] * n, "sample_id": ids, "repeat": np.zeros(n, np.int32),
                "status": ["ok"] * n, "output": answers, "parsed": [json.dumps(a) for a in answers],
                "schema_valid": np.ones(n, bool), "violations": ["[]"] * n, "quality": right.astype(float),
                "correct": right, "confidence": confidence, "latency_ms": latency,
                "prompt_tokens": np.full(n, 42, np.int32), "completion_tokens": np.full(n, 2, np.int32),
                "cost_usd": np.full(n, 3e-5 if model == baseline else 1e-5), "finish_reason": ["stop"] * n,
                "attempts": np.ones(n, np.int32), "cache_hit": np.zeros(n, bool),
                "cache_key": [f"{model}-{i}" for i in range(n)], "created_at": [now] * n}
            full = {f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in RESULT_SCHEMA}
            store.insert_batch("results", pa.table(full, schema=RESULT_SCHEMA))
        compute_run_metrics(store, run_id, seed, resamples)
    return run_id
