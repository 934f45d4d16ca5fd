"""Score errors, summarised: which suite function failed how, on how many rows of which model.

A score error (``results.score_error``) is a custom scorer or feasibility check that raised, timed out,
or returned something it may not (NaN, a number outside [0, 1], a wrong type). The row is still stored
(quality 0), so the run goes on; this module says so at the end of the run, in the report, and to the
gates: a gate on a quality-derived metric answers ``error`` when more rows than
``scoring.max_score_errors`` have one, on either side of the comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from evalkit.store.db import Store

# metrics whose value depends on the scorer's or checks' verdicts (w13b's tail5_brier and
# confident_error_rate included, for when they land)
QUALITY_DERIVED = frozenset({"accuracy", "accuracy_answered", "quality_mean", "feasible_rate",
                             "valid_but_infeasible_rate", "brier", "ece", "tail5", "tail5_brier",
                             "confident_error_rate"})
_GROUPS = [
    (re.compile(r"^(?P<who>.+?) raised (?P<type>[\w.]+)"), "{who} raised {type}"),
    (re.compile(r"^(?P<who>.+?) timed out after (?P<s>\S+) s"), "{who} timed out after {s} s"),
    (re.compile(r"^(?P<who>.+?) returned .*?\((?P<why>not a number|outside \[0, 1\])\)"), "{who} returned a value {why}"),
    (re.compile(r"^(?P<who>.+?) returned (?P<type>\w+) "), "{who} returned a {type}"),
    (re.compile(r"^(?P<who>.+?): the scoring worker process exited"), "{who}: the scoring worker process exited"),
    (re.compile(r"^judge (?P<what>reply is not a JSON object|reply has no '\w+'|reply has no winner|call failed)"),
     "judge {what}"),
    (re.compile(r"^judge score .* is not on the scale"), "judge score not on the scale"),
]


@dataclass(frozen=True)
class ScoreErrorGroup:
    """Rows of one model with one kind of score error (one function, one way of failing)."""

    model: str
    what: str       # e.g. "scorer scorer.py:quality raised ValueError"
    rows: int
    example: str    # one full message of the group

    def line(self) -> str:
        return f"{self.rows} row(s) of {self.model}: {self.what} (e.g. {self.example[:160]})"


def group_of(message: str) -> str:
    """The kind of one score error message: the function and how it failed, without the details."""
    for pattern, template in _GROUPS:
        match = pattern.match(message)
        if match:
            return template.format(**match.groupdict())
    return message[:120]


def summarise(store: Store, run_id: str) -> list[ScoreErrorGroup]:
    """A run's score errors grouped by model, function and error type; the largest groups first."""
    counts: dict[tuple[str, str], list[int | str]] = {}
    for model, text, n in store.score_error_counts(run_id):
        for part in str(text).split("; "):
            entry = counts.setdefault((model, group_of(part)), [0, part])
            entry[0] = int(entry[0]) + int(n)
    groups = [ScoreErrorGroup(model, what, int(n), str(example)) for (model, what), (n, example) in counts.items()]
    return sorted(groups, key=lambda g: (-g.rows, g.model, g.what))


def rows_with_score_errors(store: Store, run_id: str, model: str) -> int:
    """How many rows of one model of a run have a score error."""
    return sum(int(n) for m, _text, n in store.score_error_counts(run_id) if m == model)
