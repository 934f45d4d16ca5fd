"""Score one answer: parse → schema validity → feasibility → quality → correct → confidence.

The rules, in order (they are the public meaning of the stored columns):
- ``schema_valid``: json answers validate against the suite's JSON Schema (any JSON value when none
  is given); label answers name exactly one allowed label; text answers: NULL.
- ``feasible``: only when feasibility checks are configured (else NULL); False when the answer is not
  schema-valid (checks are not run) or when any check reports a violation.
- ``quality`` in [0, 1]: the scorer's value; 0 for an unparseable or schema-invalid answer, and 0 for
  an infeasible one when ``scoring.infeasible_is_wrong`` (default).
- ``correct``: quality ≥ ``scoring.correct_threshold``; or, when ``scoring.correct`` names a rule
  (``correctness.py``), that rule's verdict on a usable answer (an unusable one is wrong, and so is an
  infeasible one when ``scoring.infeasible_is_wrong``). Quality stays the scorer's either way.
- ``confidence``: from the answer's field or its logprobs (see ``confidence.py``); NULL when absent.
A failing call is scored by :meth:`SampleScorer.error_score`: everything False/0, confidence NULL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from evalkit.config.prompts import RenderedSample
from evalkit.config.suite import LoadedSuite
from evalkit.records import Completion
from evalkit.scoring import builtin, confidence
from evalkit.scoring.correctness import CorrectRule
from evalkit.scoring.custom import UserFunction, describe_failure, load_callable
from evalkit.scoring.parse import Parsed, parse_output
from evalkit.scoring.schema_refs import compile_schema

_MAX_MESSAGES = 20


@dataclass
class Score:
    """Everything the scoring of one answer produced; stored as one row's columns."""

    parsed: Any = None
    parse_error: str | None = None
    schema_valid: bool | None = None
    schema_errors: list[str] = field(default_factory=list)
    feasible: bool | None = None
    violations: list[str] = field(default_factory=list)
    quality: float = 0.0
    correct: bool = False
    confidence: float | None = None
    score_error: str | None = None


def load_json_schema(loaded: LoadedSuite) -> dict[str, Any] | None:
    """The output JSON Schema (inline or from a file), checked against its metaschema, every $ref
    resolved (see :mod:`evalkit.scoring.schema_refs`)."""
    compiled = compile_schema(loaded)
    return compiled.schema if compiled else None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class SampleScorer:
    """Compiled scoring for one suite: build once, call :meth:`score` per answer."""

    def __init__(self, loaded: LoadedSuite) -> None:
        self._suite = loaded.suite
        compiled = compile_schema(loaded)  # every $ref loaded and checked now, never per sample
        self._validator = compiled.validator if compiled else None
        scoring = loaded.suite.scoring
        self._custom: UserFunction | None = (
            load_callable(scoring.custom, loaded.base_dir, 3, "scoring.custom", scoring.timeout_s)
            if scoring.custom else None)
        self._checks = [(ref, load_callable(ref, loaded.base_dir, 2, "scoring.feasibility", scoring.timeout_s))
                        for ref in scoring.feasibility]
        self._correct = CorrectRule(loaded, scoring.correct) if scoring.correct is not None else None

    def _schema_validity(self, parsed: Parsed) -> tuple[bool | None, list[str]]:
        kind = self._suite.output.type
        if kind == "text":
            return None, []
        if parsed.value is None and parsed.error:
            return False, [parsed.error]
        if kind == "label" or self._validator is None:
            return True, []
        errors = sorted(self._validator.iter_errors(parsed.value), key=lambda e: list(e.path))
        messages = [f"{'/'.join(str(p) for p in e.path) or '(root)'}: {e.message[:200]}"
                    for e in errors[:_MAX_MESSAGES]]
        return not errors, messages

    def _feasibility(self, value: Any, fields: dict[str, Any]) -> tuple[bool, list[str], str | None]:
        """Each check returns a list of violated constraints (empty: feasible), or a bool (True: feasible)."""
        violations: list[str] = []
        crashed: list[str] = []
        for name, check in self._checks:
            try:
                found = check(value, fields)
            except Exception as exc:  # a bug in the suite's check: keep it visible, do not crash the run
                crashed.append(f"feasibility check {describe_failure(name, exc)}")
                violations.append(crashed[-1])
                continue
            if isinstance(found, bool):
                violations.extend([] if found else [f"{name} returned False"])
            elif isinstance(found, (list, tuple)):
                violations.extend(str(v) for v in found)
            else:
                crashed.append(f"feasibility check {name} returned {type(found).__name__} {_shown(found)}, not a "
                               "list of violated constraints or a bool")
                violations.append(crashed[-1])
        return not violations, violations, "; ".join(crashed) or None

    def _quality(self, value: Any, target: Any, fields: dict[str, Any]) -> tuple[float, str | None]:
        scoring = self._suite.scoring
        kind = scoring.scorer
        if kind == "label_match":
            return builtin.label_match(value, target, self._suite.output.case_sensitive), None
        if kind == "exact":
            return builtin.exact(value, target), None
        if kind == "json_fields":
            return builtin.json_fields(value, target, scoring.fields or []), None
        if kind == "numeric":
            return builtin.numeric(value, target, scoring.field, scoring.tolerance,
                                   scoring.relative_tolerance), None
        if kind in ("none", "judge"):  # judge: scored after the models answered (evalkit.engine.judging)
            return 0.0, None
        assert self._custom is not None
        label = self._custom.label
        try:
            result = self._custom(value, target, fields)
        except Exception as exc:
            return 0.0, f"scorer {describe_failure(label, exc)}"
        if isinstance(result, bool):
            return float(result), None
        if isinstance(result, (int, float)) and math.isfinite(result) and 0.0 <= float(result) <= 1.0:
            return float(result), None
        if isinstance(result, (int, float)):
            what = "not a number" if math.isnan(result) else "outside [0, 1]"
            return 0.0, f"scorer {label} returned {result!r} ({what}); it must return a bool or a number in [0, 1]"
        return 0.0, (f"scorer {label} returned {type(result).__name__} {_shown(result)}; it must return a bool or a "
                     "number in [0, 1]")

    def score(self, rendered: RenderedSample, completion: Completion) -> Score:
        """Score one answer. Never raises for anything the model wrote."""
        out = self._suite.output
        parsed = parse_output(out.type, completion.text, out.labels, out.case_sensitive)
        result = Score(parsed=parsed.value, parse_error=parsed.error)
        result.schema_valid, result.schema_errors = self._schema_validity(parsed)
        usable = parsed.value is not None and result.schema_valid is not False
        errors: list[str] = []
        if self._checks:
            if usable:
                result.feasible, result.violations, crashed = self._feasibility(
                    parsed.value, rendered.sample.fields)
                if crashed:
                    errors.append(crashed)
            else:
                result.feasible = False
        if usable:
            result.quality, q_error = self._quality(parsed.value, rendered.target, rendered.sample.fields)
            if q_error:
                errors.append(q_error)
            if result.feasible is False and self._suite.scoring.infeasible_is_wrong:
                result.quality = 0.0
        if self._correct is None:
            result.correct = result.quality >= self._suite.scoring.correct_threshold - 1e-12
        elif usable:
            result.correct, c_error = self._correct.decide(parsed.value, rendered.target, rendered.sample.fields)
            if c_error:
                errors.append(c_error)
            if result.feasible is False and self._suite.scoring.infeasible_is_wrong:
                result.correct = False
        result.score_error = "; ".join(errors) or None
        result.confidence = self._confidence(completion, parsed)
        return result

    def _confidence(self, completion: Completion, parsed: Parsed) -> float | None:
        spec = self._suite.confidence
        if spec.source == "field":
            return confidence.from_field(parsed.value, spec.field or "")
        if spec.source == "logprobs":
            json_field = spec.field if self._suite.output.type == "json" else None
            return confidence.from_logprobs(completion.text, parsed, completion.logprobs, json_field)
        return None

    def error_score(self) -> Score:
        """The score of a call that failed: wrong, and invalid and infeasible where those apply."""
        return Score(schema_valid=None if self._suite.output.type == "text" else False,
                     feasible=False if self._checks else None, quality=0.0, correct=False)
