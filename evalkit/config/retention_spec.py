"""The suite's ``retention`` section: lm-eval capability checks of the candidate against its base."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from evalkit.config.model_specs import Strict

RETENTION_BACKENDS = ("local-completions", "local-chat-completions")


class RetentionSpec(Strict):
    """Capability retention: lm-eval tasks run on the candidate and on the model it must not fall behind
    (by default the candidate's base model: same vLLM server, ``base_model``, no adapter)."""

    tasks: list[str] = Field(
        min_length=1, description="lm-eval task names (e.g. arc_easy), or task YAML files relative to the suite.")
    include: list[str] = Field(
        default_factory=list, description="Folders of lm-eval task YAML files, relative to the suite "
        "(their tasks may then be named in 'tasks').")
    candidate: str | None = Field(None, description="Suite model checked for lost capabilities (default: "
                                  "gates.candidate).")
    baseline: str | None = Field(
        None, description="Suite model whose capabilities the candidate must keep (default: the candidate's "
        "base model — a vllm model with an adapter — stored as CANDIDATE@base).")
    backend: Literal["local-completions", "local-chat-completions"] = Field(
        "local-completions", description="lm-eval's OpenAI-compatible backend: /v1/completions or "
        "/v1/chat/completions (chat template applied by the server).")
    limit: int | None = Field(None, ge=1, description="Documents per task (default: all).")
    num_fewshot: int | None = Field(None, ge=0, description="Few-shot examples (default: the task's).")
    concurrency: int = Field(4, ge=1, le=256, description="Requests in flight (lm-eval num_concurrent).")
    timeout_s: float = Field(120.0, gt=0, description="Per request.")
    model_args: dict[str, Any] = Field(
        default_factory=dict, description="More lm-eval model arguments, e.g. {tokenizer: PATH, "
        "tokenizer_backend: huggingface} for loglikelihood tasks; sent as written.")

    @field_validator("model_args")
    @classmethod
    def _no_reserved_args(cls, value: dict[str, Any]) -> dict[str, Any]:
        clash = sorted({"model", "base_url", "header", "num_concurrent", "timeout"} & set(value))
        if clash:
            raise ValueError(f"model_args may not set {clash}: evalkit sets them from the suite's models")
        return value


def is_task_file(entry: str) -> bool:
    """A retention task given as an lm-eval task YAML file rather than a registered task name."""
    return entry.endswith((".yaml", ".yml"))
