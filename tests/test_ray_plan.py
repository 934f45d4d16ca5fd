"""What a ``--ray`` run plans before any cluster is touched, and the Ray Data LLM row mapping (no Ray needed):
shard counts and endpoints, GPUs per shard, the suite keys' validation, what --ray refuses, processor config."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import LABEL_SUITE, write_jsonl

from evalkit.backends.vllm_ray_data import INDEX, RowOutput, answer_row, chat_row, processor_kwargs
from evalkit.config.loader import load_suite
from evalkit.config.ray_spec import RaySpec
from evalkit.config.resolve import resolve_models
from evalkit.config.shards import Shard
from evalkit.engine.ray_run import shard_count, shard_gpus, shard_models
from evalkit.engine.ray_suite import check_ray_run
from evalkit.errors import ConfigError

ENDPOINTS = """
evalkit: 1
name: plan
dataset: {path: data.jsonl}
prompt: {user: "{{ q }}"}
output: {type: text}
target: {field: a}
models:
  api: {provider: litellm, model: openai/x, api_bases: ["http://a:1/v1", "http://b:1/v1", "http://c:1/v1"]}
  one: {provider: vllm, base_model: m, api_base: "http://solo:1/v1"}
  two: {provider: vllm, base_model: m, api_bases: ["http://p:1/v1", "http://q:1/v1"]}
  big: {provider: vllm, mode: launch, base_model: org/model, server_args: [--tensor-parallel-size, "2"]}
  small: {provider: vllm, mode: launch, base_model: org/other}
"""


def _load(tmp_path: Path, text: str) -> object:
    write_jsonl(tmp_path / "data.jsonl", [{"id": "1", "q": "x", "a": "y"}])
    (tmp_path / "s.yaml").write_text(textwrap.dedent(text).lstrip())
    return load_suite(tmp_path / "s.yaml")


def test_shards_follow_the_endpoint_lists_and_the_gpus_each_replica_needs(tmp_path):
    loaded = _load(tmp_path, ENDPOINTS)
    resolved = resolve_models(loaded, ["api", "one", "two"])
    assert resolved["api"].spec.api_base == "http://a:1/v1"  # a run without --ray: the first endpoint
    assert shard_count(RaySpec(), resolved, 0.0, 0.0) == 3     # the longest list: one shard per endpoint
    assert shard_count(RaySpec(shards=5), resolved, 0.0, 0.0) == 5
    bases = {i: {name: m.spec.api_base for name, m in shard_models(resolved, Shard(i, 3)).items()} for i in (1, 2, 3)}
    assert bases[1] == {"api": "http://a:1/v1", "one": "http://solo:1/v1", "two": "http://p:1/v1"}
    assert bases[2] == {"api": "http://b:1/v1", "one": "http://solo:1/v1", "two": "http://q:1/v1"}
    assert bases[3]["api"] == "http://c:1/v1" and bases[3]["two"] == "http://p:1/v1"  # round robin
    launched = resolve_models(loaded, ["big", "small"])
    assert shard_gpus(launched) == 3.0                       # tp 2 for one server, 1 for the other
    assert shard_gpus(resolve_models(loaded, ["api"])) == 0.0
    assert shard_count(RaySpec(), launched, 3.0, 8.0) == 2   # 8 GPUs, 3 per shard
    assert shard_count(RaySpec(), launched, 3.0, 2.0) == 1


@pytest.mark.parametrize("models, words", [
    ('m: {provider: litellm, model: x, api_base: "http://a/v1", api_bases: ["http://b/v1"]}', "not both"),
    ('m: {provider: vllm, base_model: b, mode: launch, api_bases: ["http://b/v1"]}', "remove api_base"),
    ('m: {provider: vllm, base_model: b, api_bases: []}', "at least 1"),
    ('m: {provider: vllm, base_model: b, mode: inprocess, processor_args: {batch_size: 4}}', "processor_args"),
    ('m: {provider: vllm, base_model: b, mode: ray-data, api_base: "http://a/v1"}', "remove api_base"),
    ('m: {provider: vllm, base_model: b, mode: ray-data, stream: true}', "cannot stream"),
])
def test_endpoint_lists_and_ray_data_keys_are_checked(tmp_path, models, words):
    text = ENDPOINTS.split("models:")[0] + "models:\n  " + models + "\n"
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    assert words in str(err.value)


def test_what_a_ray_run_refuses_before_starting(tmp_path, make_suite):
    base = LABEL_SUITE.format(base="http://127.0.0.1:9/v1")
    for extra, key in (("  load: {rate_per_s: 5}\n", "run.load"), ("  sequential_models: true\n", "run.sequential_models")):
        suite = make_suite(base + extra, rows=[{"id": "1", "subject": "s", "body": "b", "label": "ham", "slice": "x"}])
        with pytest.raises(ConfigError) as err:
            check_ray_run(load_suite(suite), ["frontier", "tuned"])
        assert key in str(err.value)
    ok = make_suite(base + "  ray: {shards: 4, num_gpus: 0, resources: {edge: 1}}\n",
                    rows=[{"id": "1", "subject": "s", "body": "b", "label": "ham", "slice": "x"}])
    loaded = load_suite(ok)
    check_ray_run(loaded, ["frontier", "tuned"])
    assert loaded.suite.run.ray == RaySpec(shards=4, num_gpus=0, resources={"edge": 1})


@pytest.mark.slow  # importing ray.data.llm takes seconds
def test_ray_data_processor_config_enables_lora_for_the_adapters(tmp_path):
    adapter = tmp_path / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 16, "lora_alpha": 32}))
    kwargs = processor_kwargs("/models/base", {"tuned": adapter}, {"max_model_len": 2048},
                              {"batch_size": 16, "concurrency": 2})
    assert kwargs == {"model_source": "/models/base", "batch_size": 16, "concurrency": 2,
                      "engine_kwargs": {"max_model_len": 2048, "enable_lora": True, "max_loras": 1, "max_lora_rank": 16}}
    assert processor_kwargs("b", {}, {}, {})["engine_kwargs"] == {}  # no adapters: no LoRA
    ray_llm = pytest.importorskip("ray.data.llm")
    config = ray_llm.vLLMEngineProcessorConfig(**kwargs)  # Ray's own validation of what evalkit builds
    assert config.engine_kwargs["enable_lora"] and config.batch_size == 16


def test_ray_data_answer_rows_become_completions_with_logprobs():
    row = {INDEX: 3, "messages": [{"role": "user", "content": "hi"}], "sampling_params": {"max_tokens": 2},
           "model": "/adapters/tuned", "prompt": "hi", "num_input_tokens": 5, "generated_text": "spam",
           "generated_tokens": [11], "num_generated_tokens": 1,
           "logprobs": [{11: {"logprob": -0.1, "rank": 1, "decoded_token": "spam"},
                         12: {"logprob": -2.5, "rank": 2, "decoded_token": "ham"}}]}
    assert chat_row(row) == {INDEX: 3, "messages": row["messages"], "sampling_params": {"max_tokens": 2},
                             "model": "/adapters/tuned"}
    out = RowOutput.from_row(answer_row(row), max_tokens=2)
    choice = out.outputs[0]
    assert (choice.text, choice.token_ids, choice.finish_reason, len(out.prompt_token_ids)) == ("spam", [11], "stop", 5)
    assert choice.logprobs is not None and choice.logprobs[0][11].logprob == -0.1
    assert RowOutput.from_row(answer_row({**row, "num_generated_tokens": 2}), 2).outputs[0].finish_reason == "length"
    with pytest.raises(Exception, match="failed on a request: boom"):
        RowOutput.from_row(answer_row({**row, "__inference_error__": "boom"}), 2)
