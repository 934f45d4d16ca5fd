"""The report's "Score errors" section: which suite function failed how, on how many rows of each model."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from evalkit.analysis.score_errors import summarise
from evalkit.store.db import Store


def score_error_section(store: Store, run_id: str) -> list[dict[str, Any]]:
    """One entry per (model, function, error type), largest first; empty when no row has a score error."""
    return [asdict(g) for g in summarise(store, run_id)]
