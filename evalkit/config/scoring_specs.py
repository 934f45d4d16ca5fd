"""The suite's scoring sections: how an answer is scored and where its confidence comes from."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from evalkit.config.judge_spec import JudgeSpec
from evalkit.config.model_specs import Strict

CORRECT_BUILTINS = ("label_match", "exact", "json_fields", "numeric")


class CorrectSpec(Strict):
    """``scoring.correct``: the rule that decides correctness when it is not quality ≥ ``correct_threshold``.

    Written as a built-in name (``correct: label_match``), a function (``correct: checks.py:right_carrier``,
    called as ``fn(answer, target, sample) -> bool``) or a mapping (``correct: {scorer: json_fields,
    fields: [carrier]}``). Quality stays the scorer's.
    """

    scorer: Literal["label_match", "exact", "json_fields", "numeric", "custom"] = Field(
        description="Built-in rule, or 'custom' with 'custom: file.py:function'.")
    fields: list[str] | None = Field(
        None, description="json_fields: dotted paths that must all equal the target's.")
    field: str | None = Field(None, description="numeric: dotted path of the number (default: scoring.field).")
    tolerance: float | None = Field(None, ge=0, description="numeric: absolute tolerance (default: scoring's).")
    relative_tolerance: float | None = Field(
        None, ge=0, description="numeric: relative tolerance (default: scoring's).")
    custom: str | None = Field(None, description="path/to/file.py:function(answer, target, sample) -> bool.")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            if ":" in data:
                return {"scorer": "custom", "custom": data}
            if data not in CORRECT_BUILTINS:
                raise ValueError(f"'{data}' is neither a built-in rule {list(CORRECT_BUILTINS)} nor a "
                                 "path/to/file.py:function")
            return {"scorer": data}
        if isinstance(data, dict) and "custom" in data and "scorer" not in data:
            return {**data, "scorer": "custom"}
        return data

    @model_validator(mode="after")
    def _rule_needs(self) -> CorrectSpec:
        if self.scorer == "json_fields" and not self.fields:
            raise ValueError("correct rule 'json_fields' needs its own 'fields: [..]' (all must match)")
        if self.scorer == "custom" and not self.custom:
            raise ValueError("correct rule 'custom' needs 'custom: path/to/file.py:function'")
        if self.custom and self.scorer != "custom":
            raise ValueError("'custom' is set but the correct rule's 'scorer' is not 'custom'")
        if self.custom and ":" not in self.custom:
            raise ValueError(f"'{self.custom}' must look like path/to/file.py:function")
        if self.fields and self.scorer != "json_fields":
            raise ValueError(f"'fields' applies to the correct rule 'json_fields', not '{self.scorer}'")
        numeric_keys = [k for k in ("field", "tolerance", "relative_tolerance") if getattr(self, k) is not None]
        if numeric_keys and self.scorer != "numeric":
            raise ValueError(f"'{numeric_keys[0]}' applies to the correct rule 'numeric', not '{self.scorer}'")
        return self

    def describe(self) -> str:
        """The rule in words, for messages and the report."""
        if self.scorer == "custom":
            return f"custom {self.custom}"
        if self.scorer == "json_fields":
            return f"json_fields {self.fields}"
        return self.scorer


class ScoringSpec(Strict):
    """How a parsed answer becomes a quality score in [0, 1] and a correct/incorrect verdict."""

    scorer: Literal["label_match", "exact", "json_fields", "numeric", "custom", "none", "judge"] = Field(
        "label_match", description="Built-in scorer, 'custom' with 'custom: file.py:function', or 'judge' "
        "(an LLM judge, see 'judge').")
    fields: list[str] | None = Field(
        None, description="json_fields: dotted paths compared with the target.")
    field: str | None = Field(None, description="numeric: dotted path of the number in a JSON answer.")
    tolerance: float = Field(0.0, ge=0, description="numeric: absolute tolerance.")
    relative_tolerance: float = Field(0.0, ge=0, description="numeric: relative tolerance.")
    custom: str | None = Field(None, description="path/to/file.py:function returning a float or bool.")
    feasibility: list[str] = Field(
        default_factory=list,
        description="path/to/file.py:function checks; each returns a list of violated constraints.")
    correct_threshold: float = Field(
        1.0, ge=0, le=1, description="A sample is correct when its quality reaches this value "
        "(unless 'correct' names the rule).")
    correct: CorrectSpec | None = Field(
        None, description="The rule that decides correctness instead of quality ≥ correct_threshold: "
        "label_match | exact | json_fields (with its own fields) | numeric | path/to/file.py:function.")
    infeasible_is_wrong: bool = Field(
        True, description="An infeasible answer gets quality 0 and is wrong, whatever its fields say.")
    timeout_s: float = Field(
        10.0, gt=0, le=3600, description="Time limit of one call of a custom scorer or feasibility check "
        "(seconds); past it the call is stopped and the row gets a score error naming the function.")
    judge: JudgeSpec | None = Field(None, description="scorer 'judge': the LLM judge (model, rubric, scale, ...).")
    max_score_errors: int = Field(
        0, ge=0, description="Gates on quality-derived metrics (accuracy, quality, feasibility, calibration) "
        "answer 'error' when more rows than this have a score error, on either side of the comparison.")

    @model_validator(mode="after")
    def _scorer_needs(self) -> ScoringSpec:
        if self.scorer == "json_fields" and not self.fields:
            raise ValueError("scorer 'json_fields' needs 'fields: [..]'")
        if self.scorer == "custom" and not self.custom:
            raise ValueError("scorer 'custom' needs 'custom: path/to/file.py:function'")
        if self.custom and self.scorer != "custom":
            raise ValueError("'custom' is set but 'scorer' is not 'custom'")
        if (self.scorer == "judge") != (self.judge is not None):
            raise ValueError("scorer 'judge' needs 'judge: {model, rubric, ...}'" if self.judge is None
                             else "'judge' is set but 'scorer' is not 'judge'")
        for ref in ([self.custom] if self.custom else []) + list(self.feasibility):
            if ":" not in ref:
                raise ValueError(f"'{ref}' must look like path/to/file.py:function")
        return self


class ConfidenceSpec(Strict):
    """Where a per-sample confidence (for Brier and ECE) comes from."""

    source: Literal["none", "field", "logprobs"] = "none"
    field: str | None = Field(
        None, description="field: dotted path of a number in [0,1] (or 0-100) in the JSON answer; "
        "logprobs + json: the field whose value tokens are scored.")
    top_logprobs: int = Field(5, ge=0, le=20, description="logprobs: alternatives requested.")
    confident_threshold: float = Field(
        0.9, ge=0, le=1, description="confident_error_rate counts wrong answers with a confidence ≥ this.")

    @model_validator(mode="after")
    def _field_needed(self) -> ConfidenceSpec:
        if self.source == "field" and not self.field:
            raise ValueError("confidence source 'field' needs 'field: <path in the JSON answer>'")
        return self
