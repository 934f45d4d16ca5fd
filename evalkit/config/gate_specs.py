"""The suite's ``gates`` section: the baseline, the candidate and the rules the candidate must meet."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from evalkit.config.model_specs import Strict


class GateRule(Strict):
    """One condition the candidate must meet (see README, "Gates").

    ``max_drop`` / ``max_rise`` bound the change from the baseline in the metric's bad direction
    (a drop for higher-is-better metrics, a rise for lower-is-better ones); ``min`` / ``max`` bound
    the candidate's own value. ``significance: noninferiority`` passes a relative rule only when the
    CI's bad-side bound lies within the margin, fails it when the whole CI lies beyond, and otherwise
    calls it ``inconclusive``; ``ci`` fails only when the whole confidence interval of the change lies
    beyond the allowed margin (noise does not fail it); ``point`` fails on the point estimate.
    ``slice`` restricts a metric rule to one slice's pairs; ``per_slice: true`` checks it on every
    slice, one verdict each.
    """

    metric: str | None = Field(None, description="A metric of evalkit's metric registry (evalkit show lists them).")
    retention: str | None = Field(
        None, description="An lm-eval capability-retention metric, TASK/METRIC or TASK/METRIC,FILTER (e.g. "
        "arc_easy/acc): retention.candidate against retention.baseline (see the suite's 'retention' section).")
    max_drop: float | None = Field(None, ge=0)
    max_rise: float | None = Field(None, ge=0)
    min: float | None = None
    max: float | None = None
    significance: Literal["ci", "point", "noninferiority"] = "ci"
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    slice: str | None = Field(None, description="Check the rule on this slice's pairs only (the dataset's slice "
                              "field).")
    per_slice: bool = Field(False, description="Check the rule on every slice's pairs, one verdict per slice.")

    @model_validator(mode="after")
    def _one_bound(self) -> GateRule:
        if (self.metric is None) == (self.retention is None):
            raise ValueError("a gate names exactly one of 'metric' or 'retention'")
        if all(v is None for v in (self.max_drop, self.max_rise, self.min, self.max)):
            raise ValueError("a gate needs one of max_drop, max_rise, min, max")
        if self.max_drop is not None and self.max_rise is not None:
            raise ValueError("give max_drop or max_rise, not both")
        if self.slice is not None and self.per_slice:
            raise ValueError("give slice or per_slice, not both")
        if self.retention is not None and (self.slice is not None or self.per_slice):
            raise ValueError("slice / per_slice apply to metric rules, not to retention rules")
        return self


class WatchSpec(Strict):
    """``gates.watch``: what the verdict says about metrics and slices no rule covers (see README, "Gates").

    A metric no rule covers, or a slice, is on the watch list when its paired change is significantly
    worse than its margin: the whole CI of candidate − baseline lies beyond the margin on the bad side.
    Rates and scores (accuracy, error_rate, brier, …) use an absolute margin (``absolute``; 0.02 = 2 points);
    latencies, time to first token and cost use a relative one (``relative``; 0.2 = 20% worse than the
    baseline). ``margin`` overrides one metric, in that metric's kind. The watch list never changes the
    exit code.
    """

    enabled: bool = True
    absolute: float = Field(0.02, ge=0, description="Margin of rates and scores, in the metric's unit.")
    relative: float = Field(0.2, ge=0, description="Margin of latencies, TTFT and cost, as a share of the "
                            "baseline's value (0.2: 20% worse).")
    margin: dict[str, float] = Field(default_factory=dict, description="Per-metric margins: absolute for rates "
                                     "and scores, relative for latencies, TTFT and cost.")
    slices: bool = Field(True, description="Also watch every slice (dataset.slice) on its rates.")
    min_pairs: int = Field(10, ge=2, description="Metrics and slices with fewer pairs are not judged.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0)

    @model_validator(mode="after")
    def _margins(self) -> WatchSpec:
        bad = sorted(k for k, v in self.margin.items() if v < 0)
        if bad:
            raise ValueError(f"gates.watch.margin values must be ≥ 0 (got a negative one for {bad})")
        return self


class GatesSpec(Strict):
    """Which model is the baseline, which the candidate, and the rules the candidate must meet."""

    baseline: str | None = None
    candidate: str | None = None
    rules: list[GateRule] = Field(default_factory=list)
    correction: Literal["none", "holm"] = Field(
        "none", description="Multiplicity correction over the relative (ci / noninferiority) rules: 'holm' "
        "adjusts each rule's CI level by Holm-Bonferroni in step-down order (README, \"Gates\").")
    watch: WatchSpec = WatchSpec()
