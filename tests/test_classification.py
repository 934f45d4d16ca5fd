"""Classification metrics of label outputs, checked against scikit-learn on stored runs.

Random imbalanced data with the edge cases that matter: a target class no model predicts ('legacy', outside
the allowed labels too), a label one model predicts that no target has ('account'), a label neither has
('never'), answers that name no valid label and failed calls (the '(invalid)' class), and repeats.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, f1_score, jaccard_score, precision_recall_fscore_support
from sklearn.preprocessing import MultiLabelBinarizer
from test_metrics_sql import LABELS, fill_label_run

from evalkit.analysis.classification import INVALID, class_report, run_classes
from evalkit.analysis.label_bootstrap import count_features, f1_from_counts, resampled_sums, split
from evalkit.analysis.metrics import compute_run_metrics
from evalkit.analysis.paired import Side, pair, paired_deltas
from evalkit.store import Store


def _sides(store: Store, run_id: str) -> dict[str, tuple[list, list]]:
    """Per model: (targets, answers) read back from the store, INVALID for an answer that is not valid."""
    frame = store.results_frame(run_id, ["model", "parsed", "schema_valid", "target_label"])
    out = {}
    for model, g in frame.groupby("model"):
        targets = [json.loads(t) for t in g["target_label"]]
        answers = [json.loads(p) if v else INVALID for p, v in zip(g["parsed"], g["schema_valid"], strict=True)]
        out[str(model)] = (targets, answers)
    return out


@pytest.fixture(scope="module")
def label_store(tmp_path_factory: pytest.TempPathFactory):
    with Store(tmp_path_factory.mktemp("labels") / "c.duckdb") as store:
        fill_label_run(store, "single", "label", n=400, seed=3)
        fill_label_run(store, "multi", "labels", n=400, seed=4)
        for run_id in ("single", "multi"):
            compute_run_metrics(store, run_id, seed=1, resamples=300)
        yield store


def _stored(store: Store, run_id: str) -> dict[tuple[str, str], dict]:
    return {(m["model"], m["metric"]): m for m in store.metrics(run_id)}


def test_single_label_metrics_equal_sklearn(label_store: Store):
    stored = _stored(label_store, "single")
    for model, (y_true, y_pred) in _sides(label_store, "single").items():
        classes = sorted((set(y_true) | set(y_pred)) - {INVALID})
        assert "legacy" in classes and "never" not in classes
        for metric, average in (("macro_f1", "macro"), ("weighted_f1", "weighted")):
            expected = f1_score(y_true, y_pred, labels=classes, average=average, zero_division=0)
            got = stored[(model, metric)]
            assert got["value"] == pytest.approx(expected, abs=1e-12), (model, metric)
            assert got["ci_low"] < got["value"] < got["ci_high"] and got["n"] == len(y_true)
    # the model that never answers 'outage' gets F1 0 for it, and 'account' (answered, never a target) too
    assert stored[("b", "macro_f1")]["value"] < stored[("a", "macro_f1")]["value"]


def test_per_class_table_and_confusion_matrix_equal_sklearn(label_store: Store):
    frame = label_store.results_frame("single", ["model", "parsed", "schema_valid", "target_label"])
    classes = run_classes(frame, LABELS)
    assert classes == ["billing", "bug", "outage", "account", "legacy"]  # suite order, then other targets
    for model, (y_true, y_pred) in _sides(label_store, "single").items():
        report = class_report(frame[frame["model"] == model], "label", LABELS, classes)
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
        table = report["per_class"]
        assert [row["label"] for row in table] == classes
        assert np.allclose([row["precision"] for row in table], p) and np.allclose([row["recall"] for row in table], r)
        assert np.allclose([row["f1"] for row in table], f) and [row["support"] for row in table] == list(s)
        expected = confusion_matrix(y_true, y_pred, labels=[*classes, INVALID])[:len(classes)]
        assert report["confusion"]["counts"] == expected.tolist()
        assert report["confusion"]["answers"][-1] == INVALID
        assert report["n_invalid"] == sum(a == INVALID for a in y_pred) > 0
        for j, row in enumerate(table):  # misses and false alarms read off the matrix
            assert row["missed"] == expected[j].sum() - expected[j, j]
            assert row["false_alarms"] == expected[:, j].sum() - expected[j, j]


def test_multi_label_metrics_equal_sklearn(label_store: Store):
    stored = _stored(label_store, "multi")
    binarizer = MultiLabelBinarizer(classes=[*LABELS, INVALID])
    for model, (targets, answers) in _sides(label_store, "multi").items():
        y_true = binarizer.fit_transform([set(t) for t in targets])
        y_pred = binarizer.transform([{INVALID} if a == INVALID else set(a) for a in answers])
        present = [j for j in range(len(LABELS)) if y_true[:, j].any() or y_pred[:, j].any()]
        assert len(present) < len(LABELS)  # 'never' is left out of the averages
        for metric, average in (("micro_f1", "micro"), ("macro_f1", "macro"), ("weighted_f1", "weighted")):
            expected = f1_score(y_true, y_pred, labels=present, average=average, zero_division=0)
            assert stored[(model, metric)]["value"] == pytest.approx(expected, abs=1e-12), (model, metric)
        # samples-averaged Jaccard over the indicator matrix with the invalid column: an invalid answer scores 0,
        # an empty answer to an empty target 1 (sklearn's zero_division applies to exactly that case)
        expected = jaccard_score(y_true, y_pred, average="samples", zero_division=1)
        assert stored[(model, "jaccard")]["value"] == pytest.approx(expected, abs=1e-12)
        assert any(len(t) == 0 for t in targets)


@pytest.mark.slow  # 40 sklearn calls: ~2 s
def test_bincount_resamples_equal_sklearn_on_the_same_indices():
    """The index path: each resample's F1 from summed counts equals sklearn's on the resampled rows."""
    rng = np.random.default_rng(0)
    n, classes = 80, ["x", "y", "z"]
    y_true = rng.choice(classes, n, p=[0.7, 0.2, 0.1])
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.choice([*classes, INVALID], n))
    truth = np.stack([y_true == c for c in classes], 1)
    pred = np.stack([y_pred == c for c in classes], 1)
    sums = resampled_sums(count_features(truth, pred), 40, np.random.default_rng(7), max_distinct=0)
    stats = f1_from_counts(*split(sums, len(classes)))
    idx = np.random.default_rng(7).integers(0, n, size=(40, n), dtype=np.int32)
    for i, rows in enumerate(idx):
        t, p = y_true[rows], y_pred[rows]
        seen = sorted((set(t) | set(p)) - {INVALID})
        assert stats["macro_f1"][i] == pytest.approx(f1_score(t, p, labels=seen, average="macro", zero_division=0))
        assert stats["weighted_f1"][i] == pytest.approx(
            f1_score(t, p, labels=seen, average="weighted", zero_division=0))


def test_count_resampling_has_the_distribution_of_row_resampling():
    """The multinomial path draws the same distribution as resampling rows (compared on 4000 resamples each)."""
    rng = np.random.default_rng(1)
    n = 300
    truth = np.eye(4, dtype=bool)[rng.choice(4, n, p=[0.6, 0.25, 0.1, 0.05])]
    pred = np.where(rng.random((n, 1)) < 0.7, truth, np.eye(4, dtype=bool)[rng.choice(4, n)])
    features = count_features(truth, pred)
    fast = f1_from_counts(*split(resampled_sums(features, 4000, np.random.default_rng(2)), 4))["macro_f1"]
    rows = f1_from_counts(*split(resampled_sums(features, 4000, np.random.default_rng(3), max_distinct=0), 4))["macro_f1"]
    assert abs(fast.mean() - rows.mean()) < 0.003 and abs(fast.std() - rows.std()) < 0.003
    assert np.allclose(np.percentile(fast, [2.5, 97.5]), np.percentile(rows, [2.5, 97.5]), atol=0.006)


def test_paired_deltas_of_classification_metrics(label_store: Store):
    for run_id, metrics in (("single", ("macro_f1", "weighted_f1")), ("multi", ("micro_f1", "macro_f1", "jaccard"))):
        stored = _stored(label_store, run_id)
        deltas = paired_deltas(pair(label_store, Side(run_id, "a"), Side(run_id, "b")), seed=0, resamples=500)
        for metric in metrics:
            d = deltas[metric]
            assert d.baseline == pytest.approx(stored[("a", metric)]["value"])
            assert d.candidate == pytest.approx(stored[("b", metric)]["value"])
            assert d.ci_low < d.delta < d.ci_high and d.n == 400, (run_id, metric)


@pytest.mark.slow  # two stores and two paired bootstraps: ~2.5 s
def test_paired_classification_bootstrap_resamples_whole_samples_with_repeats(tmp_path: Path):
    """Three identical repeats per sample: the same evidence as one, so the CI must not narrow by √3."""
    def build(db: Path, repeats: int) -> tuple[float, float]:
        rng = np.random.default_rng(5)
        with Store(db) as store:
            store.create_run({"run_id": "r", "suite_name": "s", "suite_hash": "h", "status": "complete",
                              "created_at": pd.Timestamp.now(), "n_samples": 150, "repeats": repeats,
                              "config": {"output": {"type": "label", "labels": ["x", "y", "z"]}}})
            targets = rng.choice(["x", "y", "z"], 150, p=[0.6, 0.3, 0.1])
            store.insert_samples([{"run_id": "r", "sample_id": f"s{i}", "position": i, "target": json.dumps(t),
                                   "target_label": json.dumps(t)} for i, t in enumerate(targets)])
            answers = {m: np.where(rng.random(150) < acc, targets, rng.choice(["x", "y", "z"], 150))
                       for m, acc in (("a", 0.8), ("b", 0.6))}
            rows = []
            for model, given in answers.items():
                store.upsert_run_model({"run_id": "r", "model": model, "provider": "vllm", "status": "complete"})
                rows += [{"run_id": "r", "model": model, "sample_id": f"s{i}", "repeat": k, "status": "ok",
                          "parsed": json.dumps(given[i]), "schema_valid": True, "quality": 0.0, "correct": False,
                          "attempts": 1, "cache_hit": False, "cache_key": f"{model}{i}{k}", "created_at": pd.Timestamp.now()}
                         for i in range(150) for k in range(repeats)]
            store.insert_results(rows)
            d = paired_deltas(pair(store, Side("r", "a"), Side("r", "b")), seed=0, resamples=1000)["macro_f1"]
            return d.delta, d.ci_high - d.ci_low

    one, three = build(tmp_path / "one.duckdb", 1), build(tmp_path / "three.duckdb", 3)
    assert one[0] == pytest.approx(three[0])
    assert three[1] == pytest.approx(one[1], rel=0.15)  # rows as independent: ≈ one[1] / √3
