"""A minimal OpenAI-protocol chat server for overhead benchmarks: fixed latency, no concurrency limit.

Every ``POST /v1/chat/completions`` (or ``/chat/completions``) sleeps ``--latency-ms`` and answers a
fixed chat completion (``--reply``, default ``spam``), as JSON or, when the request asks for
``stream``, as three SSE events. Nothing is parsed beyond the ``stream`` flag and nothing is
tokenised, so the server costs a few tens of microseconds of CPU per request and is never the
bottleneck. It runs in its own process, so its CPU is not counted against the client.

``GET /count`` returns the number of chat requests answered (the benchmark checks that every harness
sent every request); ``POST /reset`` zeroes it; ``GET /v1/models`` lists the one served name.

    python benchmarks/loopback_server.py --port 8900 --latency-ms 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from aiohttp import web


def build_app(latency_ms: float, reply: str = "spam", model: str = "bench") -> web.Application:
    delay = latency_ms / 1000.0
    state = {"count": 0}
    created = int(time.time())
    body = json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop",
                     "logprobs": None}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 1, "total_tokens": 21},
    }).encode()
    chunk = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": created, "model": model}
    stream_body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in (
        {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": reply}, "finish_reason": None}]},
        {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**chunk, "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 1, "total_tokens": 21}},
    )) + b"data: [DONE]\n\n"

    async def chat(request: web.Request) -> web.Response:
        raw = await request.read()
        state["count"] += 1
        if delay:
            await asyncio.sleep(delay)
        # A substring test instead of json.loads: the flag is all this server needs from the body.
        if b'"stream": true' in raw or b'"stream":true' in raw:
            return web.Response(body=stream_body, content_type="text/event-stream")
        return web.Response(body=body, content_type="application/json")

    async def count(_: web.Request) -> web.Response:
        return web.json_response({"count": state["count"]})

    async def reset(_: web.Request) -> web.Response:
        state["count"] = 0
        return web.json_response({"count": 0})

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": model, "object": "model", "owned_by": "bench"}]})

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/chat/completions", chat)
    app.router.add_get("/count", count)
    app.router.add_post("/reset", reset)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", lambda _: web.json_response({"ok": True}))
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--reply", default="spam")
    args = parser.parse_args()
    try:
        import uvloop  # optional: a cheaper event loop keeps the server further from the bottleneck

        uvloop.install()
    except ImportError:
        pass
    web.run_app(build_app(args.latency_ms, args.reply), host=args.host, port=args.port, print=None,
                access_log=None, backlog=4096)


if __name__ == "__main__":
    main()
