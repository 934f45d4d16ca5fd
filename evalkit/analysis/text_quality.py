"""The per-row text metrics (``results.text_scores``: token_f1, rouge_l, chrf) as arrays for the metrics
and the paired comparison. A row without them (a failed call) counts as 0, as its quality does; a model
none of whose rows has them has none of these metrics (NULL)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from evalkit.analysis.bootstrap import FloatArray
from evalkit.scoring.text_metrics import TEXT_METRICS


def _scores(value: Any) -> dict[str, Any] | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    loaded = json.loads(value) if isinstance(value, str) else value
    return loaded if isinstance(loaded, dict) else None


def text_metric_arrays(column: pd.Series | None) -> dict[str, FloatArray]:
    """``{metric: per-row values}`` (missing → 0); empty when no row has text scores."""
    if column is None:
        return {}
    parsed = [_scores(v) for v in column.tolist()]
    if not any(p is not None for p in parsed):
        return {}
    return {name: np.array([float((p or {}).get(name) or 0.0) for p in parsed], dtype=np.float64)
            for name in TEXT_METRICS}
