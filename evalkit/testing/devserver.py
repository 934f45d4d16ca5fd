"""A loopback stand-in for an OpenAI-compatible model server (OpenAI API, vLLM), with scripted replies.

It speaks the protocol over real HTTP, so LiteLLM, the ``openai`` SDK and evalkit's own aiohttp client
reach it through their normal code paths. Used by evalkit's tests, the README quick start, benchmarks
(fixed latency, no concurrency limit) and reliability tests (:mod:`evalkit.testing.faults`).

Endpoints: ``GET /health``, ``GET /v1/models``, ``POST /v1/chat/completions`` (JSON or SSE stream with
``stream_options.include_usage``; ``logprobs``/``top_logprobs``) and ``POST /v1/completions`` (legacy
``prompt``; ``logprobs: k`` in the legacy ``tokens``/``token_logprobs``/``top_logprobs``/``text_offset``
form, offsets counted from the start of the completion as vLLM does). ``n`` > 1 and tools are accepted
and ignored (one choice; a list ``prompt`` is answered as one joined prompt); ``stop`` strings cut the
reply; ``response_format`` / ``structured_outputs`` are honoured (:mod:`evalkit.testing.constrained`).

Tokens, logprobs, replies and the rules file: :mod:`evalkit.testing.replies`.

Run: ``with DevServer(RuleResponder(...)) as srv:`` serves from a background thread (for sync code and
tests); ``async with DevServer(...)`` serves on the running loop. ``srv.url`` is the ``.../v1`` base,
``srv.requests`` the request log. CLI::

    python -m evalkit.testing --port 8765 --rules rules.yaml --latency-ms 10 --ttft-ms 5 [--api-key K]
"""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from evalkit.testing.constrained import honour
from evalkit.testing.faults import Fault, FaultPlan, apply_fault, break_stream, error_response
from evalkit.testing.replies import (
    EchoResponder,
    Reply,
    Responder,
    chat_logprobs,
    cut_reply,
    legacy_logprobs,
    request_text,
    sse_event,
    tokenize,
    wanted_logprobs,
)

__all__ = ["DevServer", "RequestRecord"]


@dataclass
class RequestRecord:
    """One received request; ``headers`` is case-insensitive (``headers["authorization"]`` works whatever
    the client's spelling); ``body`` is None when it was not JSON."""

    index: int
    method: str
    path: str
    model: str | None
    headers: Mapping[str, str]
    body: dict[str, Any] | None
    time: float
    fault: str | None = None


class DevServer:
    """The OpenAI-compatible loopback server: ``with`` runs it in a thread, ``async with`` on this loop.

    ``latency_ms`` delays each non-stream answer (a Reply's ``delay_s`` overrides it); streams wait
    ``ttft_ms`` (default: ``latency_ms``) before the first chunk, then send ``chunk_tokens`` tokens per
    chunk, ``itl_ms`` apart; ``latency_per_inflight_ms`` adds to both delays that much per other request in
    flight when one arrives (latency growing with load). ``models``: the names served (others get 404);
    default: the responder's ``models``, and if it has none, any name. ``api_key``: require ``Authorization: Bearer <key>`` on
    ``/v1/*``. These attributes, and ``faults``, may be changed while the server runs.
    """

    def __init__(self, responder: Responder | None = None, *, models: Iterable[str] | None = None,
                 latency_ms: float = 0.0, ttft_ms: float | None = None, itl_ms: float = 0.0,
                 chunk_tokens: int = 1, api_key: str | None = None, latency_per_inflight_ms: float = 0.0,
                 faults: FaultPlan | Iterable[Fault] | None = None, host: str = "127.0.0.1", port: int = 0,
                 max_log: int | None = 100_000, shutdown_timeout_s: float = 0.5) -> None:
        self.responder: Responder = responder if responder is not None else EchoResponder()
        declared = list(models) if models is not None else list(getattr(self.responder, "models", None) or [])
        self.models: frozenset[str] | None = frozenset(declared) if declared else None
        self.latency_ms, self.ttft_ms, self.itl_ms = latency_ms, ttft_ms, itl_ms
        self.latency_per_inflight_ms, self.in_flight = latency_per_inflight_ms, 0
        self.chunk_tokens = max(1, chunk_tokens)
        self.api_key = api_key
        self.faults = faults if isinstance(faults, FaultPlan) else FaultPlan(faults or ())
        self.host, self.port = host, port
        self.counts: Counter[str] = Counter()
        self._log: deque[RequestRecord] = deque(maxlen=max_log)
        self._next_index = 0
        self._instance = uuid.uuid4().hex  # the content identity of replies that cannot describe themselves
        self._shutdown_timeout_s = shutdown_timeout_s
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/v1/models", self._models)
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.app.router.add_post("/v1/completions", self._completions)

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (valid once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI ``base_url``/``api_base``: ``http://HOST:PORT/v1``."""
        return self.base_url + "/v1"

    async def astart(self) -> DevServer:
        """Serve on the running event loop."""
        if self._runner is not None:
            raise RuntimeError("DevServer is already running")
        # handler_cancellation: a client that gives up (timeout, reset) ends its handler, as in vLLM.
        runner = web.AppRunner(self.app, access_log=None, handler_cancellation=True,
                               shutdown_timeout=self._shutdown_timeout_s)
        await runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # CLI restarts on a fixed port
            sock.bind((self.host, self.port))
            # Our own socket, so the OS-picked port is known without aiohttp internals.
            await web.SockSite(runner, sock, backlog=2048).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self.port = sock.getsockname()[1]
        self._runner = runner
        return self

    async def astop(self) -> None:
        """Stop serving; requests still in flight are cancelled after ``shutdown_timeout_s``."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> DevServer:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    def start(self) -> DevServer:
        """Serve from a background thread with its own event loop; returns once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("DevServer is already running")
        loop = asyncio.new_event_loop()
        failed: list[BaseException] = []
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.astart())
            except BaseException as exc:  # handed to the starting thread, which re-raises it
                failed.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=serve, name=f"evalkit-devserver-{id(self):x}", daemon=True)
        self._thread.start()
        ready.wait()
        if failed:
            self._thread = None
            raise failed[0]
        self._loop = loop
        return self

    def stop(self) -> None:
        """Stop the background server and join its thread."""
        if self._thread is None or self._loop is None:
            return
        loop, thread = self._loop, self._thread
        try:
            asyncio.run_coroutine_threadsafe(self.astop(), loop).result(timeout=self._shutdown_timeout_s + 10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._thread = self._loop = None

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request log ---------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log (oldest first; at most ``max_log`` entries)."""
        return list(self._log)

    def calls(self, model: str | None = None, path: str | None = None) -> list[RequestRecord]:
        """Logged requests, filtered by model name and/or path (e.g. ``"/v1/chat/completions"``)."""
        return [r for r in list(self._log) if (model is None or r.model == model) and (path is None or r.path == path)]

    def reset(self) -> None:
        """Forget logged requests, per-model counts and all faults."""
        self._log.clear()
        self.counts.clear()
        self.faults.clear()

    def _record(self, request: web.Request, body: dict[str, Any] | None) -> RequestRecord:
        model = body.get("model") if body is not None and isinstance(body.get("model"), str) else None
        rec = RequestRecord(self._next_index, request.method, request.path, model,
                            CIMultiDict(request.headers), body, time.time())
        self._next_index += 1
        self._log.append(rec)
        if model is not None:
            self.counts[model] += 1
        return rec

    # -- handlers --------------------------------------------------------------------------------------

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        if self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return error_response(401, "Incorrect API key provided. Send it as 'Authorization: Bearer <key>'.")

    def content_identity(self) -> str:
        """``evalkit_content`` in ``/v1/models``, for a cache identity: the responder's own description
        (same rules, any port: same), else (or with faults) a token unique to this instance."""
        describe = getattr(self.responder, "content_identity", None)
        if callable(describe) and not self.faults:
            return str(describe())
        return "instance:" + self._instance

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def _models(self, request: web.Request) -> web.Response:
        self._record(request, None)
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        created = int(time.time())
        data = [{"id": name, "object": "model", "created": created, "owned_by": "evalkit-devserver"}
                for name in sorted(self.models or ())]
        return web.json_response({"object": "list", "data": data, "evalkit_content": self.content_identity()})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, chat=False)

    async def _complete(self, request: web.Request, chat: bool) -> web.StreamResponse:
        self.in_flight += 1  # counted from arrival to answer: what latency_per_inflight_ms grows with
        try:
            return await self._answer(request, chat, self.latency_per_inflight_ms * (self.in_flight - 1))
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, chat: bool, extra_ms: float) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else None
        rec = self._record(request, body)
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        if body is None:
            return error_response(400, "We could not parse the JSON body of your request.")
        model = rec.model
        if model is None:
            return error_response(400, "you must provide a model parameter")
        fault = self.faults.pick(model) if self.faults else None
        if fault is not None:
            rec.fault = fault.kind
            early = await apply_fault(fault, request)
            if early is not None:
                return early
        if self.models is not None and model not in self.models:
            return error_response(404, f"The model `{model}` does not exist.")
        field_name = "messages" if chat else "prompt"
        prompt = body.get(field_name)
        if not (isinstance(prompt, list) and prompt) and not (not chat and isinstance(prompt, str)):
            return error_response(400, f"'{field_name}' is a required property")
        try:
            reply = self.responder(body)
            if inspect.isawaitable(reply):
                reply = await reply
        except Exception as exc:  # a broken responder is the test's bug: say so in the answer
            return error_response(500, f"devserver responder failed: {type(exc).__name__}: {exc}")
        reply = honour(body, Reply(reply) if isinstance(reply, str) else reply)  # structured outputs asked
        tokens, finish = cut_reply(reply.text, body)
        usage = {"prompt_tokens": len(tokenize(request_text(body))), "completion_tokens": len(tokens)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        delay_ms = reply.delay_s * 1000.0 if reply.delay_s is not None else self.latency_ms + extra_ms
        truncate = fault is not None and fault.kind == "truncate"
        if body.get("stream") is True:
            if truncate and fault is not None and fault.after != "eof":  # half of it, then a stall or a reset
                half = tokens[: max(1, len(tokens) // 2)]
                resp = await self._stream(request, body, chat, model, reply, half, finish, usage, 0.0, True, end=False)
                return await break_stream(request, resp, fault)
            ttft = self.ttft_ms + extra_ms if self.ttft_ms is not None and reply.delay_s is None else delay_ms
            return await self._stream(request, body, chat, model, reply, tokens, finish, usage, ttft, truncate)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000.0)
        text, k = "".join(tokens), wanted_logprobs(body, chat)
        if chat:
            lp = chat_logprobs(tokens, reply, k) if k is not None else None
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                      "logprobs": lp, "finish_reason": finish}
        else:
            lp = legacy_logprobs(tokens, reply, k) if k is not None else None
            choice = {"index": 0, "text": text, "logprobs": lp, "finish_reason": finish}
        payload = json.dumps({"id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
                              "object": "chat.completion" if chat else "text_completion",
                              "created": int(time.time()), "model": model, "system_fingerprint": None,
                              "choices": [choice], "usage": usage}).encode()
        if truncate:  # complete HTTP message, broken JSON: what a proxy cutting a body in half produces
            return web.Response(body=payload[: len(payload) // 2], content_type="application/json")
        return web.Response(body=payload, content_type="application/json")

    async def _stream(self, request: web.Request, body: dict[str, Any], chat: bool, model: str, reply: Reply,
                      tokens: list[str], finish: str, usage: dict[str, int], ttft_ms: float,
                      truncate: bool, end: bool = True) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        if truncate:
            resp.force_close()
        await resp.prepare(request)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        head: dict[str, Any] = {"id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
                                "object": "chat.completion.chunk" if chat else "text_completion",
                                "created": int(time.time()), "model": model, "system_fingerprint": None}
        if include_usage:
            head["usage"] = None  # OpenAI sends usage: null on every chunk but the last
        k = wanted_logprobs(body, chat)
        step = self.chunk_tokens
        chunks: list[bytes] = []
        if chat:
            chunks.append(sse_event({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                     "logprobs": None, "finish_reason": None}]}))
        offset = 0
        for start in range(0, len(tokens), step):
            part = tokens[start:start + step]
            piece = "".join(part)
            if chat:
                lp = chat_logprobs(part, reply, k, start) if k is not None else None
                choice: dict[str, Any] = {"index": 0, "delta": {"content": piece}, "logprobs": lp,
                                          "finish_reason": None}
            else:
                lp = legacy_logprobs(part, reply, k, start, offset) if k is not None else None
                choice = {"index": 0, "text": piece, "logprobs": lp, "finish_reason": None}
            offset += len(piece)
            chunks.append(sse_event({**head, "choices": [choice]}))
        if truncate:  # half the content, then a clean end of the HTTP body: no finish_reason, no [DONE]
            chunks = chunks[: max(1, (len(chunks) + 1) // 2)] if end else chunks  # else: the caller breaks it
        else:
            last: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
            if chat:
                last["delta"] = {}
            else:
                last["text"] = ""
            chunks.append(sse_event({**head, "choices": [last]}))
            if include_usage:
                chunks.append(sse_event({**head, "choices": [], "usage": usage}))
            chunks.append(b"data: [DONE]\n\n")
        if ttft_ms > 0:
            await asyncio.sleep(ttft_ms / 1000.0)
        if self.itl_ms > 0:
            first_token = 1 if chat else 0  # the role chunk and the first token arrive together
            for i, chunk in enumerate(chunks):
                if i > first_token:
                    await asyncio.sleep(self.itl_ms / 1000.0)
                await resp.write(chunk)
        else:
            await resp.write(b"".join(chunks))  # one write: less server CPU per request for benchmarks
        if end:
            await resp.write_eof()
        return resp
