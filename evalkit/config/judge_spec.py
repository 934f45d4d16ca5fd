"""``scoring.judge``: an LLM that scores open-ended answers against a rubric (``scoring.scorer: judge``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from evalkit.config.model_specs import CostSpec, Strict, _expanded


class JudgeSpec(Strict):
    """The judge: which model, what it is told, the scale it answers on, and what it is checked against.

    ``model`` is the name of one of the suite's models (its whole entry is used: provider, endpoint,
    key, prices) or any LiteLLM model string (then ``api_base``, ``api_key_env``, ``params`` and ``cost``
    here apply). The judge sees the rubric, the rendered input, the answer and (optionally) the
    rendered ``reference``, and must answer ``{"reasoning": ..., "score": ...}`` (pairwise: ``"winner"``).
    """

    model: str = Field(description="A suite model's name, or any LiteLLM model string (e.g. openai/gpt-4o).")
    rubric: str = Field(min_length=1, description="What a good answer is: the criteria the judge scores by.")
    scale: list[int] | Literal["pass_fail"] = Field(
        default_factory=lambda: [1, 5], description="[low, high] integer scale (quality = (score - low) / "
        "(high - low)), or pass_fail (pass = 1, fail = 0).")
    reference: str | None = Field(
        None, description="Optional Jinja template over the sample's fields: a reference answer shown to the judge.")
    pairwise: bool = Field(
        False, description="Also judge gates.candidate against gates.baseline per sample, in both orders "
        "(A/B and B/A): judge_win_rate and judge_position_disagreement.")
    human: str | None = Field(
        None, description="Dataset field with people's scores of the answers (on the judge's scale; null "
        "where unlabelled): judge_agreement, judge_kappa (pass_fail), judge_spearman (scales).")
    human_model: str | None = Field(
        None, description="The model whose answers the people scored (default: gates.baseline, else the suite's "
        "first model): agreement is measured on its rows.")
    api_base: str | None = Field(None, description="LiteLLM judge only: endpoint URL (${VAR} expanded).")
    api_key_env: str | None = Field(None, description="LiteLLM judge only: the variable holding its API key.")
    params: dict[str, Any] = Field(
        default_factory=lambda: {"temperature": 0}, description="LiteLLM judge only: generation parameters, "
        "sent as written.")
    cost: CostSpec | None = Field(None, description="LiteLLM judge only: its price (default: LiteLLM's table).")
    concurrency: int | None = Field(None, ge=1, description="Judge calls in flight (default: run.concurrency).")

    _expand = field_validator("api_base")(classmethod(lambda cls, v, info: _expanded(v, info)))

    @field_validator("scale")
    @classmethod
    def _two_points(cls, value: list[int] | str) -> list[int] | str:
        if isinstance(value, list) and (len(value) != 2 or value[0] >= value[1]):
            raise ValueError("scale must be [low, high] with low < high (e.g. [1, 5]), or pass_fail")
        return value

    @model_validator(mode="after")
    def _params_allowed(self) -> JudgeSpec:
        reserved = {"messages", "model", "stream", "api_key", "api_base"} & set(self.params)
        if reserved:
            raise ValueError(f"judge params may not set {sorted(reserved)}")
        return self

    @property
    def pass_fail(self) -> bool:
        return self.scale == "pass_fail"

    def bounds(self) -> tuple[int, int]:
        """The scale's ends (pass_fail: 0 and 1)."""
        return (0, 1) if isinstance(self.scale, str) else (self.scale[0], self.scale[1])
