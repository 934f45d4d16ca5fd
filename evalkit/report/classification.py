"""The report's classification section (label and labels outputs): the F1 metrics with CIs and paired deltas,
each model's per-class table and confusion matrix side by side, and the difference (candidate − baseline).

Heat-map cells carry their shade as an inline style computed here: right answers (the diagonal) shade
blue by their share of the largest of them, errors red by their share of the largest error; a difference
shades by its size, green where the candidate does better (more on the diagonal, fewer off it), red
where it does worse.
"""

from __future__ import annotations

from typing import Any

from evalkit.analysis.classification import LABEL_KINDS, METRICS_OF, REPORT_COLUMNS, label_spec, run_class_reports
from evalkit.store.db import Store

_LABELS = {"macro_f1": "Macro-F1", "weighted_f1": "Weighted F1", "micro_f1": "Micro-F1",
           "jaccard": "Jaccard (per sample)"}


def _shade(value: float, top: float, rgb: str) -> str:
    alpha = 0.0 if top <= 0 else min(1.0, abs(value) / top) * 0.85
    return f"background: rgba({rgb}, {alpha:.3f})"


def _matrix(counts: list[list[int]]) -> list[list[dict[str, Any]]]:
    """Diagonal cells (right) shade blue by the largest diagonal count, the others red by the largest error."""
    right = max((row[i] for i, row in enumerate(counts)), default=0)
    wrong = max((v for i, row in enumerate(counts) for j, v in enumerate(row) if i != j), default=0)
    return [[{"n": v, "diagonal": i == j,
              "style": _shade(v, right, "37, 99, 235") if i == j else _shade(v, wrong, "220, 38, 38")}
             for j, v in enumerate(row)] for i, row in enumerate(counts)]


def _difference(base: list[list[int]], cand: list[list[int]]) -> list[list[dict[str, Any]]]:
    diff = [[c - b for b, c in zip(rb, rc, strict=True)] for rb, rc in zip(base, cand, strict=True)]
    top = max((abs(v) for row in diff for v in row), default=0)
    out = []
    for i, row in enumerate(diff):
        cells = []
        for j, v in enumerate(row):
            better = (v > 0) == (i == j)
            cells.append({"n": v, "diagonal": i == j, "better": v != 0 and better,
                          "style": _shade(v, top, "22, 163, 74" if better else "220, 38, 38")})
        out.append(cells)
    return out


def _per_class_pairs(base: dict[str, Any], cand: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for b, c in zip(base["per_class"], cand["per_class"], strict=True):
        out.append({"label": b["label"], "support": b["support"], "baseline": b, "candidate": c,
                    "delta_f1": c["f1"] - b["f1"]})
    return out


def classification_section(store: Store, run_id: str, config: dict[str, Any], baseline: str | None,
                           candidate: str | None, metrics: dict[str, dict[str, dict[str, Any]]],
                           deltas: dict[str, dict[str, Any]] | None) -> dict[str, Any] | None:
    """The section's context, or None when the run's output is neither label nor labels."""
    kind, labels = label_spec(config)
    if kind not in LABEL_KINDS:
        return None
    reports = run_class_reports(store.results_frame(run_id, REPORT_COLUMNS), kind, labels)
    if not reports:
        return None
    shown = [m for m in (baseline, candidate) if m in reports] if baseline and candidate else sorted(reports)
    names = list(METRICS_OF[kind or ""])
    summary = [{"metric": name, "label": _LABELS[name],
                "values": {m: metrics.get(m, {}).get(name) for m in shown},
                "delta": (deltas or {}).get(name)} for name in names]
    models = []
    for m in shown:
        report = reports[m]
        entry = {"name": m, "report": report, "per_class": report["per_class"]}
        if "confusion" in report:
            entry["matrix"] = _matrix(report["confusion"]["counts"])
        models.append(entry)
    section: dict[str, Any] = {"kind": kind, "classes": reports[shown[0]]["classes"], "summary": summary,
                               "models": models, "shown": shown, "difference": None, "pairs": None}
    if baseline and candidate and len(models) == 2:
        b, c = reports[baseline], reports[candidate]
        section["pairs"] = _per_class_pairs(b, c)
        if kind == "label":
            section["difference"] = _difference(b["confusion"]["counts"], c["confusion"]["counts"])
            section["answers"] = b["confusion"]["answers"]
    elif models and kind == "label":
        section["answers"] = models[0]["report"]["confusion"]["answers"]
    return section
