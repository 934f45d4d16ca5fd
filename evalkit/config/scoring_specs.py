"""The suite's scoring sections: how an answer is scored and where its confidence comes from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from evalkit.config.model_specs import Strict


class ScoringSpec(Strict):
    """How a parsed answer becomes a quality score in [0, 1] and a correct/incorrect verdict."""

    scorer: Literal["label_match", "exact", "json_fields", "numeric", "custom", "none"] = Field(
        "label_match", description="Built-in scorer, or 'custom' with 'custom: file.py:function'.")
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
        1.0, ge=0, le=1, description="A sample is correct when its quality reaches this value.")
    infeasible_is_wrong: bool = Field(
        True, description="An infeasible answer gets quality 0, whatever its fields say.")
    timeout_s: float = Field(
        10.0, gt=0, le=3600, description="Time limit of one call of a custom scorer or feasibility check "
        "(seconds); past it the call is stopped and the row gets a score error naming the function.")
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

    @model_validator(mode="after")
    def _field_needed(self) -> ConfidenceSpec:
        if self.source == "field" and not self.field:
            raise ValueError("confidence source 'field' needs 'field: <path in the JSON answer>'")
        return self
