"""The loopback OpenAI-compatible dev server, reached through real clients: openai SDK, LiteLLM, aiohttp."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from evalkit.testing.devserver import DevServer
from evalkit.testing.faults import Fault, FaultPlan
from evalkit.testing.replies import EchoResponder, Reply, Rule, RuleResponder, tokenize

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

KEY = "sk-devserver-test"
SPAM = "Subject: WIN A FREE CRUISE\n\nClick now to claim."
HAM = "Subject: Meeting moved to 3pm\n\nSee you in room 4."
INVOICE = "Subject: Invoice attached\n\nPlease pay by Friday."


def make_responder() -> RuleResponder:
    """'frontier' is right on every sample; 'tuned' calls the invoice spam, unsure of itself."""
    shared = [Rule(r"free cruise|won \$", Reply("spam", confidence=0.97, alternatives=["ham"])),
              Rule(r"say (\w+) twice", r"\1 \1")]
    return RuleResponder(rules=shared, default=Reply("ham", confidence=0.9, alternatives=["spam"]),
                         per_model={"frontier": [], "tuned": [Rule("invoice", Reply("spam", 0.55, ["ham"]))]})


@pytest.fixture(scope="module")
def shared_server() -> Iterator[DevServer]:
    with DevServer(make_responder(), api_key=KEY) as server:
        yield server


@pytest.fixture
def server(shared_server: DevServer) -> DevServer:
    shared_server.reset()
    shared_server.latency_ms, shared_server.ttft_ms = 0.0, None
    return shared_server


@pytest.fixture
def client(server: DevServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=10) as c:
        yield c


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Answer spam or ham."}, {"role": "user", "content": text}]


async def post(url: str, body: Any, *, key: str | None = KEY, timeout: float = 10.0,
               raw: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.post(url, data=raw if raw is not None else json.dumps(body), headers=headers) as resp:
            return resp.status, dict(resp.headers), await resp.read()


def sse_events(raw: bytes) -> list[Any]:
    out: list[Any] = []
    for line in raw.decode().split("\n\n"):
        if line.startswith("data: "):
            data = line[len("data: "):]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


# -- openai SDK -----------------------------------------------------------------------------------------


def test_tokenizer_round_trips_and_attaches_leading_space() -> None:
    text = "Hello, world!  It's 3pm.\n"
    assert tokenize(text) == ["Hello", ",", " world", "!", "  It", "'", "s", " 3pm", ".", "\n"]
    assert "".join(tokenize(text)) == text


def test_openai_chat_content_usage_and_shape(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(model="frontier", messages=chat(SPAM))
    assert out.object == "chat.completion" and out.id.startswith("chatcmpl-") and out.created > 0
    assert out.model == "frontier"
    choice = out.choices[0]
    assert (choice.message.role, choice.message.content, choice.finish_reason) == ("assistant", "spam", "stop")
    assert choice.logprobs is None
    prompt_tokens = len(tokenize("Answer spam or ham.\n" + SPAM))
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (prompt_tokens, 1)
    assert out.usage.total_tokens == prompt_tokens + 1


def test_finish_reason_length_at_max_tokens(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(model="frontier", messages=[{"role": "user", "content": "say again twice"}],
                                         max_tokens=1)
    assert (out.choices[0].message.content, out.choices[0].finish_reason) == ("again", "length")
    assert out.usage is not None and out.usage.completion_tokens == 1
    full = client.chat.completions.create(model="frontier", messages=[{"role": "user", "content": "say again twice"}])
    assert (full.choices[0].message.content, full.choices[0].finish_reason) == ("again again", "stop")


def test_openai_logprobs_follow_confidence(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(model="tuned", messages=chat(INVOICE), logprobs=True, top_logprobs=3)
    assert out.choices[0].message.content == "spam"
    assert out.choices[0].logprobs is not None and out.choices[0].logprobs.content is not None
    first = out.choices[0].logprobs.content[0]
    assert first.token == "spam" and first.bytes == list(b"spam")
    assert math.exp(first.logprob) == pytest.approx(0.55)
    tops = first.top_logprobs
    assert [t.token for t in tops][:2] == ["spam", "ham"] and len(tops) == 3
    assert sum(math.exp(t.logprob) for t in tops) <= 1.0
    assert math.exp(tops[1].logprob) > math.exp(tops[2].logprob)


def test_openai_stream_with_usage_and_logprobs(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="frontier", messages=[{"role": "user", "content": "say hi twice"}],
                                            stream=True, stream_options={"include_usage": True},
                                            logprobs=True, top_logprobs=2)
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" and c.model == "frontier" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hi hi"
    tokens = [e.token for c in chunks if c.choices and c.choices[0].logprobs
              for e in c.choices[0].logprobs.content or []]
    assert tokens == ["hi", " hi"]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2
    assert all(c.usage is None for c in chunks[:-1])


def test_legacy_completions_logprobs(client: openai.OpenAI) -> None:
    out = client.completions.create(model="frontier", prompt="Is this spam? free cruise", logprobs=2, max_tokens=5)
    choice = out.choices[0]
    assert (out.object, choice.text, choice.finish_reason) == ("text_completion", "spam", "stop")
    assert choice.logprobs is not None
    assert choice.logprobs.tokens == ["spam"] and choice.logprobs.text_offset == [0]
    assert math.exp(choice.logprobs.token_logprobs[0]) == pytest.approx(0.97)
    assert choice.logprobs.top_logprobs is not None
    assert list(choice.logprobs.top_logprobs[0]) == ["spam", "ham"]
    plain = client.completions.create(model="frontier", prompt="hello")
    assert plain.choices[0].logprobs is None and plain.usage is not None and plain.usage.prompt_tokens == 1


def test_per_model_rules_one_server_plays_two_models(client: openai.OpenAI) -> None:
    def answer(model: str, text: str) -> str | None:
        return client.chat.completions.create(model=model, messages=chat(text)).choices[0].message.content

    assert [answer("frontier", t) for t in (SPAM, HAM, INVOICE)] == ["spam", "ham", "ham"]
    assert [answer("tuned", t) for t in (SPAM, HAM, INVOICE)] == ["spam", "ham", "spam"]


def test_unknown_model_404_and_bad_key_401(server: DevServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as nf:
        client.chat.completions.create(model="gpt-nope", messages=chat(HAM))
    assert nf.value.code == "model_not_found"
    with openai.OpenAI(base_url=server.url, api_key="wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="frontier", messages=chat(HAM))
    status, _, body = asyncio.run(post(server.url + "/chat/completions",
                                       {"model": "frontier", "messages": chat(HAM)}, key=None))
    err = json.loads(body)["error"]
    assert status == 401 and set(err) >= {"message", "type", "code"} and err["code"] == "invalid_api_key"


# -- LiteLLM ----------------------------------------------------------------------------------------------


def test_litellm_completion_with_logprobs(server: DevServer) -> None:
    import litellm

    resp = litellm.completion(model="openai/tuned", api_base=server.url, api_key=KEY, messages=chat(INVOICE),
                              logprobs=True, top_logprobs=3, max_tokens=8, num_retries=0)
    assert resp.choices[0].message.content == "spam"
    assert resp.usage.completion_tokens == 1
    first = resp.choices[0].logprobs.content[0]
    assert math.exp(first.logprob) == pytest.approx(0.55)
    assert [t.token for t in first.top_logprobs][:2] == ["spam", "ham"]
    assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert server.requests[-1].body is not None and server.requests[-1].body["top_logprobs"] == 3


def test_litellm_stream_include_usage(server: DevServer) -> None:
    import litellm

    stream = litellm.completion(model="openai/frontier", api_base=server.url, api_key=KEY,
                                messages=[{"role": "user", "content": "say yes twice"}], stream=True,
                                stream_options={"include_usage": True}, num_retries=0)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "yes yes"
    usages = [getattr(c, "usage", None) for c in chunks if getattr(c, "usage", None)]
    assert usages and usages[-1].completion_tokens == 2
    assert server.requests[-1].body is not None and server.requests[-1].body["stream"] is True


# -- raw aiohttp: protocol edges and faults ------------------------------------------------------------------


def test_health_models_and_malformed_json(server: DevServer) -> None:
    async def go() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.base_url + "/health") as resp:
                assert resp.status == 200
            async with session.get(server.url + "/models", headers={"Authorization": f"Bearer {KEY}"}) as resp:
                data = await resp.json()
                assert [m["id"] for m in data["data"]] == ["frontier", "tuned"] and data["object"] == "list"
        status, _, body = await post(server.url + "/chat/completions", None, raw=b"{not json")
        assert status == 400 and "error" in json.loads(body)

    asyncio.run(go())


def test_status_faults_429_retry_after_then_500_then_ok(server: DevServer) -> None:
    server.faults.add(Fault("status", status=429, retry_after=1, times=2), Fault("status", status=500, times=1))
    body = {"model": "frontier", "messages": chat(HAM)}

    async def go() -> list[tuple[int, dict[str, str], bytes]]:
        return [await post(server.url + "/chat/completions", body) for _ in range(4)]

    results = asyncio.run(go())
    assert [r[0] for r in results] == [429, 429, 500, 200]
    assert results[0][1]["Retry-After"] == "1"
    assert json.loads(results[0][2])["error"]["code"] == "rate_limit_exceeded"
    assert [r.fault for r in server.requests] == ["status", "status", "status", None]


def test_openai_sdk_sees_retry_after(server: DevServer, client: openai.OpenAI) -> None:
    server.faults.add(Fault("status", status=429, retry_after=2, times=1))
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="frontier", messages=chat(HAM))
    assert exc.value.response.headers["retry-after"] == "2"
    assert client.chat.completions.create(model="frontier", messages=chat(HAM)).choices[0].message.content == "ham"


def test_every_nth_and_per_model_faults(server: DevServer) -> None:
    server.faults = FaultPlan([Fault("status", status=503, every=3), Fault("status", status=500, model="tuned")])

    async def go() -> tuple[list[int], int]:
        statuses = [(await post(server.url + "/chat/completions", {"model": "frontier", "messages": chat(HAM)}))[0]
                    for _ in range(6)]
        tuned = await post(server.url + "/chat/completions", {"model": "tuned", "messages": chat(HAM)})
        return statuses, tuned[0]

    statuses, tuned = asyncio.run(go())
    assert statuses == [200, 200, 503, 200, 200, 503] and tuned == 500


def test_garbage_and_truncated_bodies(server: DevServer) -> None:
    server.faults.add(Fault("garbage", times=1), Fault("truncate", times=2))

    async def go() -> None:
        body = {"model": "frontier", "messages": chat(SPAM)}
        status, _, raw = await post(server.url + "/chat/completions", body)
        assert status == 200
        with pytest.raises(ValueError):
            json.loads(raw)
        status, _, raw = await post(server.url + "/chat/completions", body)
        assert status == 200
        with pytest.raises(ValueError):
            json.loads(raw)
        status, _, raw = await post(server.url + "/chat/completions",
                                    {"model": "frontier", "messages": [{"role": "user", "content": "say ok twice"}],
                                     "stream": True, "stream_options": {"include_usage": True}})
        events = sse_events(raw)
        assert status == 200 and events and "[DONE]" not in events
        assert not any(c["choices"] and c["choices"][0]["finish_reason"] for c in events)
        status, _, raw = await post(server.url + "/chat/completions",  # the plan is used up: a whole stream
                                    {"model": "frontier", "messages": chat(SPAM), "stream": True})
        assert sse_events(raw)[-1] == "[DONE]"

    asyncio.run(go())


def test_reset_raises_connection_error_and_hang_times_out(server: DevServer) -> None:
    server.faults.add(Fault("reset", times=1), Fault("hang", hang_s=30, times=1))
    body = {"model": "frontier", "messages": chat(HAM)}

    async def go() -> None:
        with pytest.raises(aiohttp.ClientError):
            await post(server.url + "/chat/completions", body)
        start = time.perf_counter()
        with pytest.raises(asyncio.TimeoutError):
            await post(server.url + "/chat/completions", body, timeout=0.3)
        assert time.perf_counter() - start < 2
        assert (await post(server.url + "/chat/completions", body))[0] == 200

    asyncio.run(go())
    with openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0) as c:
        server.faults.add(Fault("reset", times=1))
        with pytest.raises(openai.APIConnectionError):
            c.chat.completions.create(model="frontier", messages=chat(HAM))


def test_request_log_and_counts(server: DevServer, client: openai.OpenAI) -> None:
    for text in (SPAM, HAM):
        client.chat.completions.create(model="frontier", messages=chat(text))
    client.chat.completions.create(model="tuned", messages=chat(HAM))
    assert [r.index for r in server.requests] == sorted(r.index for r in server.requests)
    assert server.counts == {"frontier": 2, "tuned": 1}
    assert len(server.calls(model="frontier", path="/v1/chat/completions")) == 2
    rec = server.requests[0]
    assert rec.method == "POST" and rec.model == "frontier" and rec.headers["authorization"] == f"Bearer {KEY}"
    assert rec.headers["Authorization"] == rec.headers.get("AUTHORIZATION") == f"Bearer {KEY}"
    assert rec.body is not None and rec.body["messages"][1]["content"] == SPAM and rec.time > 0
    server.reset()
    assert server.requests == [] and not server.counts


# -- running modes -----------------------------------------------------------------------------------------


def test_two_servers_at_once() -> None:
    with DevServer(RuleResponder(default="one")) as a, DevServer(RuleResponder(default="two")) as b:
        assert a.port != b.port
        answers = []
        for srv in (a, b):
            with openai.OpenAI(base_url=srv.url, api_key="x", max_retries=0) as c:
                answers.append(c.chat.completions.create(model="any", messages=chat(HAM)).choices[0].message.content)
        assert answers == ["one", "two"] and len(a.requests) == len(b.requests) == 1


def test_async_in_process_latency_does_not_serialise() -> None:
    async def go() -> float:
        async with DevServer(EchoResponder(), latency_ms=200) as srv:
            body = {"model": "m", "messages": [{"role": "user", "content": "echo me"}]}
            start = time.perf_counter()
            results = await asyncio.gather(*(post(srv.url + "/chat/completions", body, key=None) for _ in range(20)))
            elapsed = time.perf_counter() - start
            assert {json.loads(r[2])["choices"][0]["message"]["content"] for r in results} == {"echo me"}
            return elapsed

    assert 0.2 <= asyncio.run(go()) < 1.5


def test_evalkit_client_stream_and_ttft() -> None:
    from evalkit.backends.openai_http import OpenAICompatibleClient
    from evalkit.records import ChatRequest

    async def go() -> None:
        async with DevServer(make_responder(), ttft_ms=50, api_key=KEY) as srv:
            client = OpenAICompatibleClient(srv.url, "tuned", api_key=KEY)
            try:
                out = await client.complete(ChatRequest(messages=chat(INVOICE), params={"max_tokens": 8},
                                                        logprobs=True, top_logprobs=2, stream=True))
            finally:
                await client.aclose()
        assert (out.text, out.finish_reason, out.completion_tokens) == ("spam", "stop", 1)
        assert out.ttft_ms is not None and out.ttft_ms >= 45
        assert out.logprobs is not None and math.exp(out.logprobs[0]["logprob"]) == pytest.approx(0.55)

    asyncio.run(go())


def test_rules_file_and_cli(tmp_path: Path) -> None:
    rules = {"models": {"frontier": {"rules": [{"pattern": "label: (\\w+)", "reply": "\\1", "confidence": 0.8,
                                                "delay_ms": 1}],
                                     "default": {"reply": "ham"}},
                        "tuned": {"default": "spam"}},
             "default_model": {"rules": [{"pattern": "shared", "reply": "from shared"}]}}
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    responder = RuleResponder.from_file(path)
    assert responder.models == ["frontier", "tuned"]
    assert responder({"model": "frontier", "messages": [{"role": "user", "content": "LABEL: Spam"}]}).text == "Spam"
    assert responder({"model": "tuned", "messages": [{"role": "user", "content": "shared"}]}).text == "from shared"
    assert responder({"model": "tuned", "messages": [{"role": "user", "content": "x"}]}).text == "spam"

    proc = subprocess.Popen([sys.executable, "-m", "evalkit.testing", "--port", "0", "--rules", str(path),
                             "--latency-ms", "1", "--api-key", "k"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        with openai.OpenAI(base_url=url, api_key="k", max_retries=0) as c:
            out = c.chat.completions.create(model="frontier", messages=[{"role": "user", "content": "label: ok"}])
            assert out.choices[0].message.content == "ok"
            with pytest.raises(openai.NotFoundError):
                c.chat.completions.create(model="other", messages=chat(HAM))
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0
