"""One backend contract: declared capabilities and hooks, the provider registry, model config resolved
once (concurrency, API key, adapter identity), BackendError's fields, and the in-process engine's
per-request timeout and parameters.

The in-process tests run the real batcher and backend of ``evalkit.backends.vllm_inprocess`` on a
small stand-in for ``vllm.LLM`` (an object with ``chat``), so they need no vLLM; the real engine is
covered by tests/test_vllm_engine.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import LABEL_SUITE, TEST_KEY, run_cli

from evalkit.backends import Capabilities, create_backends
from evalkit.backends.registry import FACTORIES, factory_class
from evalkit.backends.vllm_inprocess import InProcessEngine, InProcessFactory, VLLMInProcessBackend
from evalkit.config.loader import load_suite
from evalkit.config.model_specs import LiteLLMModel, VLLMModel
from evalkit.config.resolve import INPROCESS_CONCURRENCY, KINDS, ResolvedModel, effective_concurrency, model_kind, resolve_models
from evalkit.config.run_spec import RunSpec
from evalkit.errors import BackendError, ConfigError
from evalkit.records import ChatRequest


class StandInLLM:
    """What the batcher needs of ``vllm.LLM``: ``chat(messages, sampling, lora_request=, use_tqdm=)``."""

    def __init__(self, block: threading.Event | None = None) -> None:
        self.block = block
        self.batches: list[list[Any]] = []

    def chat(self, messages: list[Any], sampling: list[Any], lora_request: list[Any], use_tqdm: bool) -> list[Any]:
        if self.block is not None:
            self.block.wait(30)  # a stuck engine; the test lets it go at the end
        self.batches.append(list(sampling))
        return [SimpleNamespace(prompt_token_ids=[1, 2, 3],
                                outputs=[SimpleNamespace(text=f"t={s['temperature']}", finish_reason="stop",
                                                         token_ids=[7], logprobs=None)])
                for s in sampling]


def _sampling(**kwargs: Any) -> dict[str, Any]:
    return dict(kwargs)


def _inprocess(llm: StandInLLM, params: dict[str, Any] | None = None) -> VLLMInProcessBackend:
    spec = VLLMModel(provider="vllm", mode="inprocess", base_model="tiny", params=params or {})
    model = ResolvedModel("tiny", spec, "vllm/inprocess", effective_concurrency(spec, RunSpec()))
    return VLLMInProcessBackend(model, InProcessEngine(llm, "tiny", sampling_params=_sampling), {})


def _request(timeout_s: float = 30.0, **params: Any) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": "hi"}], params=params, stream=False,
                       timeout_s=timeout_s)


def test_inprocess_request_that_does_not_finish_in_time_is_a_retryable_timeout():
    stuck = threading.Event()
    backend = _inprocess(StandInLLM(block=stuck))

    async def call() -> BackendError:
        with pytest.raises(BackendError) as caught:
            await backend.complete(_request(timeout_s=0.3, temperature=0))
        await backend.aclose()
        return caught.value

    started = time.monotonic()
    try:
        error = asyncio.run(call())
        # the run's event loop ends although the generation is still stuck in its thread
        assert time.monotonic() - started < 10
    finally:
        stuck.set()
    assert error.kind == "timeout" and error.retryable
    assert "0.3 s (run.timeout_s)" in str(error)


def test_inprocess_requests_are_sampled_with_their_own_params():
    llm = StandInLLM()
    backend = _inprocess(llm, params={"temperature": 0})

    async def calls() -> list[Any]:
        done = await asyncio.gather(backend.complete(_request(temperature=0, max_completion_tokens=4)),
                                    backend.complete(_request(temperature=0.7, top_p=0.9)))
        await backend.aclose()
        return done

    first, second = asyncio.run(calls())
    assert llm.batches == [[{"temperature": 0, "max_tokens": 4}, {"temperature": 0.7, "top_p": 0.9}]]
    assert (first.text, second.text) == ("t=0", "t=0.7")
    assert second.sent_params == {"temperature": 0.7, "top_p": 0.9, "engine": "vllm.LLM", "latency_kind": "batch"}


def test_inprocess_request_with_a_parameter_the_engine_lacks_fails_without_calling_it():
    llm = StandInLLM()
    backend = _inprocess(llm)
    with pytest.raises(BackendError) as caught:
        asyncio.run(backend.complete(_request(temperature=0, logit_bias={"1": 2})))
    assert not caught.value.retryable and "logit_bias" in str(caught.value) and llm.batches == []


INPROCESS_SUITE = LABEL_SUITE.split("models:")[0].format() + """models:
  local:
    provider: vllm
    mode: inprocess
    base_model: some/base
    params: {max_tokens: 4, response_format: {type: json_object}}
"""


def test_inprocess_params_are_checked_before_the_engine_loads(make_suite, email_rows):
    loaded = load_suite(make_suite(INPROCESS_SUITE, rows=email_rows))
    factory = InProcessFactory(SimpleNamespace(loaded=loaded, models={}, suite_file=str(loaded.path)))  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as caught:
        factory.build(resolve_models(loaded, ["local"])["local"])  # would need vLLM and a model past this check
    assert caught.value.key == "models.local.params" and "response_format" in str(caught.value)
    assert "have no in-process vLLM equivalent" in str(caught.value)


def test_effective_concurrency_is_one_rule():
    run = RunSpec(concurrency=5)
    litellm = LiteLLMModel(provider="litellm", model="openai/x")
    connect = VLLMModel(provider="vllm", api_base="http://127.0.0.1:9/v1", base_model="b")
    inprocess = VLLMModel(provider="vllm", mode="inprocess", base_model="b")
    assert effective_concurrency(litellm, run) == effective_concurrency(connect, run) == 5
    assert effective_concurrency(inprocess, run) == INPROCESS_CONCURRENCY  # it batches: the whole set
    for spec in (litellm, connect, inprocess):
        assert effective_concurrency(spec.model_copy(update={"concurrency": 3}), run) == 3


def test_connection_pool_and_workers_share_the_concurrency(make_suite, email_rows, monkeypatch):
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    text = LABEL_SUITE.format(base="http://127.0.0.1:9/v1").replace("    stream: false\n",
                                                                     "    stream: false\n    concurrency: 3\n")
    loaded = load_suite(make_suite(text, rows=email_rows))
    backends = create_backends(loaded, ["tuned"])
    tuned = backends["tuned"]
    assert tuned.resolved.concurrency == 3 == tuned._client._max_connections  # type: ignore[attr-defined]
    asyncio.run(tuned.aclose())


RETENTION_SUITE = LABEL_SUITE.replace("    api_key_env: EVALKIT_TEST_KEY\n    params: {{temperature: 0, max_tokens: 8}}\n"
                                      "  tuned:", "    params: {{temperature: 0, max_tokens: 8}}\n  tuned:") + """
retention:
  tasks: [evalkit_capitals]
gates:
  baseline: frontier
  candidate: tuned
"""


def test_missing_api_key_reads_the_same_from_backends_validate_and_lm_eval(make_suite, email_rows, cli_env,
                                                                            monkeypatch):
    pytest.importorskip("lm_eval")
    from evalkit.interop.lm_eval import plan_retention

    monkeypatch.delenv("EVALKIT_TEST_KEY", raising=False)
    path = make_suite(RETENTION_SUITE.format(base="http://127.0.0.1:9/v1"), rows=email_rows)
    loaded = load_suite(path)
    with pytest.raises(ConfigError) as from_backends:
        create_backends(loaded, ["tuned"])
    with pytest.raises(ConfigError) as from_lm_eval:
        plan_retention(loaded)
    cli_env.pop("EVALKIT_TEST_KEY")
    validate = run_cli(["validate", str(path)], cli_env)
    assert validate.returncode == 0, validate.stderr
    message = str(from_backends.value)
    assert "environment variable EVALKIT_TEST_KEY is not set" in message
    assert str(from_lm_eval.value) == message and from_lm_eval.value.key == "models.tuned.api_key_env"
    assert validate.stderr.count("warning: ") == 1 and message in validate.stderr


def test_registry_resolves_every_provider_and_mode():
    from evalkit.backends.litellm_backend import LiteLLMFactory
    from evalkit.backends.vllm import ConnectFactory, LaunchFactory
    from evalkit.backends.vllm_ray_data import RayDataFactory

    assert set(FACTORIES) == set(KINDS)
    expected = {"litellm": LiteLLMFactory, "vllm/connect": ConnectFactory, "vllm/launch": LaunchFactory,
                "vllm/inprocess": InProcessFactory, "vllm/ray-data": RayDataFactory}
    assert {kind: factory_class(kind) for kind in KINDS} == expected
    specs = [LiteLLMModel(provider="litellm", model="openai/x"),
             VLLMModel(provider="vllm", api_base="http://h/v1", base_model="b"),
             VLLMModel(provider="vllm", mode="launch", base_model="b"),
             VLLMModel(provider="vllm", mode="inprocess", base_model="b"),
             VLLMModel(provider="vllm", mode="ray-data", base_model="b")]
    assert [model_kind(s) for s in specs] == list(KINDS)
    with pytest.raises(KeyError, match="no backend registered for model kind 'vllm/nope'"):
        factory_class("vllm/nope")


def test_backends_declare_capabilities_and_answer_the_engine_hooks(make_suite, email_rows, monkeypatch):
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    loaded = load_suite(make_suite(LABEL_SUITE.format(base="http://127.0.0.1:9/v1"), rows=email_rows))
    backends = create_backends(loaded, ["frontier", "tuned"])
    for backend in backends.values():
        assert backend.capabilities == Capabilities(streaming=True, logprobs=True, constrained_decoding=True,
                                                    batch_latency=False)
        assert backend.engine_info() is None and backend.live_endpoint() is None
        backend.release_server()  # nothing to release: a no-op
    assert (backends["frontier"].served_model, backends["tuned"].served_model) == ("openai/frontier", "tuned")
    inprocess = _inprocess(StandInLLM())
    assert inprocess.capabilities.batch_latency and not inprocess.capabilities.streaming
    assert inprocess.engine_info()["mode"] == "inprocess" and inprocess.live_endpoint() is None
    asyncio.run(_close(list(backends.values()) + [inprocess]))


async def _close(backends: list[Any]) -> None:
    for backend in backends:
        await backend.aclose()


def test_adapter_is_hashed_once_per_run_and_reused(make_suite, email_rows, monkeypatch, tmp_path):
    """The adapter's weights are hashed once, when the run starts: run_models.adapter records that hash even
    when the file changes while the model is called (a second hash at the end would record the new weights)."""
    import hashlib

    from conftest import TRIAGE_RULES

    from evalkit.engine.runner import run_suite
    from evalkit.store import Store
    from evalkit.testing.devserver import DevServer
    from evalkit.testing.replies import RuleResponder

    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    adapter = tmp_path / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8, "lora_alpha": 16}))
    weights = adapter / "adapter_model.safetensors"
    weights.write_bytes(b"weights at the start")
    rules = RuleResponder.from_dict(TRIAGE_RULES)

    def answer_and_retrain(body: dict[str, Any]) -> Any:
        weights.write_bytes(b"weights rewritten while the run calls the model")
        return rules(body)

    with DevServer(answer_and_retrain, api_key=TEST_KEY, latency_ms=2) as server:
        text = LABEL_SUITE.format(base=server.url).replace("    adapter: tuned\n",
                                                           f"    adapter: tuned\n    adapter_path: {adapter}\n")
        loaded = load_suite(make_suite(text, rows=email_rows))
        summary = run_suite(loaded, str(tmp_path / "run.duckdb"), ["tuned"])
    assert summary.status == "complete" and len(server.requests) > 0
    with Store(str(tmp_path / "run.duckdb"), read_only=True) as store:
        stored = {m["model"]: m for m in store.run_models(summary.run_id)}["tuned"]["adapter"]
    stored = json.loads(stored) if isinstance(stored, str) else stored
    assert stored["weights_sha256"] == hashlib.sha256(b"weights at the start").hexdigest()


def test_prefixed_error_keeps_its_class_and_fields():
    config = ConfigError("no such key", file="suite.yaml", line=3, key="models.x.params")
    again = config.prefixed("run r1 is stored, but its retention check failed: ")
    assert type(again) is ConfigError and (again.file, again.line, again.key) == ("suite.yaml", 3, "models.x.params")
    assert str(again) == "run r1 is stored, but its retention check failed: suite.yaml:3: models.x.params: no such key"
    backend = BackendError("HTTP 503", retryable=True, status=503, kind="http", attempts=4)
    copy = backend.prefixed("x: ")
    assert (copy.retryable, copy.status, copy.kind, copy.attempts, str(copy)) == (True, 503, "http", 4, "x: HTTP 503")
    assert BackendError("boom").attempts == 1 and BackendError("boom").kind == "error"
