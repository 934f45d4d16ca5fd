"""The report's worst-5% gallery: each model's ⌈5%·n⌉ most informative failures, and why tail5 may say 0.

Rows are ordered by the most informative score first, never by id:

1. lowest quality;
2. highest confident error: the confidence given to a wrong answer (a wrong answer said with 0.95
   teaches more than one said with 0.3; no confidence counts as 0);
3. highest calibration error (confidence − correct)²: among right answers, the least sure first;
4. answered before failed calls (a failed call is an outage, not an answer; ``error_rate`` counts them);
5. samples the other models of the run got right first: this model's own failures before the hard ones;
6. dataset order, only to break what is still tied.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

ORDER = ("lowest quality, then the most confident wrong answers, then the largest calibration error, answered "
         "before failed calls, and samples the other models got right first")


def order_worst(rows: pd.DataFrame, others: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (one model's) from most to least informative; ``others``: the other models' rows of the run."""
    correct = rows["correct"].astype("float64").fillna(0.0).to_numpy()
    conf = rows["confidence"].to_numpy(dtype="float64", na_value=np.nan)
    confident_error = np.where(correct == 0.0, np.nan_to_num(conf, nan=0.0), 0.0)
    calibration = np.nan_to_num((conf - correct) ** 2, nan=0.0)
    if len(others):
        solved = others["correct"].astype("float64").fillna(0.0).groupby(others["sample_id"]).mean()
        others_right = rows["sample_id"].map(solved).fillna(0.0).to_numpy(dtype="float64")
    else:
        others_right = np.zeros(len(rows))
    keys = pd.DataFrame({"quality": rows["quality"].to_numpy(dtype="float64"), "confident": -confident_error,
                         "calibration": -calibration, "failed": (rows["status"] != "ok").to_numpy(),
                         "others": -others_right, "position": np.arange(len(rows))}, index=rows.index)
    order = keys.sort_values(list(keys.columns), kind="stable").index
    return rows.loc[order]


def is_binary(quality: pd.Series) -> bool:
    """Whether every quality of these rows is 0 or 1 (label tasks, exact match): tail5 then says little."""
    values = quality.to_numpy(dtype="float64")
    return len(values) > 0 and bool(np.all((values == 0.0) | (values == 1.0)))


def tail5_note(rows: pd.DataFrame) -> str | None:
    """Why tail5 is 0 on a 0/1-quality task, or None when it needs no explanation."""
    if not is_binary(rows["quality"]):
        return None
    k = max(1, math.ceil(0.05 * len(rows)))
    if int((rows["quality"] == 0.0).sum()) < k:
        return None  # fewer wrong answers than the tail holds: tail5 is above 0 and means something
    return ("quality is 0 or 1 on this task: the worst 5% is all wrong answers once accuracy is below 95%, so "
            "tail5 is 0 for any such model; see tail5_brier (the worst 5% of calibration errors) and "
            "confident_error_rate for the tail that carries information")


def worst_entries(rows: pd.DataFrame, others: pd.DataFrame, limit: int,
                  clip: Callable[[Any], str]) -> tuple[list[dict[str, Any]], int]:
    """The gallery of one model: (up to ``limit`` entries, the size of its worst 5%)."""
    n_worst = max(1, int(np.ceil(0.05 * len(rows)))) if len(rows) else 0
    worst = order_worst(rows, others).head(min(n_worst, limit))
    correct = worst["correct"].astype("boolean").fillna(False).to_numpy(dtype=bool).tolist()
    quality = worst["quality"].to_numpy(dtype="float64").tolist()
    conf = worst["confidence"].to_numpy(dtype="float64", na_value=np.nan).tolist()
    entries = []
    for j, r in enumerate(worst.itertuples()):
        entries.append({"sample_id": r.sample_id, "quality": quality[j], "correct": correct[j],
                        "confidence": None if math.isnan(conf[j]) else conf[j], "target": clip(r.target),
                        "output": clip(r.output if r.status == "ok" else f"[error] {r.error}"),
                        "violations": json.loads(r.violations) if isinstance(r.violations, str) else []})
    return entries, n_worst
