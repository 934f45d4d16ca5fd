"""The two sides of a comparison when the command line does not name them: the run's own suite gates.

Every run stores its validated suite (``runs.config``), so ``compare``, ``route`` and ``report`` need no
``--baseline/--candidate`` or ``--small/--large`` when the suite's ``gates.baseline`` and ``gates.candidate``
say them; an explicit flag still wins.
"""

from __future__ import annotations

import json
from typing import Any

from evalkit.errors import ConfigError


def suite_gates(store: Any, run_id: str) -> tuple[str | None, str | None]:
    """(gates.baseline, gates.candidate) of the suite stored with the run; None where it names none."""
    run = store.get_run(run_id)
    config = json.loads(run["config"]) if run.get("config") else {}
    gates = (config or {}).get("gates") or {}
    return gates.get("baseline"), gates.get("candidate")


def compare_sides(store: Any, run_id: str | None, baseline: str | None,
                  candidate: str | None) -> tuple[str, str]:
    """``compare``'s sides: the flags, else the run's gates; a clear error when neither names both."""
    if (baseline is None or candidate is None) and run_id is not None:
        stored_b, stored_c = suite_gates(store, run_id)
        baseline, candidate = baseline or stored_b, candidate or stored_c
    if not baseline or not candidate:
        raise ConfigError(f"name the two models to compare: run {run_id}'s suite has no gates.baseline and "
                          "gates.candidate, so pass --baseline MODEL --candidate MODEL (or RUN:MODEL)")
    return baseline, candidate


def route_sides(store: Any, run_id: str, small: str | None, large: str | None) -> tuple[str, str]:
    """``route``'s sides: the flags, else the suite's candidate as the small model and its baseline (the model
    being replaced) as the large one, both of this run."""
    if small is None or large is None:
        baseline, candidate = suite_gates(store, run_id)
        small, large = small or _this_run(candidate, run_id), large or _this_run(baseline, run_id)
    if not small or not large:
        raise ConfigError(f"name the two halves of the hybrid: run {run_id}'s suite has no gates.candidate (the "
                          "small model) and gates.baseline (the large one) of this run, so pass --small MODEL "
                          "--large MODEL")
    return small, large


def _this_run(side: str | None, run_id: str) -> str | None:
    """A gates entry as a model of this run: MODEL, or RUN:MODEL naming this run; another run's model is None."""
    if side is None or ":" not in side:
        return side
    run, _, model = side.rpartition(":")
    return model if run_id.startswith(run) else None
