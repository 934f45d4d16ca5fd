"""``scoring.correct``: correctness decided by its own rule instead of quality ≥ ``correct_threshold``.

The rule is a built-in (``label_match``, ``exact``, ``json_fields`` with its own ``fields`` — all must
match —, ``numeric`` with the scoring's field and tolerances unless it sets its own) or the suite's
function ``file.py:function(answer, target, sample) -> bool``. Quality stays the scorer's. Everything that
can be wrong with the rule (a missing file or function, a wrong signature, a rule the output type cannot
support, a built-in without a target) fails when the suite is prepared, naming the suite file and line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from evalkit.config.loader import suite_line
from evalkit.config.scoring_specs import CorrectSpec
from evalkit.config.suite import LoadedSuite
from evalkit.errors import ConfigError, ScorerError
from evalkit.scoring import builtin
from evalkit.scoring.custom import describe_failure, load_callable

KEY = "scoring.correct"


def _error(loaded: LoadedSuite, message: str) -> ConfigError:
    return ConfigError(message, file=str(loaded.path), line=suite_line(loaded, "scoring", "correct"), key=KEY)


def check_rule(loaded: LoadedSuite, rule: CorrectSpec) -> None:
    """Reject a rule the suite's output or target cannot support."""
    suite = loaded.suite
    kind = suite.output.type
    if rule.scorer == "json_fields" and kind != "json":
        raise _error(loaded, f"the rule 'json_fields' needs output type 'json' (this suite's is '{kind}')")
    if rule.scorer == "label_match" and kind == "json":
        raise _error(loaded, "the rule 'label_match' compares labels; for a JSON answer use 'json_fields' "
                             "(with fields) or 'exact'")
    if rule.scorer == "numeric" and kind == "json" and (rule.field or suite.scoring.field) is None:
        raise _error(loaded, "the rule 'numeric' on a JSON answer needs 'field: <path of the number>'")
    if rule.scorer != "custom" and suite.target is None:
        raise _error(loaded, f"the rule '{rule.scorer}' compares with the target: the suite needs a 'target'")


class CorrectRule:
    """A compiled ``scoring.correct``: :meth:`decide` per usable answer."""

    def __init__(self, loaded: LoadedSuite, rule: CorrectSpec) -> None:
        check_rule(loaded, rule)
        self.rule = rule
        self._scoring = loaded.suite.scoring
        self._case_sensitive = loaded.suite.output.case_sensitive
        self._func: Callable[..., Any] | None = None
        if rule.custom is not None:
            try:
                self._func = load_callable(rule.custom, loaded.base_dir, 3, KEY, loaded.suite.scoring.timeout_s)
            except ScorerError as exc:
                raise _error(loaded, str(exc).removeprefix(f"{KEY} ")) from None

    def decide(self, value: Any, target: Any, fields: dict[str, Any]) -> tuple[bool, str | None]:
        """(correct, error): a rule that raises or returns a non-bool makes the answer wrong, with the reason."""
        rule = self.rule
        if rule.scorer == "label_match":
            return builtin.label_match(value, target, self._case_sensitive) == 1.0, None
        if rule.scorer == "exact":
            return builtin.exact(value, target) == 1.0, None
        if rule.scorer == "json_fields":
            return builtin.json_fields(value, target, rule.fields or []) == 1.0, None
        if rule.scorer == "numeric":
            s = self._scoring
            tolerance = s.tolerance if rule.tolerance is None else rule.tolerance
            relative = s.relative_tolerance if rule.relative_tolerance is None else rule.relative_tolerance
            return builtin.numeric(value, target, rule.field or s.field, tolerance, relative) == 1.0, None
        assert self._func is not None
        try:
            result = self._func(value, target, fields)
        except Exception as exc:  # a bug in the suite's rule (or past scoring.timeout_s): visible, not a crash
            return False, f"correct rule {describe_failure(str(rule.custom), exc)}"
        if isinstance(result, (bool, np.bool_)):
            return bool(result), None
        return False, f"correct rule {rule.custom} returned {result!r}; it must return a bool"
