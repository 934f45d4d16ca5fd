"""``python -m evalkit.testing``: the loopback dev server (:mod:`evalkit.testing.devserver`) as a process.

    python -m evalkit.testing --port 8765 --rules rules.yaml --latency-ms 10 --ttft-ms 5 [--api-key K]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence

from evalkit.testing.devserver import DevServer
from evalkit.testing.faults import FaultPlan
from evalkit.testing.replies import EchoResponder, Responder, RuleResponder, load_rules_file


async def _serve(args: argparse.Namespace) -> None:
    responder: Responder = EchoResponder()
    faults = FaultPlan()
    if args.rules:
        data = load_rules_file(args.rules)
        responder = RuleResponder.from_dict(data)
        faults = FaultPlan(data.get("faults") or ())
    server = DevServer(responder, models=args.model or None, latency_ms=args.latency_ms, ttft_ms=args.ttft_ms,
                       itl_ms=args.itl_ms, latency_per_inflight_ms=args.latency_per_inflight_ms,
                       chunk_tokens=args.chunk_tokens, api_key=args.api_key, faults=faults, host=args.host, port=args.port)
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
    """``python -m evalkit.testing``: serve until SIGINT/SIGTERM, after printing the base URL."""
    parser = argparse.ArgumentParser(prog="python -m evalkit.testing",
                                     description="Scripted OpenAI-compatible model server on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 lets the OS pick (default 8000, as vLLM)")
    parser.add_argument("--rules", help="JSON/YAML rules file (format: evalkit.testing.replies docstring); default: echo")
    parser.add_argument("--model", action="append", help="a served model name (repeatable); default: the "
                        "rules file's models, or any name")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay of every non-stream answer")
    parser.add_argument("--ttft-ms", type=float, default=None, help="delay before a stream's first chunk "
                        "(default: --latency-ms)")
    parser.add_argument("--latency-per-inflight-ms", type=float, default=0.0, help="added to both delays for "
                        "every other request in flight when one arrives (latency that grows with load)")
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
