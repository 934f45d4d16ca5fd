"""The ceilings: the least a client can do to send every prompt once, at a fixed concurrency.

``aiohttp``: a bare asyncio + aiohttp loop — build the JSON body, POST it, read and parse the answer.
``litellm``: a bare ``litellm.acompletion`` loop — the floor of anything that goes through LiteLLM.
Neither renders templates, scores or stores anything. Prints one JSON line: requests sent, answers
with text, and the wall time of the request phase (after imports).

    python benchmarks/bare_clients.py aiohttp --prompts prompts.jsonl --base http://127.0.0.1:8900/v1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

SYSTEM = "Answer spam or ham."


def load_messages(path: Path) -> list[list[dict[str, str]]]:
    """The same messages evalkit's benchmark suite renders from each prompt row."""
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            out.append([{"role": "system", "content": SYSTEM},
                        {"role": "user", "content": f"Subject: {row['subject']}\n\n{row['body']}"}])
    return out


async def drive(messages: list[list[dict[str, str]]], concurrency: int,
                call: Callable[[list[dict[str, str]]], Awaitable[str]]) -> int:
    """Call once per prompt with ``concurrency`` workers; returns how many answers had text."""
    queue = iter(messages)
    answered = 0

    async def worker() -> None:
        nonlocal answered
        for msgs in queue:
            if await call(msgs):
                answered += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answered


async def run_aiohttp(messages: list[list[dict[str, str]]], base: str, concurrency: int) -> int:
    import aiohttp

    url = base.rstrip("/") + "/chat/completions"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers={"Content-Type": "application/json"}) as session:
        async def call(msgs: list[dict[str, str]]) -> str:
            payload = json.dumps({"model": "bench", "messages": msgs, "temperature": 0, "max_tokens": 4})
            async with session.post(url, data=payload) as resp:
                data = json.loads(await resp.read())
            return data["choices"][0]["message"]["content"]

        return await drive(messages, concurrency, call)


async def run_litellm(messages: list[list[dict[str, str]]], base: str, concurrency: int) -> int:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True

    async def call(msgs: list[dict[str, str]]) -> str:
        response = await litellm.acompletion(model="openai/bench", api_base=base, api_key="no-key", messages=msgs,
                                             temperature=0, max_tokens=4, num_retries=0, max_retries=0)
        return response.choices[0].message.content

    return await drive(messages, concurrency, call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("client", choices=["aiohttp", "litellm"])
    parser.add_argument("--prompts", type=Path, required=True)
    parser.add_argument("--base", required=True, help="OpenAI-compatible base URL ending in /v1")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    messages = load_messages(args.prompts)
    runner = run_aiohttp if args.client == "aiohttp" else run_litellm
    started = time.perf_counter()
    answered = asyncio.run(runner(messages, args.base, args.concurrency))
    print(json.dumps({"requests": len(messages), "answered": answered,
                      "phase_s": round(time.perf_counter() - started, 3)}))


if __name__ == "__main__":
    main()
