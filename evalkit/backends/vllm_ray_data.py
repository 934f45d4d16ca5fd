"""vLLM through Ray Data LLM (``mode: ray-data``): very large offline batches on a Ray cluster's GPUs.

``ray.data.llm.build_processor`` over a ``vLLMEngineProcessorConfig`` (``model_source`` the base model,
``engine_kwargs`` the model's ``engine_args`` with LoRA enabled when adapters are run, the rest from
``processor_args``) turns a Dataset of chat rows into a Dataset of answers, with Ray Data scheduling
vLLM replicas (``concurrency``) on the cluster's GPUs. It is driven exactly like ``mode: inprocess``
(:class:`evalkit.backends.vllm_inprocess.InProcessEngine`): the runner's requests are gathered into
batches, each batch becomes one Dataset (:func:`batch_dataset`: the rendered messages, the sampling
parameters and, for an adapter, its folder as the LoRA ``model``), runs through the processor, and its
rows come back as answers (:func:`answer_row` on the workers, :class:`RowOutput` here) that are scored
and stored as any run's. Latency is per batch, as in-process.

The limit, checked before anything starts (:func:`unsupported_reason`): Ray Data LLM's engine stage
asks Ray for a GPU per vLLM replica (``placement_group_config`` bundles of ``{"GPU": 1}``), so it needs
a GPU build of vLLM and GPUs in the cluster; the CPU build of vLLM cannot run it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.backends.registry import BuildContext
from evalkit.backends.vllm import engine_identity
from evalkit.backends.vllm_inprocess import InProcessEngine, VLLMInProcessBackend, engine_key, sampling_kwargs
from evalkit.backends.vllm_launch import max_lora_rank
from evalkit.config.model_specs import VLLMModel
from evalkit.config.resolve import ResolvedModel
from evalkit.errors import EngineError

INDEX = "evalkit_index"
DEFAULT_PROCESSOR_ARGS: dict[str, Any] = {"batch_size": 64, "concurrency": 1}


def processor_kwargs(base_model: str, adapters: dict[str, Path], engine_args: dict[str, Any],
                     processor_args: dict[str, Any]) -> dict[str, Any]:
    """``vLLMEngineProcessorConfig`` arguments: the base, LoRA for the adapters, the suite's own settings."""
    engine = dict(engine_args)
    if adapters:
        engine.setdefault("enable_lora", True)
        engine.setdefault("max_loras", len(adapters))
        rank = max_lora_rank(list(adapters.values()))
        if rank:
            engine.setdefault("max_lora_rank", rank)
    return {**DEFAULT_PROCESSOR_ARGS, **processor_args, "model_source": base_model, "engine_kwargs": engine}


def unsupported_reason(cluster_gpus: float | None) -> str | None:
    """Why Ray Data LLM cannot run here (None: it can): Ray Data LLM, a GPU build of vLLM, cluster GPUs."""
    try:
        import ray.data.llm  # noqa: F401
    except ImportError as exc:
        return f"ray.data.llm is not importable ({exc}); pip install 'evalkit-swap[ray]'"
    try:
        from vllm.platforms import current_platform
    except ImportError as exc:
        return f"vLLM is not installed ({exc})"
    if current_platform.is_cpu():
        return ("the installed vLLM is the CPU build, and Ray Data LLM's engine stage asks Ray for a GPU per "
                "vLLM replica; use mode: inprocess or launch on this machine, ray-data on a GPU cluster")
    if cluster_gpus is not None and cluster_gpus <= 0:
        return "the Ray cluster has no GPUs, and Ray Data LLM's engine stage needs one per vLLM replica"
    return None


def batch_dataset(messages: list[list[dict[str, str]]], sampling: list[dict[str, Any]], models: list[str]) -> Any:
    """One batch of chats as a Ray Dataset: a row per request, numbered so answers find their request."""
    import ray.data

    return ray.data.from_items([{INDEX: i, "messages": m, "sampling_params": s, "model": model}
                                for i, (m, s, model) in enumerate(zip(messages, sampling, models, strict=True))])


def chat_row(row: dict[str, Any]) -> dict[str, Any]:
    """The processor's preprocess: what vLLM's stage reads (``model`` other than the base = a LoRA folder)."""
    return {INDEX: row[INDEX], "messages": row["messages"], "sampling_params": row["sampling_params"],
            "model": row["model"]}


def answer_row(row: dict[str, Any]) -> dict[str, Any]:
    """The processor's postprocess (on the workers): the answer, its token counts and logprobs, as plain columns."""
    tokens = [int(t) for t in _listed(row.get("generated_tokens"))]  # Arrow may hand lists back as arrays
    logprobs = row.get("logprobs")
    steps = None
    if logprobs is not None:
        steps = [[tok, [[int(k), v.get("logprob"), v.get("rank"), v.get("decoded_token")]
                        for k, v in (candidates or {}).items() if v is not None]]
                 for tok, candidates in zip(tokens, _listed(logprobs))]
    return {INDEX: int(row[INDEX]), "text": str(row.get("generated_text") or ""),
            "prompt_tokens": int(row.get("num_input_tokens") or 0),
            "completion_tokens": int(row.get("num_generated_tokens") or 0),
            "token_ids": tokens,
            "logprobs_json": json.dumps(steps) if steps is not None else None,
            "error": row.get("__inference_error__") or None}


def _listed(value: Any) -> list[Any]:
    return [] if value is None else list(value)


@dataclass
class _Logprob:
    logprob: float | None
    rank: int | None
    decoded_token: str | None


@dataclass
class _Choice:
    text: str
    token_ids: list[int]
    finish_reason: str | None
    logprobs: list[dict[int, _Logprob]] | None


@dataclass
class RowOutput:
    """An answer row shaped as vLLM's ``RequestOutput`` (what :class:`InProcessEngine` reads)."""

    outputs: list[_Choice]
    prompt_token_ids: list[int] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: dict[str, Any], max_tokens: int | None) -> RowOutput:
        if row.get("error"):
            raise EngineError(f"Ray Data LLM failed on a request: {row['error']}")
        steps = json.loads(row["logprobs_json"]) if row.get("logprobs_json") else None
        logprobs = ([{int(k): _Logprob(lp, rank, tok) for k, lp, rank, tok in candidates} for _, candidates in steps]
                    if steps is not None else None)
        count = int(row["completion_tokens"])
        finish = "length" if max_tokens is not None and count >= max_tokens else "stop"  # not in Ray's output
        return cls([_Choice(row["text"], list(row["token_ids"]), finish, logprobs)], [0] * int(row["prompt_tokens"]))


class DataLLM:
    """The ``llm`` an :class:`InProcessEngine` drives: each ``chat`` batch through a Ray Data LLM processor."""

    def __init__(self, processor: Callable[[Any], Any], base_model: str) -> None:
        self.processor = processor
        self.base_model = base_model
        self.batches: list[tuple[int, float]] = []  # (requests, seconds) of each batch, for the engine info

    def chat(self, messages: list[list[dict[str, str]]], sampling: list[dict[str, Any]],
             lora_request: list[str | None], use_tqdm: bool = False) -> list[RowOutput]:
        started = time.perf_counter()
        models = [lora or self.base_model for lora in lora_request]
        rows = {int(r[INDEX]): r for r in self.processor(batch_dataset(messages, sampling, models)).take_all()}
        missing = sorted(set(range(len(messages))) - set(rows))
        if missing:
            raise EngineError(f"Ray Data LLM returned no answer for {len(missing)} of {len(messages)} requests")
        self.batches.append((len(messages), time.perf_counter() - started))
        return [RowOutput.from_row(rows[i], sampling[i].get("max_tokens")) for i in range(len(messages))]


def build(base_model: str, adapters: dict[str, Path], engine_args: dict[str, Any],
          processor_args: dict[str, Any]) -> InProcessEngine:
    """The engine of one base model: a Ray Data LLM processor with every adapter of the group as LoRA."""
    reason = unsupported_reason(None)  # before a cluster is started for nothing
    if reason is None:
        from evalkit.backends.ray_cluster import connect

        engine_cluster = connect("auto")
        reason = unsupported_reason(float(engine_cluster.info()["resources"].get("GPU", 0.0)))
    if reason is not None:
        raise EngineError(f"mode 'ray-data' cannot run here: {reason}")
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    try:
        config = vLLMEngineProcessorConfig(**processor_kwargs(base_model, adapters, engine_args, processor_args))
    except Exception as exc:  # pydantic's validation of Ray's config: a wrong key or value in processor_args
        raise EngineError(f"Ray Data LLM refused the processor config: {exc}") from exc
    return engine_for(build_processor(config, preprocess=chat_row, postprocess=answer_row), base_model, adapters)


def engine_for(processor: Callable[[Any], Any], base_model: str, adapters: dict[str, Path]) -> InProcessEngine:
    """The batcher over a processor (Dataset → Dataset); an adapter's LoRA ``model`` is its folder."""
    return InProcessEngine(DataLLM(processor, base_model), base_model,
                           {name: str(path) for name, path in adapters.items()}, sampling_params=dict)


class RayDataBackend(VLLMInProcessBackend):
    """A base model or adapter whose batches run through Ray Data LLM."""

    def engine_info(self) -> dict[str, Any]:
        llm = self.engine.llm
        return {"mode": "ray-data", "base_model": self.engine.base_model, "adapters": dict(self.engine.loras),
                "batches": len(getattr(llm, "batches", [])),
                "latency_note": "per-request latency is the wall time of the Ray Data batch it ran in; "
                                "not comparable with served latency"}


class RayDataFactory:
    """``mode: ray-data``: one processor per base model and engine arguments, with every adapter on it."""

    def __init__(self, context: BuildContext,
                 start: Callable[[str, dict[str, Path], dict[str, Any], dict[str, Any]], InProcessEngine] = build) -> None:
        self.context = context
        self._start = start
        self._engines: dict[tuple[str, str], InProcessEngine] = {}

    def build(self, model: ResolvedModel) -> RayDataBackend:
        spec = model.spec
        assert isinstance(spec, VLLMModel)
        sampling_kwargs(spec.params, f"models.{model.name}.params", self.context.suite_file)  # before the slow start
        key = engine_key(self.context, spec)
        if key not in self._engines:
            adapters = {o.spec.adapter: o.adapter_dir for o in self.context.models.values()
                        if o.kind == "vllm/ray-data" and isinstance(o.spec, VLLMModel) and o.spec.adapter
                        and o.adapter_dir is not None and engine_key(self.context, o.spec) == key}
            self._engines[key] = self._start(key[0], adapters, spec.engine_args, spec.processor_args)
        return RayDataBackend(model, self._engines[key], engine_identity(model))
