"""Confidence coverage: a configured confidence source that yields nothing is said, never left silent.

A ``confidence.field`` the model never writes, or logprobs a server never returns, leave every
calibration metric (``brier``, ``ece``, ``tail5_brier``, ``confident_error_rate``) without a value. The
end of ``evalkit run`` and the report warn with one line per model (:func:`coverage_warnings`), and a
gate on one of those metrics answers ``error`` with the same reason (:func:`confidence_gap`).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from evalkit.store.db import Store

CONFIDENCE_METRICS = frozenset({"brier", "ece", "tail5_brier", "confident_error_rate"})
_AFFECTED = "brier, ece, tail5_brier and confident_error_rate have no value"


def _confidence_config(store: Store, run_id: str) -> dict[str, Any] | None:
    """The run's ``confidence`` section, or None when the run stored no suite config (an imported log)."""
    raw = store.get_run(run_id).get("config")
    config = json.loads(raw) if isinstance(raw, str) else raw
    if not config:
        return None
    section: dict[str, Any] = config.get("confidence") or {"source": "none"}
    return section


def _source(section: dict[str, Any]) -> str:
    source = str(section.get("source") or "none")
    return f"confidence.source: {source}, field: '{section['field']}'" if section.get("field") else \
        f"confidence.source: {source}"


def _hint(section: dict[str, Any]) -> str:
    if section.get("source") == "field":
        return (f"check that the model writes '{section.get('field')}' (a number in [0, 1] or 0-100) in its JSON "
                "answer")
    return ("check that the server returns logprobs for this model and that their tokens spell the answer "
            "(a chat template or a stop string can hide them)")


def no_confidence_line(model: str, ok_rows: int, section: dict[str, Any]) -> str:
    """The one line that says a model gave no confidence although the suite asks for one."""
    return (f"model '{model}' gave no confidence on any of its {ok_rows} successful rows ({_source(section)}): "
            f"{_AFFECTED}; {_hint(section)}")


def coverage_warnings(store: Store, run_id: str) -> list[str]:
    """One line per model of the run whose configured confidence source yielded nothing on a successful row."""
    section = _confidence_config(store, run_id)
    if section is None or section.get("source", "none") == "none":
        return []
    values: dict[str, dict[str, float | None]] = {}
    for row in store.metrics(run_id):
        values.setdefault(row["model"], {})[row["metric"]] = row["value"]
    out = []
    for model in sorted(values):
        m = values[model]
        ok_rows = int((m.get("n") or 0) - (m.get("n_errors") or 0))
        if ok_rows > 0 and m.get("confidence_coverage") == 0:
            out.append(no_confidence_line(model, ok_rows, section))
    return out


def confidence_gap(store: Store, rows: pd.DataFrame, baseline: tuple[str, str],
                   candidate: tuple[str, str]) -> str | None:
    """Why the paired rows hold no calibration value, or None when some pair has both confidences.

    ``rows`` are a pairing's matched rows (columns suffixed _b / _c); the sides are (run id, model).
    """
    both = rows["confidence_b"].notna() & rows["confidence_c"].notna()
    if both.any():
        return None
    reasons = []
    for (run_id, model), suffix in ((baseline, "_b"), (candidate, "_c")):
        if rows[f"confidence{suffix}"].notna().any():
            continue
        section = _confidence_config(store, run_id)
        ok_rows = int((rows[f"status{suffix}"] == "ok").sum())
        if section is None:
            reasons.append(f"model '{model}' has no confidence on these samples (its run records no "
                           "confidence source)")
        elif section.get("source", "none") == "none":
            reasons.append(f"model '{model}' has no confidence: its suite sets no confidence source "
                           "(confidence.source: none)")
        elif ok_rows == 0:
            reasons.append(f"model '{model}' has no successful row on these samples")
        else:
            reasons.append(no_confidence_line(model, ok_rows, section))
    if not reasons:
        reasons.append("both models gave confidences, but never on the same sample: no pair to compare")
    return "; ".join(reasons)
