"""API models through LiteLLM's normal ``acompletion`` path (any provider LiteLLM translates)."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import time
from typing import Any

import aiohttp

from evalkit.backends.base import RETRYABLE_STATUS, BackendBase, retry_after_seconds
from evalkit.backends.constrain import litellm_form
from evalkit.backends.openai_http import convert_logprobs
from evalkit.backends.registry import BuildContext
from evalkit.backends.served_identity import is_loopback, served_identity
from evalkit.backends.wire_clock import exchange, stamping_session, time_wire
from evalkit.config.model_specs import LiteLLMModel
from evalkit.config.resolve import ResolvedModel, api_key
from evalkit.errors import BackendError, ErrorKind
from evalkit.records import ChatRequest, Completion
from evalkit.redact import redact_text


def import_litellm() -> Any:
    """Import LiteLLM without its start-up fetch of the price map (offline machines hang on it)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    litellm.suppress_debug_info = True
    litellm.drop_params = False  # never drop a parameter silently: an unsupported one must fail
    return litellm


_prepared: set[str] = set()


def prepare_litellm_client(litellm: Any, kwargs: dict[str, Any]) -> None:
    """Load what LiteLLM otherwise loads inside the first timed call: its default tokenizer (read on
    every provider's request path) and the modules a mock answer of this model goes through."""
    key = json.dumps({k: kwargs.get(k) for k in ("model", "api_base", "stream")}, default=str, sort_keys=True)
    if key in _prepared:
        return
    _import_openai_sdk(litellm, kwargs)
    get_encoding = getattr(getattr(litellm, "main", None), "_get_encoding", None)
    if callable(get_encoding):
        get_encoding()
    else:
        getattr(litellm, "encoding", None)
    mock = {**{k: v for k, v in kwargs.items() if k not in ("stream", "stream_options")},
            "messages": [{"role": "user", "content": "warm"}], "mock_response": "ok", "api_key": "no-key"}
    try:
        asyncio.run(litellm.acompletion(**mock))
    except Exception:  # a set-up shortcut only: the real call reports any real problem
        pass
    _prepared.add(key)


def _import_openai_sdk(litellm: Any, kwargs: dict[str, Any]) -> None:
    """A provider LiteLLM calls through the OpenAI SDK (``openai/...``, Azure, the OpenAI-compatible ones)
    imports the SDK's resource modules inside its first call (``client.chat``: ~1 s, on the clock of the
    first timed requests when ``run.warmup`` is 0) and builds its response models on first use — done here
    instead."""
    try:
        provider = litellm.get_llm_provider(model=kwargs["model"], api_base=kwargs.get("api_base"))[1]
    except Exception:  # LiteLLM reports an unknown provider on the real call
        return
    compatible = set(getattr(litellm, "openai_compatible_providers", None) or [])
    if provider not in {"openai", "azure", "text-completion-openai"} | compatible:
        return
    importlib.import_module("openai.resources")
    # ...and one answer through the whole SDK path (request building, response models built on first use), from
    # LiteLLM's own mock transport: nothing leaves the process.
    try:
        import httpx
        from litellm.llms.custom_httpx.mock_transport import MockOpenAITransport
        from openai import AsyncOpenAI
    except ImportError:
        return

    async def once() -> None:
        client = AsyncOpenAI(api_key="no-key", base_url=kwargs.get("api_base") or "http://127.0.0.1:9/v1",
                             http_client=httpx.AsyncClient(transport=MockOpenAITransport()), max_retries=0)
        try:
            await litellm.acompletion(**{k: v for k, v in kwargs.items() if k not in ("stream", "stream_options")},
                                      messages=[{"role": "user", "content": "warm"}], api_key="no-key",
                                      client=client, num_retries=0)
        finally:
            await client.close()
    try:
        asyncio.run(once())
    except Exception:  # a set-up shortcut only: the real call reports any real problem
        pass


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _logprob_entries(choice: Any) -> list[dict[str, Any]]:
    lp = _field(choice, "logprobs")
    content = _field(lp, "content") if lp is not None else None
    entries = []
    for item in content or []:
        tops = [{"token": _field(t, "token"), "logprob": _field(t, "logprob")}
                for t in (_field(item, "top_logprobs") or [])]
        entries.append({"token": _field(item, "token"), "logprob": _field(item, "logprob"),
                        "top_logprobs": tops})
    return entries


def _refused(exc: BaseException) -> bool:
    """True when the chain of causes shows the server could not be reached at all."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, ConnectionRefusedError) or type(current).__name__ == "ConnectError":
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def _provider_finish_reason(stream: Any, seen: str | None) -> str | None:
    """The finish reason the provider itself sent, or None when its stream ended without one.

    LiteLLM's ``CustomStreamWrapper`` records it as ``received_finish_reason`` (a reason given on a
    content chunk as ``intermittent_finish_reason``); a stream object without these attributes is not
    LiteLLM's wrapper, and the reason its chunks carried is taken as given.
    """
    if not hasattr(stream, "received_finish_reason"):
        return seen
    reason = getattr(stream, "received_finish_reason", None) or getattr(stream, "intermittent_finish_reason", None)
    return reason if isinstance(reason, str) and reason else None


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps: LiteLLM's ``original_exception``, ``__cause__`` and ``__context__``."""
    found: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(found) < 20:
        current = todo.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        for nxt in (getattr(current, "original_exception", None), current.__cause__, current.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return found


def _broken_stream_kind(exc: BaseException) -> ErrorKind | None:
    """``timeout`` or ``connection`` when a stream failed half-way for that reason (LiteLLM wraps such
    failures as MidStreamFallbackError, a 503 the server never sent); None for anything else."""
    if type(exc).__name__ != "MidStreamFallbackError":
        return None
    causes = _causes(exc)[1:]
    if any(isinstance(c, TimeoutError) or "timeout" in type(c).__name__.lower() for c in causes):
        return "timeout"
    if any(isinstance(c, ConnectionError) or type(c).__name__ in _BROKEN_CONNECTION for c in causes):
        return "connection"
    return None


# Exception names (httpx, httpcore, aiohttp, openai) of a connection that broke after it was made.
_BROKEN_CONNECTION = frozenset({"ReadError", "RemoteProtocolError", "WriteError", "APIConnectionError",
                                "ClientPayloadError", "ServerDisconnectedError", "IncompleteRead"})


def _as_backend_error(exc: Exception, model: str) -> BackendError:
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or getattr(exc, "litellm_response_headers", None)
    retry_after = retry_after_seconds(headers)
    name = type(exc).__name__
    # A server may echo the key in its error body; LiteLLM quotes the body in its message.
    message = redact_text(str(exc).splitlines()[0][:300]) if str(exc) else name
    if _refused(exc):  # LiteLLM reports a refused connection as a 500; it is not the server's answer
        return BackendError(f"{model}: cannot connect ({message})", retryable=True, kind="connect")
    broken = _broken_stream_kind(exc)
    if broken == "timeout":
        return BackendError(f"{model}: timed out mid-stream ({message})", retryable=True, kind="timeout")
    if broken == "connection":
        return BackendError(f"{model}: connection broke mid-stream ({message})", retryable=True,
                            kind="connection")
    if name in ("Timeout",) or "timeout" in name.lower():
        return BackendError(f"{model}: timed out ({message})", retryable=True, kind="timeout")
    if name == "APIConnectionError" and status in (None, 500):
        return BackendError(f"{model}: connection failed ({message})", retryable=True, kind="connection")
    retryable = status in RETRYABLE_STATUS or name in ("RateLimitError", "ServiceUnavailableError",
                                                         "InternalServerError", "BadGatewayError")
    return BackendError(f"{model}: {name} ({message})", retryable=retryable,
                        status=status if isinstance(status, int) else None,
                        retry_after=retry_after, kind="http" if status else "error")


class LiteLLMBackend(BackendBase):
    """Calls ``litellm.acompletion`` with exactly the suite's parameters; LiteLLM does not retry."""

    def __init__(self, model: ResolvedModel, api_key: str | None) -> None:
        assert isinstance(model.spec, LiteLLMModel)
        self.name = model.name
        self.resolved = model
        self.spec = model.spec
        self.served_model = model.spec.model
        self._api_key = api_key
        self._litellm = import_litellm()
        self._http: aiohttp.ClientSession | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None
        self._sdk_client: Any = None
        self._identity: dict[str, Any] = {"provider": "litellm", "model": self.spec.model,
                                          "api_base": self.spec.api_base, "params": self.spec.params}

    def identity(self) -> dict[str, Any]:
        return self._identity

    # LiteLLM caches its HTTP clients per process, each bound to the loop that made it: its models share one.
    loop_group = "litellm"

    def prepare(self) -> None:
        """LiteLLM's first call spends ~0.4-0.7 s of set-up (the default tokenizer's load, provider
        modules) — done here, before timing, through a mock answer of this very model; and a loopback
        ``api_base`` becomes what that server serves."""
        prepare_litellm_client(self._litellm, self._kwargs(ChatRequest(messages=[], params=dict(self.spec.params))))
        base = self.spec.api_base
        if is_loopback(base):
            served_name = self.spec.model.split("/", 1)[1] if "/" in self.spec.model else self.spec.model
            served = served_identity(base or "", served_name, self._api_key)
            if served is not None:
                self._identity = {**{k: v for k, v in self._identity.items() if k != "api_base"}, "server": served}

    def _kwargs(self, request: ChatRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.spec.model, **request.params}
        if self.spec.api_base:
            kwargs["api_base"] = self.spec.api_base
        if request.logprobs:
            kwargs["logprobs"] = True
            if request.top_logprobs:
                kwargs["top_logprobs"] = request.top_logprobs
        if request.stream:
            kwargs["stream"] = True
            kwargs["stream_options"] = {"include_usage": True}
        if request.constraint is not None:  # output.constrain: OpenAI structured outputs
            kwargs.update(litellm_form(request.constraint))
        return kwargs

    async def complete(self, request: ChatRequest) -> Completion:
        sent = self._kwargs(request)
        kwargs = dict(sent, messages=request.messages, timeout=request.timeout_s, num_retries=0,
                      max_retries=0)
        if self._api_key:
            kwargs["api_key"] = self._api_key
        elif self.spec.api_base:
            # An explicit endpoint without api_key_env gets a placeholder, so that a provider key LiteLLM
            # would otherwise pick up from the environment is never sent to a server the suite names.
            kwargs["api_key"] = "no-key"
        kwargs["shared_session"] = self._session()
        if self._sdk_client is not None and self._http_loop is asyncio.get_running_loop():
            kwargs["client"] = self._sdk_client
        start = time.perf_counter()
        try:
            with exchange() as wire:
                response = await self._litellm.acompletion(**kwargs)
                if request.stream:
                    completion = await self._read_stream(response, start)
                else:
                    completion = self._read(response)
        except BackendError:
            raise
        except Exception as exc:  # LiteLLM maps every provider error onto its own exception tree
            raise _as_backend_error(exc, self.spec.model) from None
        time_wire(completion, wire, start, request.stream)
        completion.sent_params = {k: v for k, v in sent.items() if k != "model"}
        return completion

    @staticmethod
    def _read(response: Any) -> Completion:
        choice = response.choices[0]
        usage = _field(response, "usage")
        return Completion(text=_field(choice.message, "content") or "",
                          finish_reason=_field(choice, "finish_reason"),
                          prompt_tokens=_field(usage, "prompt_tokens"),
                          completion_tokens=_field(usage, "completion_tokens"),
                          resolved_model=_field(response, "model"),
                          logprobs=convert_logprobs(_logprob_entries(choice)))

    @staticmethod
    async def _read_stream(stream: Any, start: float) -> Completion:
        parts: list[str] = []
        entries: list[dict[str, Any]] = []
        ttft: float | None = None
        finish = model = None
        usage: Any = None
        async for chunk in stream:
            model = _field(chunk, "model") or model
            usage = _field(chunk, "usage") or usage
            for choice in _field(chunk, "choices") or []:
                piece = _field(_field(choice, "delta"), "content")
                if piece:
                    if ttft is None:
                        ttft = (time.perf_counter() - start) * 1000.0
                    parts.append(piece)
                entries.extend(_logprob_entries(choice))
                finish = _field(choice, "finish_reason") or finish
        completion_tokens = _field(usage, "completion_tokens")
        # LiteLLM ends every stream with a finish_reason chunk, inventing "stop" when the provider sent
        # none, so the chunks it yields cannot tell a finished answer from a cut one. Its wrapper keeps what
        # the provider's own chunks said (``received_finish_reason``); only that counts as finished.
        explicit = _provider_finish_reason(stream, finish)
        if explicit is None:
            raise BackendError("the stream ended without a finish reason from the server (cut short after "
                               f"{len(parts)} chunks)", retryable=True, kind="truncated")
        if not parts and not completion_tokens:
            raise BackendError("the stream ended before any answer arrived (garbled or cut stream)",
                               retryable=True, kind="truncated")
        finish = explicit
        return Completion(text="".join(parts), finish_reason=finish, ttft_ms=ttft,
                          prompt_tokens=_field(usage, "prompt_tokens"),
                          completion_tokens=completion_tokens,
                          resolved_model=model, logprobs=convert_logprobs(entries))

    async def start(self) -> None:
        """On the loop the requests run on: the aiohttp session, and for ``openai/...`` the OpenAI SDK client
        LiteLLM would otherwise make inside the first timed call (built by LiteLLM's own factory, passed as
        ``client``)."""
        session = self._session()
        self._sdk_client = None
        if not self.spec.model.startswith("openai/"):
            return
        try:
            from litellm.llms.openai.openai import OpenAIChatCompletion
            from openai import AsyncOpenAI

            http_client = OpenAIChatCompletion._get_async_http_client(shared_session=session)
            self._sdk_client = AsyncOpenAI(api_key=self._api_key or ("no-key" if self.spec.api_base else None),
                                           base_url=self.spec.api_base, http_client=http_client, max_retries=0)
        except Exception:  # LiteLLM makes its own client on the first call, as without this
            self._sdk_client = None

    def _session(self) -> aiohttp.ClientSession:
        """The aiohttp session LiteLLM's transport sends through (``shared_session``): one per event loop,
        stamping each exchange at the wire (:mod:`evalkit.backends.wire_clock`)."""
        loop = asyncio.get_running_loop()
        if self._http is None or self._http.closed or self._http_loop is not loop:
            self._http = stamping_session(self.resolved.concurrency)
            self._sdk_client = None  # made on another loop or over a closed session
            self._http_loop = loop
        return self._http

    async def aclose(self) -> None:
        if self._sdk_client is not None and self._http_loop is asyncio.get_running_loop():
            await self._sdk_client.close()
        self._sdk_client = None
        if self._http is not None and not self._http.closed and self._http_loop is asyncio.get_running_loop():
            await self._http.close()
        self._http = None


class LiteLLMFactory:
    """``provider: litellm``: one backend per model, nothing shared."""

    def __init__(self, context: BuildContext) -> None:
        self.context = context

    def build(self, model: ResolvedModel) -> LiteLLMBackend:
        return LiteLLMBackend(model, api_key(model.name, model.spec, self.context.suite_file))
