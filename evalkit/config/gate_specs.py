"""The suite's ``gates`` section: the baseline, the candidate and the rules the candidate must meet."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from evalkit.config.model_specs import Strict


class GateRule(Strict):
    """One condition the candidate must meet (see README, "Gates").

    ``max_drop`` / ``max_rise`` bound the change from the baseline in the metric's bad direction
    (a drop for higher-is-better metrics, a rise for lower-is-better ones); ``min`` / ``max`` bound
    the candidate's own value. ``significance: ci`` fails a relative rule only when the whole
    confidence interval of the change lies beyond the allowed margin (noise does not fail it);
    ``point`` fails on the point estimate.
    """

    metric: str | None = Field(None, description="A metric of evalkit's metric registry (evalkit show lists them).")
    retention: str | None = Field(
        None, description="An lm-eval capability-retention metric, TASK/METRIC or TASK/METRIC,FILTER (e.g. "
        "arc_easy/acc): retention.candidate against retention.baseline (see the suite's 'retention' section).")
    max_drop: float | None = Field(None, ge=0)
    max_rise: float | None = Field(None, ge=0)
    min: float | None = None
    max: float | None = None
    significance: Literal["ci", "point"] = "ci"
    confidence: float = Field(0.95, gt=0.5, lt=1.0)

    @model_validator(mode="after")
    def _one_bound(self) -> GateRule:
        if (self.metric is None) == (self.retention is None):
            raise ValueError("a gate names exactly one of 'metric' or 'retention'")
        if all(v is None for v in (self.max_drop, self.max_rise, self.min, self.max)):
            raise ValueError("a gate needs one of max_drop, max_rise, min, max")
        if self.max_drop is not None and self.max_rise is not None:
            raise ValueError("give max_drop or max_rise, not both")
        return self


class GatesSpec(Strict):
    """Which model is the baseline, which the candidate, and the rules the candidate must meet."""

    baseline: str | None = None
    candidate: str | None = None
    rules: list[GateRule] = Field(default_factory=list)
