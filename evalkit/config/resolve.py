"""A suite's model entries resolved once, at the config edge, for every later stage.

What several stages need to agree on is decided here and nowhere else: which kind of backend a model
is (:func:`model_kind`), how many of its calls are in flight (:func:`effective_concurrency`: the
connection pool and the runner's workers alike), its API key (:func:`api_key`, one message whoever
asks) and its adapter's identity (hashed once per run, reused for the cache identity and
``run_models.adapter``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.config.model_specs import LiteLLMModel, VLLMModel
from evalkit.config.provenance import adapter_identity
from evalkit.config.run_spec import RunSpec
from evalkit.config.suite import LoadedSuite
from evalkit.errors import ConfigError
from evalkit.redact import register_secret

ModelEntry = LiteLLMModel | VLLMModel

# How many requests an in-process engine gets in flight unless the suite caps it: it batches, so it
# wants the whole held-out set at once.
INPROCESS_CONCURRENCY = 1024
# Kinds of model entry, one backend factory each (evalkit.backends.registry).
KINDS = ("litellm", "vllm/connect", "vllm/launch", "vllm/inprocess", "vllm/ray-data")
SELF_STARTED = frozenset({"vllm/launch", "vllm/inprocess", "vllm/ray-data"})


def model_kind(spec: ModelEntry) -> str:
    """``litellm`` or ``vllm/<mode>``: what the backend registry is keyed by."""
    if isinstance(spec, VLLMModel):
        return f"vllm/{spec.mode}"
    return spec.provider


def effective_concurrency(spec: ModelEntry, run: RunSpec) -> int:
    """Calls of this model in flight at once: the model's ``concurrency``, else the whole set for an
    in-process engine (it batches), else ``run.concurrency``; in open loop (``run.load``) its in-flight cap."""
    if run.load is not None:
        return run.load.max_in_flight
    if spec.concurrency:
        return spec.concurrency
    if model_kind(spec) in ("vllm/inprocess", "vllm/ray-data"):
        return INPROCESS_CONCURRENCY
    return run.concurrency


def missing_api_key(name: str, spec: ModelEntry, suite_file: str) -> ConfigError | None:
    """The error for a model whose ``api_key_env`` names an unset variable; None when nothing is missing."""
    env_var = spec.api_key_env
    if not env_var or os.environ.get(env_var):
        return None
    return ConfigError(f"environment variable {env_var} is not set; export it with the API key "
                       f"for model '{name}' (the suite stores only the variable's name)",
                       file=suite_file, key=f"models.{name}.api_key_env")


def api_key(name: str, spec: ModelEntry, suite_file: str) -> str | None:
    """The API key from the environment variable the suite names (the key is never stored); None when
    the model names none. The one place ``api_key_env`` is read: backends, validate and lm-eval ask here."""
    problem = missing_api_key(name, spec, suite_file)
    if problem is not None:
        raise problem
    key = os.environ[spec.api_key_env] if spec.api_key_env else None
    register_secret(key)  # redacted from every stored or printed string from now on
    return key


def adapter_folder(loaded: LoadedSuite, name: str, spec: VLLMModel) -> Path | None:
    """The adapter folder a launch / in-process model loads; a clear error when it is not there."""
    if not spec.adapter_path:
        return None
    path = loaded.resolve(spec.adapter_path)
    if not (path / "adapter_config.json").is_file():
        raise ConfigError(f"no LoRA adapter at {path} (expected adapter_config.json from peft)",
                          file=str(loaded.path), key=f"models.{name}.adapter_path")
    return path


@dataclass(frozen=True)
class ResolvedModel:
    """One model entry of a suite, resolved for a run.

    ``adapter_dir`` is the adapter folder (checked for the modes that load it); ``adapter`` its
    identity (path, weights hash, rank), computed once here.
    """

    name: str
    spec: ModelEntry
    kind: str
    concurrency: int
    adapter_dir: Path | None = None
    adapter: dict[str, Any] | None = None

    @property
    def self_started(self) -> bool:
        """Whether evalkit starts this model's engine itself (launch / in-process vLLM)."""
        return self.kind in SELF_STARTED


def resolve_model(loaded: LoadedSuite, name: str) -> ResolvedModel:
    spec = loaded.suite.models[name]
    if spec.api_bases and not spec.api_base:  # several replicas: a run without --ray uses the first
        spec = spec.model_copy(update={"api_base": spec.api_bases[0]})
    kind = model_kind(spec)
    folder = None
    if isinstance(spec, VLLMModel) and spec.adapter_path:
        folder = adapter_folder(loaded, name, spec) if kind in SELF_STARTED else loaded.resolve(spec.adapter_path)
    base = spec.base_model if isinstance(spec, VLLMModel) else None
    return ResolvedModel(name, spec, kind, effective_concurrency(spec, loaded.suite.run), folder,
                         adapter_identity(folder, base) if folder else None)


def resolve_models(loaded: LoadedSuite, names: Iterable[str]) -> dict[str, ResolvedModel]:
    """The chosen models of a suite, resolved (adapter folders checked and hashed), in the given order."""
    return {name: resolve_model(loaded, name) for name in names}
