"""The suite's model entries: an API model through LiteLLM, or a base model / LoRA adapter on vLLM
(connect, launch, in-process), with their price and ``${VAR}`` expansion of endpoint URLs.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


class Strict(BaseModel):
    """Every suite section: unknown keys are errors (``extra="forbid"``) and a validated value is frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CostSpec(Strict):
    """Price of a model. API models default to LiteLLM's price table."""

    input_per_mtok: float | None = Field(None, ge=0, description="USD per million prompt tokens.")
    output_per_mtok: float | None = Field(None, ge=0, description="USD per million completion tokens.")
    gpu_usd_per_hour: float | None = Field(None, ge=0, description="Self-hosted: GPU cost per hour.")
    requests_per_second: float | None = Field(
        None, gt=0, description="Self-hosted: requests/s one replica sustains in production; default: the "
        "goodput of a load sweep, else the throughput measured in the run.")
    min_replicas: int = Field(1, ge=1, description="Self-hosted: replicas that are always on, whatever the volume.")

    @model_validator(mode="after")
    def _coherent(self) -> CostSpec:
        token_priced = self.input_per_mtok is not None or self.output_per_mtok is not None
        if token_priced and self.gpu_usd_per_hour is not None:
            raise ValueError("give token prices or gpu_usd_per_hour, not both")
        if self.requests_per_second is not None and self.gpu_usd_per_hour is None:
            raise ValueError("requests_per_second needs gpu_usd_per_hour")
        if "min_replicas" in self.model_fields_set and self.gpu_usd_per_hour is None:
            raise ValueError("min_replicas needs gpu_usd_per_hour")
        return self


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: str | None) -> str | None:
    """``${VAR}`` / ``${VAR:-default}`` in an endpoint URL, so CI can point a suite at its own server."""
    if value is None:
        return None

    def _sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ValueError(f"environment variable {name} is not set (write ${{{name}:-default}} for a fallback)")

    return _ENV_REF.sub(_sub, value)


def _expanded(value: str | None, info: ValidationInfo) -> str | None:
    """``expand_env`` unless the suite is read only to look at stored results (context
    ``{"expand_env": False}``: ``evalkit gate --run``), where the endpoints are not needed."""
    if isinstance(info.context, dict) and info.context.get("expand_env") is False:
        return value
    return expand_env(value)


ENDPOINTS_HELP = ("Several endpoints serving the same model (replicas), instead of api_base: evalkit run --ray "
                  "runs one shard per endpoint; a run without --ray uses the first. ${VAR} is expanded.")


def _all_expanded(values: list[str] | None, info: ValidationInfo) -> list[str] | None:
    return None if values is None else [v for v in (_expanded(x, info) for x in values) if v is not None]


def _one_endpoint_key(model: Any) -> Any:
    if model.api_base and model.api_bases:
        raise ValueError("give api_base (one endpoint) or api_bases (several), not both")
    return model
class FewShotSpec(Strict):
    """``fewshot``: worked examples from a training file put before each prompt, as user/assistant turns
    (a prompted baseline), drawn deterministically and never from the held-out set."""

    path: str = Field(description="JSONL, CSV or Parquet training file (relative to the suite) with the fields "
                      "the prompt and the target read.")
    n: int = Field(4, ge=1, le=64, description="How many examples.")
    seed: int = Field(0, description="Which examples: rows ordered by sha256('seed:id'), the first n taken.")
    balanced: bool = Field(True, description="Label outputs: one example of each label in turn, so each is shown.")


class _ModelBase(Strict):
    params: dict[str, Any] = Field(
        default_factory=dict, description="Generation parameters sent as they are (temperature, "
        "max_tokens, ...).")
    stream: bool = Field(True, description="Stream the answer (gives time to first token).")
    concurrency: int | None = Field(None, ge=1, description="Overrides run.concurrency.")
    constrain: bool | None = Field(None, description="Overrides output.constrain for this model: constrained "
                                   "decoding with the output's JSON Schema or label set.")
    fewshot: FewShotSpec | None = Field(None, description="Few-shot examples from a training file before each "
                                        "prompt (a prompted baseline).")
    cost: CostSpec | None = None
    training_data: str | None = Field(
        None, description="The model's training data (relative to the suite): a JSONL/CSV/Parquet file the "
        "dataset loader reads (rendered with the suite's prompt), or chat JSONL (OpenAI `messages` or ShareGPT "
        "`conversations`). Checked against the held-out set before any call (run.contamination); default: the "
        "file named by the adapter's training record (adapter_path/training.json).")
    note: str | None = Field(None, max_length=500, description="Shown next to the model in the report's header, "
                             "e.g. what a stand-in really is (the demo's 'frontier' is the base SmolLM2 model).")

    @field_validator("params")
    @classmethod
    def _no_reserved(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = {"messages", "model", "stream", "api_key", "api_base", "logprobs", "top_logprobs"}
        clash = sorted(reserved & set(value))
        if clash:
            raise ValueError(f"params may not set {clash}: they have their own keys")
        return value


class LiteLLMModel(_ModelBase):
    """An API model reached through LiteLLM (any LiteLLM model string)."""

    provider: Literal["litellm"]
    model: str = Field(description="LiteLLM model string, e.g. openai/gpt-4o-mini.")
    api_base: str | None = Field(None, description="Endpoint URL; ${VAR} and ${VAR:-default} are expanded.")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key (never the key).")

    _expand = field_validator("api_base")(classmethod(lambda cls, v, info: _expanded(v, info)))
    api_bases: list[str] | None = Field(None, min_length=1, description=ENDPOINTS_HELP)
    _expand_all = field_validator("api_bases")(classmethod(lambda cls, v, info: _all_expanded(v, info)))

    @model_validator(mode="after")
    def _one_way(self) -> LiteLLMModel:
        return _one_endpoint_key(self)  # type: ignore[no-any-return]


class VLLMModel(_ModelBase):
    """A base model or one of its LoRA adapters on a vLLM engine, in one of three modes.

    ``connect``: a running OpenAI-compatible vLLM server at ``api_base``; ``base_model`` is its served
    name. ``launch``: evalkit starts ``python -m vllm.entrypoints.openai.api_server`` for
    ``base_model`` (a local folder or hub id) with the adapters of every model on that base, waits
    until it is healthy and stops it when the run ends. ``inprocess``: ``vllm.LLM`` in evalkit's own
    process, batching the whole held-out set (latency is then per batch, not per request).
    """

    provider: Literal["vllm"]
    mode: Literal["connect", "launch", "inprocess", "ray-data"] = "connect"
    api_base: str | None = Field(None, description="connect: URL of the server's OpenAI API, e.g. "
                                 "http://127.0.0.1:8000/v1; ${VAR} and ${VAR:-default} are expanded.")

    _expand = field_validator("api_base")(classmethod(lambda cls, v, info: _expanded(v, info)))
    api_bases: list[str] | None = Field(None, min_length=1, description="connect: " + ENDPOINTS_HELP)
    _expand_all = field_validator("api_bases")(classmethod(lambda cls, v, info: _all_expanded(v, info)))
    base_model: str = Field(description="connect: served name of the base model; launch / inprocess: "
                            "the base model's folder (relative to the suite) or hub id.")
    adapter: str | None = Field(None, description="LoRA module name (None: the base model).")
    adapter_path: str | None = Field(None, description="Local adapter folder (peft layout): hashed into "
                                     "provenance; launch / inprocess load it.")
    api_key_env: str | None = None
    served_name: str | None = Field(None, description="launch: the name the base model is served under "
                                    "(default: base_model).")
    server_args: list[str] = Field(default_factory=list, description="launch: extra arguments for the "
                                   "vLLM server, e.g. [--max-model-len, '2048', --gpu-memory-utilization, '0.8'].")
    engine_args: dict[str, Any] = Field(default_factory=dict, description="inprocess: extra keyword "
                                        "arguments for vllm.LLM, e.g. {max_model_len: 2048}.")
    processor_args: dict[str, Any] = Field(default_factory=dict, description="ray-data: extra arguments for "
                                           "ray.data.llm's vLLMEngineProcessorConfig, e.g. {batch_size: 64, "
                                           "concurrency: 4, accelerator_type: A100}; engine_args are its engine_kwargs.")
    startup_timeout_s: float = Field(600.0, gt=0, description="launch / inprocess: how long the engine "
                                     "may take to become ready.")

    @model_validator(mode="after")
    def _mode_needs(self) -> VLLMModel:
        _one_endpoint_key(self)
        if self.mode == "connect":
            if not self.api_base and not self.api_bases:
                raise ValueError("mode 'connect' needs api_base (the URL of a running vLLM server)")
            wrong = [k for k in ("server_args", "engine_args") if getattr(self, k)]
        else:
            if self.api_base or self.api_bases:
                raise ValueError(f"mode '{self.mode}' starts its own engine: remove api_base "
                                 "(or use mode: connect)")
            if self.adapter and not self.adapter_path:
                raise ValueError(f"mode '{self.mode}' loads the adapter itself: give adapter_path")
            if self.api_key_env:
                raise ValueError(f"mode '{self.mode}' starts its own engine, which needs no api_key_env")
            wrong = ["engine_args"] if self.mode == "launch" and self.engine_args else []
            if self.mode in ("inprocess", "ray-data"):
                wrong = [k for k in ("server_args", "served_name") if getattr(self, k)]
                if self.stream and "stream" in self.model_fields_set:
                    raise ValueError(f"mode '{self.mode}' cannot stream (no time to first token): set stream: false")
                object.__setattr__(self, "stream", False)  # the default (True) means nothing in-process
        if self.processor_args and self.mode != "ray-data":
            wrong.append("processor_args")
        if wrong:
            raise ValueError(f"{wrong[0]} does not apply to mode '{self.mode}'")
        return self


ModelSpec = Annotated[LiteLLMModel | VLLMModel, Field(discriminator="provider")]
