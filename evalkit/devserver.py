"""A loopback stand-in for an OpenAI-compatible model server (OpenAI API, vLLM), with scripted replies.

It speaks the protocol over real HTTP, so LiteLLM, the ``openai`` SDK and evalkit's own aiohttp client
reach it through their normal code paths. Used by evalkit's tests, the README quick start, benchmarks
(fixed latency, no concurrency limit) and reliability tests (:mod:`evalkit.devserver_faults`).

Endpoints: ``GET /health``, ``GET /v1/models``, ``POST /v1/chat/completions`` (JSON or SSE stream with
``stream_options.include_usage``; ``logprobs``/``top_logprobs``) and ``POST /v1/completions`` (legacy
``prompt``; ``logprobs: k`` in the legacy ``tokens``/``token_logprobs``/``top_logprobs``/``text_offset``
form, offsets counted from the start of the completion as vLLM does). ``n`` > 1, tools and
``response_format`` are accepted and ignored (one choice; a list ``prompt`` is answered as one joined
prompt); ``stop`` strings cut the reply.

Tokens: :func:`tokenize` is a deterministic regex tokenizer, not a real BPE: a word or a single
punctuation character, each carrying the whitespace before it (as GPT BPE attaches the leading space),
plus trailing whitespace; joined, the tokens give back the text exactly. It counts ``usage``, cuts the
reply at ``max_tokens`` (finish_reason ``length``) and defines the logprob tokens. A chat prompt counts
the tokens of all message contents (no chat-template overhead).

Logprobs: the first reply token gets ``ln(confidence)`` of its :class:`Reply`, every later token
``ln(0.99)``. ``top_logprobs: k`` lists the chosen token first, then k-1 alternatives (the reply's
``alternatives`` for the first token, generic tokens otherwise) sharing the remaining mass (1/2, 1/4, ...
of it), so the probabilities never sum above 1. A probability of 0 is written as -9999.0, as vLLM does.

Replies: a *responder* maps the request JSON to a :class:`Reply` (a ``str``, or an awaitable of either,
is accepted too). :class:`RuleResponder` picks the first matching regex rule, optionally per requested
model, so one server plays several models; :class:`EchoResponder` returns the last user message.

Rules file (JSON or YAML), loaded by :meth:`RuleResponder.from_file` and the CLI's ``--rules``::

    models:                       # the served model names; absent or empty: any name is served
      frontier:
        rules:
          - {pattern: "FREE|won \\\\$", reply: spam, confidence: 0.97, alternatives: [ham], delay_ms: 5}
          - {pattern: "label: (\\\\w+)", reply: "\\\\1"}   # \\1 = the pattern's first group
        default: {reply: ham, confidence: 0.8}
      tuned: {rules: [{pattern: "Invoice", reply: spam, confidence: 0.55}]}
    default_model:                # shared by all models: its rules after a model's own, then its default
      rules: []
      default: {reply: ham}
    faults: [{kind: status, status: 429, retry_after: 1, times: 2}]   # optional, see devserver_faults

A pattern is searched (``re.search``, DOTALL | IGNORECASE) in the request's message contents joined by
newlines (or the ``prompt``). Order: the model's rules, the shared rules, the model's default, the
shared default. A reply may be written as a plain string instead of a mapping.

Run: ``with DevServer(RuleResponder(...)) as srv:`` serves from a background thread (for sync code and
tests); ``async with DevServer(...)`` serves on the running loop. ``srv.url`` is the ``.../v1`` base,
``srv.requests`` the request log. CLI::

    python -m evalkit.devserver --port 8765 --rules rules.yaml --latency-ms 10 --ttft-ms 5 [--api-key K]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import math
import re
import signal
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from evalkit.devserver_faults import Fault, FaultPlan, apply_fault, error_response

__all__ = ["DevServer", "EchoResponder", "Fault", "FaultPlan", "Reply", "RequestRecord", "Responder", "Rule",
           "RuleResponder", "main", "request_text", "tokenize"]

_TOKEN_RE = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")
_LATER_TOKEN_P = 0.99
_GENERIC_ALTERNATIVES = ("\n", " the", ".", ",", " a", " and", " I", " to", " of", " is", " in", " it",
                         " not", " yes", " no", ":", " that", " this", " for", " on")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into deterministic pseudo-tokens; ``"".join(tokenize(t)) == t``."""
    return _TOKEN_RE.findall(text)


@dataclass
class Reply:
    """What the model answers: ``confidence`` is the probability of the first token (e.g. the label)."""

    text: str
    confidence: float = 0.9
    alternatives: list[str] = field(default_factory=list)
    delay_s: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"Reply.confidence must be in [0, 1], got {self.confidence}")

    @classmethod
    def from_spec(cls, spec: str | dict[str, Any]) -> Reply:
        """``"text"`` or ``{"reply"|"text", "confidence", "alternatives", "delay_ms"}``."""
        if isinstance(spec, str):
            return cls(spec)
        delay_ms = spec.get("delay_ms")
        return cls(text=str(spec.get("reply", spec.get("text", ""))), confidence=float(spec.get("confidence", 0.9)),
                   alternatives=[str(a) for a in spec.get("alternatives", [])],
                   delay_s=None if delay_ms is None else float(delay_ms) / 1000.0)


Responder = Callable[[dict[str, Any]], "Reply | str | Awaitable[Reply | str]"]


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal parts: only the text parts count
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def request_text(body: dict[str, Any]) -> str:
    """The text rules are matched against: message contents joined by newlines, or the prompt."""
    messages = body.get("messages")
    if isinstance(messages, list):
        return "\n".join(_content_text(m.get("content")) for m in messages if isinstance(m, dict))
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else "\n".join(p for p in prompt or () if isinstance(p, str))


@dataclass
class Rule:
    """``pattern`` (searched with DOTALL | IGNORECASE) → ``reply``; ``\\1`` in the reply expands groups."""

    pattern: str
    reply: Reply | str

    def __post_init__(self) -> None:
        self.reply = Reply.from_spec(self.reply) if isinstance(self.reply, str) else self.reply
        self._regex = re.compile(self.pattern, re.DOTALL | re.IGNORECASE)
        self._expands = "\\" in self.reply.text  # skip match.expand's template parsing when unused

    def match(self, text: str) -> Reply | None:
        """The reply when the pattern occurs in ``text``, else None."""
        m = self._regex.search(text)
        if m is None:
            return None
        assert isinstance(self.reply, Reply)
        return replace(self.reply, text=m.expand(self.reply.text)) if self._expands else self.reply

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Rule:
        """``{"pattern", "reply", "confidence", "alternatives", "delay_ms"}``."""
        return cls(str(spec["pattern"]), Reply.from_spec(spec))


class RuleResponder:
    """First matching rule wins: the requested model's rules, the shared ``rules``, then the defaults."""

    def __init__(self, rules: Sequence[Rule] = (), default: Reply | str = "OK",
                 per_model: dict[str, list[Rule]] | None = None,
                 model_defaults: dict[str, Reply] | None = None) -> None:
        self.rules = list(rules)
        self.default = Reply(default) if isinstance(default, str) else default
        self.per_model = dict(per_model or {})
        self.model_defaults = dict(model_defaults or {})

    @property
    def models(self) -> list[str]:
        """The model names this responder was configured for (empty: it answers any name)."""
        return list(dict.fromkeys([*self.per_model, *self.model_defaults]))

    def __call__(self, body: dict[str, Any]) -> Reply:
        text = request_text(body)
        model = body.get("model")
        for rule in (*self.per_model.get(model, ()), *self.rules):  # type: ignore[arg-type]
            reply = rule.match(text)
            if reply is not None:
                return reply
        return self.model_defaults.get(model, self.default)  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuleResponder:
        """Build from the rules-file structure described in the module docstring."""
        shared = data.get("default_model") or {}
        models = data.get("models") or {}
        return cls(rules=[Rule.from_spec(r) for r in shared.get("rules", [])],
                   default=Reply.from_spec(shared["default"]) if "default" in shared else Reply("OK"),
                   per_model={name: [Rule.from_spec(r) for r in (spec or {}).get("rules", [])]
                              for name, spec in models.items()},
                   model_defaults={name: Reply.from_spec(spec["default"]) for name, spec in models.items()
                                   if spec and "default" in spec})

    @classmethod
    def from_file(cls, path: str | Path) -> RuleResponder:
        """Load a JSON or YAML rules file."""
        return cls.from_dict(load_rules_file(path))


def load_rules_file(path: str | Path) -> dict[str, Any]:
    """Parse a rules file (YAML is a superset of JSON, so one parser reads both)."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a rules file must be a mapping with 'models' and/or 'default_model'")
    return data


class EchoResponder:
    """Answers with the last user message (or the prompt), at confidence 0.9."""

    models: list[str] = []

    def __call__(self, body: dict[str, Any]) -> Reply:
        for message in reversed(body.get("messages") or []):
            if isinstance(message, dict) and message.get("role") == "user":
                return Reply(_content_text(message.get("content")))
        return Reply(request_text(body))


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


def _logprob(p: float) -> float:
    return math.log(p) if p > 0.0 else -9999.0


def _alternatives(token: str, p: float, preferred: Sequence[str], n: int) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    if n <= 0:
        return out
    seen = {token}
    candidates = [t[0] for t in map(tokenize, preferred) if t] + list(_GENERIC_ALTERNATIVES)
    candidates += [f"<alt{i}>" for i in range(n)]  # never run short, whatever k is asked for
    rest = 1.0 - p
    for cand in candidates:
        if cand in seen:
            continue
        seen.add(cand)
        out.append((cand, _logprob(rest * 0.5 ** (len(out) + 1))))
        if len(out) == n:
            break
    return out


def _token_probs(tokens: Sequence[str], reply: Reply, k: int, first: int
                 ) -> list[tuple[str, float, list[tuple[str, float]]]]:
    """(token, logprob, [(alt, logprob)...]) per token; ``first`` is the index of tokens[0] in the reply."""
    out = []
    for i, tok in enumerate(tokens, start=first):
        p = reply.confidence if i == 0 else _LATER_TOKEN_P
        lp = _logprob(p)
        out.append((tok, lp, [(tok, lp), *_alternatives(tok, p, reply.alternatives if i == 0 else (), k - 1)]))
    return out


def _chat_logprobs(tokens: Sequence[str], reply: Reply, k: int, first: int = 0) -> dict[str, Any]:
    def entry(tok: str, lp: float) -> dict[str, Any]:
        return {"token": tok, "logprob": lp, "bytes": list(tok.encode("utf-8"))}

    return {"content": [{**entry(tok, lp), "top_logprobs": [entry(t, x) for t, x in tops] if k > 0 else []}
                        for tok, lp, tops in _token_probs(tokens, reply, k, first)]}


def _legacy_logprobs(tokens: Sequence[str], reply: Reply, k: int, first: int = 0, offset: int = 0
                     ) -> dict[str, Any]:
    rows = _token_probs(tokens, reply, max(k, 1), first)
    offsets = []
    for tok in tokens:
        offsets.append(offset)
        offset += len(tok)
    return {"tokens": list(tokens), "token_logprobs": [lp for _, lp, _ in rows],
            "top_logprobs": [dict(tops) for _, _, tops in rows], "text_offset": offsets}


def _cut(reply_text: str, body: dict[str, Any]) -> tuple[list[str], str]:
    """Reply tokens after ``stop`` and ``max_tokens``, and the finish_reason."""
    stop = body.get("stop")
    for s in [stop] if isinstance(stop, str) else stop or ():
        if s and s in reply_text:
            reply_text = reply_text[:reply_text.index(s)]
    tokens = tokenize(reply_text)
    limit = body.get("max_completion_tokens")
    limit = body.get("max_tokens") if limit is None else limit
    if isinstance(limit, int) and 0 <= limit < len(tokens):
        return tokens[:limit], "length"
    return tokens, "stop"


def _wanted_logprobs(body: dict[str, Any], chat: bool) -> int | None:
    """How many top alternatives were asked for; None: no logprobs at all."""
    if chat:
        return int(body.get("top_logprobs") or 0) if body.get("logprobs") else None
    k = body.get("logprobs")  # legacy: the number of alternatives, and 0 still asks for token logprobs
    return k if isinstance(k, int) and not isinstance(k, bool) else None


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class DevServer:
    """The OpenAI-compatible loopback server: ``with`` runs it in a thread, ``async with`` on this loop.

    ``latency_ms`` delays each non-stream answer (a Reply's ``delay_s`` overrides it); streams wait
    ``ttft_ms`` (default: ``latency_ms``) before the first chunk, then send ``chunk_tokens`` tokens per
    chunk, ``itl_ms`` apart. ``models``: the names served (others get 404); default: the responder's
    ``models``, and if it has none, any name. ``api_key``: require ``Authorization: Bearer <key>`` on
    ``/v1/*``. These attributes, and ``faults``, may be changed while the server runs.
    """

    def __init__(self, responder: Responder | None = None, *, models: Iterable[str] | None = None,
                 latency_ms: float = 0.0, ttft_ms: float | None = None, itl_ms: float = 0.0,
                 chunk_tokens: int = 1, api_key: str | None = None,
                 faults: FaultPlan | Iterable[Fault] | None = None, host: str = "127.0.0.1", port: int = 0,
                 max_log: int | None = 100_000, shutdown_timeout_s: float = 0.5) -> None:
        self.responder: Responder = responder if responder is not None else EchoResponder()
        declared = list(models) if models is not None else list(getattr(self.responder, "models", None) or [])
        self.models: frozenset[str] | None = frozenset(declared) if declared else None
        self.latency_ms, self.ttft_ms, self.itl_ms = latency_ms, ttft_ms, itl_ms
        self.chunk_tokens = max(1, chunk_tokens)
        self.api_key = api_key
        self.faults = faults if isinstance(faults, FaultPlan) else FaultPlan(faults or ())
        self.host, self.port = host, port
        self.counts: Counter[str] = Counter()
        self._log: deque[RequestRecord] = deque(maxlen=max_log)
        self._next_index = 0
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
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, chat=False)

    async def _complete(self, request: web.Request, chat: bool) -> web.StreamResponse:
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
        reply = Reply(reply) if isinstance(reply, str) else reply
        tokens, finish = _cut(reply.text, body)
        usage = {"prompt_tokens": len(tokenize(request_text(body))), "completion_tokens": len(tokens)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        delay_ms = reply.delay_s * 1000.0 if reply.delay_s is not None else self.latency_ms
        truncate = fault is not None and fault.kind == "truncate"
        if body.get("stream") is True:
            ttft = self.ttft_ms if self.ttft_ms is not None and reply.delay_s is None else delay_ms
            return await self._stream(request, body, chat, model, reply, tokens, finish, usage, ttft, truncate)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000.0)
        text, k = "".join(tokens), _wanted_logprobs(body, chat)
        if chat:
            lp = _chat_logprobs(tokens, reply, k) if k is not None else None
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                      "logprobs": lp, "finish_reason": finish}
        else:
            lp = _legacy_logprobs(tokens, reply, k) if k is not None else None
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
                      truncate: bool) -> web.StreamResponse:
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
        k = _wanted_logprobs(body, chat)
        step = self.chunk_tokens
        chunks: list[bytes] = []
        if chat:
            chunks.append(_sse({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                     "logprobs": None, "finish_reason": None}]}))
        offset = 0
        for start in range(0, len(tokens), step):
            part = tokens[start:start + step]
            piece = "".join(part)
            if chat:
                lp = _chat_logprobs(part, reply, k, start) if k is not None else None
                choice: dict[str, Any] = {"index": 0, "delta": {"content": piece}, "logprobs": lp,
                                          "finish_reason": None}
            else:
                lp = _legacy_logprobs(part, reply, k, start, offset) if k is not None else None
                choice = {"index": 0, "text": piece, "logprobs": lp, "finish_reason": None}
            offset += len(piece)
            chunks.append(_sse({**head, "choices": [choice]}))
        if truncate:  # half the content, then a clean end of the HTTP body: no finish_reason, no [DONE]
            chunks = chunks[: max(1, (len(chunks) + 1) // 2)]
        else:
            last: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
            last.update({"delta": {}} if chat else {"text": ""})  # type: ignore[dict-item]
            chunks.append(_sse({**head, "choices": [last]}))
            if include_usage:
                chunks.append(_sse({**head, "choices": [], "usage": usage}))
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
        await resp.write_eof()
        return resp


# -- CLI ---------------------------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    responder: Responder = EchoResponder()
    faults = FaultPlan()
    if args.rules:
        data = load_rules_file(args.rules)
        responder = RuleResponder.from_dict(data)
        faults = FaultPlan(data.get("faults") or ())
    server = DevServer(responder, models=args.model or None, latency_ms=args.latency_ms, ttft_ms=args.ttft_ms,
                       itl_ms=args.itl_ms, chunk_tokens=args.chunk_tokens, api_key=args.api_key, faults=faults,
                       host=args.host, port=args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.astart()
    print(server.url, flush=True)
    try:
        await stop.wait()
    finally:
        await server.astop()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m evalkit.devserver``: serve until SIGINT/SIGTERM, after printing the base URL."""
    parser = argparse.ArgumentParser(prog="python -m evalkit.devserver",
                                     description="Scripted OpenAI-compatible model server on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 lets the OS pick (default 8000, as vLLM)")
    parser.add_argument("--rules", help="JSON/YAML rules file (format: module docstring); default: echo")
    parser.add_argument("--model", action="append", help="a served model name (repeatable); default: the "
                        "rules file's models, or any name")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay of every non-stream answer")
    parser.add_argument("--ttft-ms", type=float, default=None, help="delay before a stream's first chunk "
                        "(default: --latency-ms)")
    parser.add_argument("--itl-ms", type=float, default=0.0, help="delay between stream chunks")
    parser.add_argument("--chunk-tokens", type=int, default=1, help="tokens per stream chunk")
    parser.add_argument("--api-key", help="require 'Authorization: Bearer KEY'")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
