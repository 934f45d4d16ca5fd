"""Classification metrics of label outputs (``output.type: label`` and ``labels``), from stored rows.

Each row's *target class(es)* is ``samples.target_label``; its *answer* is the label(s) it parsed to
(``results.parsed``) when schema-valid. An answer that names no valid label — or a failed call — is a
prediction of the distinct class ``(invalid)``: it is a miss (false negative) for the target's class and
a column of the confusion matrix, but not a class the F1 averages run over (it has no targets).
Rows without a target class (a null target) are left out.

Metrics (scikit-learn's definitions with ``zero_division=0``, over the classes present: see
:mod:`evalkit.analysis.label_bootstrap`): ``macro_f1``, ``weighted_f1`` (by support) for both kinds;
``micro_f1`` and ``jaccard`` (per-sample |A ∩ T| / |A ∪ T|, 1 for an empty answer to an empty target, 0
for an invalid answer, averaged) for multi-label outputs. CIs and paired deltas use the bootstrap of
summed per-class counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from evalkit.analysis.bootstrap import (
    FloatArray,
    IndexArray,
    bootstrap,
    paired_bootstrap,
    percentile_interval,
    row_mean,
    seeded_rng,
)
from evalkit.analysis.label_bootstrap import count_features, f1_from_counts, per_unit, resampled_sums, split

INVALID = "(invalid)"
LABEL_KINDS = ("label", "labels")
METRICS_OF = {"label": ("macro_f1", "weighted_f1"), "labels": ("micro_f1", "macro_f1", "weighted_f1", "jaccard")}
Value = tuple[float | None, float | None, float | None, int]  # value, ci_low, ci_high, n


def _as_set(value: Any) -> set[str]:
    return {str(v) for v in value} if isinstance(value, list) else {str(value)}


@dataclass(frozen=True)
class Coded:
    """A column of label values, factorised: ``codes[i]`` indexes ``sets`` (-1: none — a null target, or an
    answer that is not valid). Each distinct JSON text is parsed once."""

    codes: npt.NDArray[np.int64]
    sets: list[set[str]]

    def seen(self, mask: npt.NDArray[np.bool_]) -> set[str]:
        out: set[str] = set()
        for code in np.unique(self.codes[mask]):
            if code >= 0:
                out |= self.sets[code]
        return out

    def indicator(self, classes: list[str]) -> npt.NDArray[np.bool_]:
        """(rows, classes) membership; rows with code -1 are all False."""
        index = {c: j for j, c in enumerate(classes)}
        table = np.zeros((len(self.sets) + 1, len(classes)), dtype=bool)  # the last row: no label
        for i, labels in enumerate(self.sets):
            for c in labels:
                if c in index:
                    table[i, index[c]] = True
        out: npt.NDArray[np.bool_] = table[np.where(self.codes >= 0, self.codes, len(self.sets))]
        return out


def _coded(column: pd.Series, usable: npt.NDArray[np.bool_] | None = None) -> Coded:
    codes, uniques = pd.factorize(column.astype(object), use_na_sentinel=True)
    codes = codes.astype(np.int64)
    if usable is not None:
        codes = np.where(usable, codes, -1)
    return Coded(codes, [_as_set(json.loads(u) if isinstance(u, str) else u) for u in uniques])


@dataclass(frozen=True)
class LabelRows:
    """One model's label rows: target and answer indicators over ``classes``, and which answers are invalid."""

    classes: list[str]
    truth: npt.NDArray[np.bool_]
    pred: npt.NDArray[np.bool_]
    invalid: npt.NDArray[np.bool_]
    keep: npt.NDArray[np.bool_]  # rows of the frame that have a target class
    codes: npt.NDArray[np.int64]  # per kept row: equal for rows with the same target and answer


def _row_sets(frame: pd.DataFrame, suffix: str = "") -> tuple[Coded, Coded]:
    valid = frame[f"schema_valid{suffix}"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    return _coded(frame[f"target_label{suffix}"]), _coded(frame[f"parsed{suffix}"], valid)


def class_order(labels: list[str], seen: set[str]) -> list[str]:
    """The suite's labels that occur, in its order, then any other target class, sorted."""
    return [label for label in labels if label in seen] + sorted(seen - set(labels))


def label_rows(targets: Coded, answers: Coded, labels: list[str], classes: list[str] | None = None) -> LabelRows:
    keep = targets.codes >= 0
    if classes is None:
        classes = class_order(labels, targets.seen(keep) | answers.seen(keep))
    truth, pred = targets.indicator(classes)[keep], answers.indicator(classes)[keep]
    invalid = answers.codes[keep] < 0
    codes = targets.codes[keep] * (len(answers.sets) + 1) + answers.codes[keep] + 1
    return LabelRows(classes, truth, pred, invalid, keep, codes)


def jaccard_rows(rows: LabelRows) -> FloatArray:
    inter = (rows.truth & rows.pred).sum(axis=1)
    union = (rows.truth | rows.pred).sum(axis=1)
    out = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    out[rows.invalid] = 0.0
    return out.astype(np.float64)


def _f1_values(rows: LabelRows, kind: str, resamples: int, rng: np.random.Generator) -> dict[str, Value]:
    k, n = len(rows.classes), len(rows.invalid)
    features = count_features(rows.truth, rows.pred)
    point = f1_from_counts(*split(features.sum(axis=0), k))
    names = [m for m in METRICS_OF[kind] if m != "jaccard"]
    cis: dict[str, tuple[float | None, float | None]] = {m: (None, None) for m in names}
    if resamples > 0 and n >= 2:
        stats = f1_from_counts(*split(resampled_sums(features, resamples, rng, codes=rows.codes), k))
        cis = {m: percentile_interval(stats[m]) for m in names}
    return {m: (float(point[m]), *cis[m], n) for m in names}


def model_values(frame: pd.DataFrame, kind: str | None, labels: list[str], seed: int, model: str,
                 resamples: int) -> dict[str, Value]:
    """One model's classification metrics from its rows (columns target_label, parsed, schema_valid)."""
    if kind not in LABEL_KINDS:
        return {}
    rows = label_rows(*_row_sets(frame), labels)
    if not rows.keep.any():
        return {m: (None, None, None, 0) for m in METRICS_OF[kind]}
    rng = seeded_rng(seed, f"{model}|classification")  # its own stream: other metrics keep their draws
    out = _f1_values(rows, kind, resamples, rng)
    if kind == "labels":
        values = jaccard_rows(rows)
        out["jaccard"] = (float(values.mean()), *bootstrap(values, row_mean, resamples, rng), len(values))
    return out


def paired_values(rows: pd.DataFrame, kind: str | None, labels: list[str], resamples: int, rng: np.random.Generator,
                  confidence: float, groups: IndexArray) -> dict[str, tuple[Any, ...]]:
    """Candidate − baseline of each classification metric on paired rows (suffixes _b, _c): (baseline,
    candidate, delta, ci_low, ci_high, n), one set of resamples (whole samples when there are repeats)."""
    if kind not in LABEL_KINDS:
        return {}
    targets, answers_b = _row_sets(rows, "_b")
    _, answers_c = _row_sets(rows, "_c")
    keep = targets.codes >= 0
    classes = class_order(labels, targets.seen(keep) | answers_b.seen(keep) | answers_c.seen(keep))
    side_b = label_rows(targets, answers_b, labels, classes)
    side_c = label_rows(targets, answers_c, labels, classes)
    n, k = int(side_b.keep.sum()), len(classes)
    if n == 0:
        return {}
    kept_groups = groups[side_b.keep]
    names = [m for m in METRICS_OF[kind] if m != "jaccard"]
    fb, fc = count_features(side_b.truth, side_b.pred), count_features(side_c.truth, side_c.pred)
    vb, vc = f1_from_counts(*split(fb.sum(axis=0), k)), f1_from_counts(*split(fc.sum(axis=0), k))
    cis: dict[str, tuple[float | None, float | None]] = {m: (None, None) for m in names}
    units = per_unit(np.concatenate([fb, fc], axis=1), kept_groups)
    if resamples > 0 and len(units) >= 2:
        codes = None
        if len(units) == n:  # no repeats: equal (target, answer, answer) codes are equal units
            cb, cc = pd.factorize(side_b.codes)[0].astype(np.int64), pd.factorize(side_c.codes)[0].astype(np.int64)
            codes = cb * (int(cc.max()) + 1) + cc
        sums = resampled_sums(units, resamples, rng, codes=codes)
        sb, sc = f1_from_counts(*split(sums[:, :3 * k], k)), f1_from_counts(*split(sums[:, 3 * k:], k))
        cis = {m: percentile_interval(sc[m] - sb[m], confidence) for m in names}
    out: dict[str, tuple[Any, ...]] = {
        m: (float(vb[m]), float(vc[m]), float(vc[m] - vb[m]), *cis[m], n) for m in names}
    if kind == "labels":
        jb, jc = jaccard_rows(side_b), jaccard_rows(side_c)
        low, high = paired_bootstrap(jb, jc, row_mean, resamples, rng, confidence, kept_groups)
        out["jaccard"] = (float(jb.mean()), float(jc.mean()), float(jc.mean() - jb.mean()), low, high, n)
    return out


def per_class(rows: LabelRows) -> list[dict[str, Any]]:
    """Precision, recall, F1, support, predictions, misses and false alarms of each class."""
    tp = (rows.truth & rows.pred).sum(axis=0)
    fp = (rows.pred & ~rows.truth).sum(axis=0)
    fn = (rows.truth & ~rows.pred).sum(axis=0)
    out = []
    for j, name in enumerate(rows.classes):
        t, p, f = int(tp[j]), int(fp[j]), int(fn[j])
        out.append({"label": name, "precision": t / (t + p) if t + p else 0.0,
                    "recall": t / (t + f) if t + f else 0.0,
                    "f1": 2 * t / (2 * t + p + f) if 2 * t + p + f else 0.0,
                    "support": t + f, "predicted": t + p, "missed": f, "false_alarms": p})
    return out


def confusion(rows: LabelRows) -> list[list[int]]:
    """Single-label: counts[target class][answer], answers being the classes then ``(invalid)``."""
    t = rows.truth.argmax(axis=1)
    p = np.where(rows.invalid, len(rows.classes), rows.pred.argmax(axis=1))
    k = len(rows.classes)
    counts = np.bincount(t * (k + 1) + p, minlength=k * (k + 1)).reshape(k, k + 1)
    return [[int(v) for v in row] for row in counts]


def class_report(frame: pd.DataFrame, kind: str, labels: list[str], classes: list[str]) -> dict[str, Any]:
    """One model's per-class table and (single-label) confusion matrix over the run's ``classes``."""
    rows = label_rows(*_row_sets(frame), labels, classes)
    out: dict[str, Any] = {"kind": kind, "classes": classes, "n": int(rows.keep.sum()),
                           "n_invalid": int(rows.invalid.sum()), "per_class": per_class(rows)}
    if kind == "label":
        out["confusion"] = {"targets": classes, "answers": [*classes, INVALID], "counts": confusion(rows)}
    return out


def run_classes(frame: pd.DataFrame, labels: list[str]) -> list[str]:
    """Every class a target or any model's valid answer of the run names (rows with a target)."""
    targets, answers = _row_sets(frame)
    keep = targets.codes >= 0
    return class_order(labels, targets.seen(keep) | answers.seen(keep))


REPORT_COLUMNS = ("model", "parsed", "schema_valid", "target_label")


def run_class_reports(frame: pd.DataFrame, kind: str | None, labels: list[str]) -> dict[str, dict[str, Any]]:
    """Every model's :func:`class_report` over the run's classes (a frame of :data:`REPORT_COLUMNS`); {} unless
    the run's output is label or labels."""
    if kind not in LABEL_KINDS or frame.empty:
        return {}
    classes = run_classes(frame, labels)
    return {str(model): class_report(group, kind, labels, classes) for model, group in frame.groupby("model")}


def label_spec(config: dict[str, Any] | None) -> tuple[str | None, list[str]]:
    """(output type, allowed labels) of a stored run config."""
    output = (config or {}).get("output") or {}
    return output.get("type"), list(output.get("labels") or [])
