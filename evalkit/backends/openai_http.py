"""A lean async client for OpenAI-compatible chat servers (vLLM, llama.cpp, TGI, ...).

On a 2-core machine the client's CPU, not the server, caps throughput: aiohttp with plain JSON
costs ~0.4 ms per request where the openai SDK over httpx costs ~11 ms. So engines that already speak
the OpenAI protocol are called directly; LiteLLM stays for the providers it has to translate.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from evalkit.backends.base import RETRYABLE_STATUS, retry_after_seconds
from evalkit.backends.constrain import server_form
from evalkit.backends.wire_clock import WireTimes, exchange, stamping_session, time_wire
from evalkit.errors import BackendError
from evalkit.records import ChatRequest, Completion
from evalkit.redact import redact_text


def _error_message(status: int, body: bytes) -> str:
    try:
        err = json.loads(body).get("error")
        message = err.get("message") if isinstance(err, dict) else str(err)
    except (ValueError, AttributeError):
        message = body[:200].decode("utf-8", "replace")
    return redact_text(f"HTTP {status}: {message}")  # a server may echo the key it was sent


def convert_logprobs(content: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """OpenAI ``logprobs.content`` entries → evalkit's ``{"token","logprob","top"}`` list."""
    if not content:
        return None
    return [{"token": e.get("token", ""), "logprob": e.get("logprob"),
             "top": [[t.get("token", ""), t.get("logprob")] for t in e.get("top_logprobs") or []]}
            for e in content]


class OpenAICompatibleClient:
    """Chat completions against ``{api_base}/chat/completions`` for one served model name."""

    def __init__(self, api_base: str, model: str, api_key: str | None = None,
                 max_connections: int = 64) -> None:
        self.url = api_base.rstrip("/") + "/chat/completions"
        self.model = model
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = stamping_session(self._max_connections, self._headers)
        return self._session

    def body(self, request: ChatRequest) -> dict[str, Any]:
        """Exactly what is sent, apart from the messages."""
        body: dict[str, Any] = {"model": self.model, **request.params}
        if request.logprobs:
            body["logprobs"] = True
            if request.top_logprobs:
                body["top_logprobs"] = request.top_logprobs
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if request.constraint is not None:  # output.constrain: vLLM's structured outputs
            body.update(server_form(request.constraint))
        return body

    async def complete(self, request: ChatRequest) -> Completion:
        body = self.body(request)
        payload = json.dumps({**body, "messages": request.messages})
        start = time.perf_counter()
        try:
            async with asyncio.timeout(request.timeout_s):
                with exchange() as wire:
                    async with self._client().post(self.url, data=payload) as resp:
                        if resp.status >= 400:
                            raw = await resp.read()
                            raise BackendError(_error_message(resp.status, raw), status=resp.status,
                                               retryable=resp.status in RETRYABLE_STATUS,
                                               retry_after=retry_after_seconds(resp.headers), kind="http")
                        if request.stream:
                            completion = await self._read_stream(resp, start, wire)
                        else:
                            completion = self._read_body(await resp.read())
        except TimeoutError:
            raise BackendError(f"no complete answer within {request.timeout_s:g} s (run.timeout_s)",
                               retryable=True, kind="timeout") from None
        except aiohttp.ClientConnectorError as exc:
            raise BackendError(f"cannot connect to {self.url}: {exc.os_error or exc}", retryable=True,
                               kind="connect") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise BackendError(f"connection failed: {type(exc).__name__}: {exc}", retryable=True,
                               kind="connection") from None
        time_wire(completion, wire, start, request.stream)
        completion.sent_params = {k: v for k, v in body.items() if k != "model"}
        return completion

    def _read_body(self, raw: bytes) -> Completion:
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise BackendError(f"malformed response body: {raw[:120]!r}", retryable=True,
                               kind="malformed") from None
        usage = data.get("usage") or {}
        logprobs = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
        return Completion(text=text, finish_reason=choice.get("finish_reason"),
                          prompt_tokens=usage.get("prompt_tokens"),
                          completion_tokens=usage.get("completion_tokens"),
                          resolved_model=data.get("model"), logprobs=convert_logprobs(logprobs))

    async def _read_stream(self, resp: aiohttp.ClientResponse, start: float, wire: WireTimes) -> Completion:
        parts: list[str] = []
        logprobs: list[dict[str, Any]] = []
        ttft: float | None = None
        finish: str | None = None
        usage: dict[str, Any] = {}
        model: str | None = None
        done = False
        async for raw_line in resp.content:
            line = raw_line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                raise BackendError(f"malformed stream chunk: {data[:120]!r}", retryable=True,
                                   kind="malformed") from None
            model = chunk.get("model") or model
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                piece = delta.get("content")
                if piece:
                    if ttft is None:  # when the bytes carrying it arrived, if the connection was stamped
                        ttft = wire.since_sent_ms(wire.last_byte_at or 0.0) if wire.last_byte_at else None
                        ttft = ttft if ttft is not None else (time.perf_counter() - start) * 1000.0
                    parts.append(piece)
                lp = choice.get("logprobs")
                if isinstance(lp, dict) and lp.get("content"):
                    logprobs.extend(lp["content"])
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
        if not done and finish is None:
            raise BackendError("the stream ended before the answer was complete", retryable=True,
                               kind="truncated")
        return Completion(text="".join(parts), finish_reason=finish, ttft_ms=ttft,
                          prompt_tokens=usage.get("prompt_tokens"),
                          completion_tokens=usage.get("completion_tokens"), resolved_model=model,
                          logprobs=convert_logprobs(logprobs))

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
