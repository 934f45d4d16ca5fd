"""Models on a vLLM engine, in three modes with one per-sample record format.

- ``connect``: a running OpenAI-compatible vLLM server (``api_base``).
- ``launch``: a server evalkit starts (:mod:`evalkit.backends.vllm_launch`), one per base model,
  shared by that base's adapters; then called exactly like ``connect``.
- ``inprocess``: ``vllm.LLM`` inside evalkit (:mod:`evalkit.backends.vllm_inprocess`).

The served model is the LoRA module name when an adapter is given, else the base model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.backends.base import BackendBase
from evalkit.backends.openai_http import OpenAICompatibleClient
from evalkit.backends.registry import BuildContext
from evalkit.backends.served_identity import is_loopback, served_identity
from evalkit.backends.vllm_launch import POOL, LaunchedServer, ServerSpec
from evalkit.config.model_specs import VLLMModel
from evalkit.config.resolve import ResolvedModel, api_key
from evalkit.config.suite import LoadedSuite
from evalkit.errors import ConfigError
from evalkit.records import ChatRequest, Completion


class VLLMServerBackend(BackendBase):
    """A base model or one of its LoRA adapters on a vLLM server (connected to, or launched)."""

    def __init__(self, model: ResolvedModel, api_key: str | None, max_connections: int = 64,
                 api_base: str | None = None, server: LaunchedServer | None = None,
                 identity: dict[str, Any] | None = None) -> None:
        spec = model.spec
        assert isinstance(spec, VLLMModel)
        self.name = model.name
        self.resolved = model
        self.spec = spec
        self.server = server
        self.served_model = spec.adapter or (server.spec.served_name if server else spec.base_model)
        self._identity = identity or {"provider": "vllm", "api_base": spec.api_base, "base_model": spec.base_model,
                                      "adapter": spec.adapter, "params": spec.params}
        self._api_key = api_key
        self._client = OpenAICompatibleClient(api_base or spec.api_base or "", self.served_model, api_key,
                                              max_connections)

    def identity(self) -> dict[str, Any]:
        return self._identity

    def prepare(self) -> None:
        """A server on loopback (``mode: connect``) is known by what it serves, not by its port."""
        base = self.spec.api_base
        if self.server is None and is_loopback(base) and self._identity.get("api_base") == base:
            served = served_identity(base or "", self.served_model, self._api_key)
            if served is not None:
                self._identity = {**{k: v for k, v in self._identity.items() if k != "api_base"},
                                  "server": served,
                                  "adapter_sha256": (self.resolved.adapter or {}).get("weights_sha256")}

    def engine_info(self) -> dict[str, Any] | None:
        """The launched server's PID, address, command and log file (None when connecting)."""
        return self.server.info() if self.server else None

    async def complete(self, request: ChatRequest) -> Completion:
        return await self._client.complete(request)

    async def aclose(self) -> None:
        # The launched server outlives the client: the run releases it (release_servers) after its
        # retention check, which needs the server too.
        await self._client.aclose()

    def live_endpoint(self) -> tuple[str, str] | None:
        """(api_base, the base model's served name) of the launched server; None when connecting."""
        return (self.server.api_base, self.server.spec.served_name) if self.server else None

    def release_server(self) -> None:
        if self.server is not None:
            POOL.release(self.server)
            self.server = None


def resolve_base(loaded: LoadedSuite, base_model: str) -> str:
    """A base model given as a folder relative to the suite becomes an absolute path; else a hub id."""
    local = loaded.resolve(base_model)
    return str(local) if local.exists() else base_model


def engine_identity(model: ResolvedModel) -> dict[str, Any]:
    """What makes a self-started engine's answers what they are: base, adapter weights, params, flags.

    The port, PID and absolute paths are left out, so a rerun on another day hits the cache. The
    adapter's weights hash is the one the model was resolved with (hashed once per run).
    """
    spec = model.spec
    assert isinstance(spec, VLLMModel)
    weights = model.adapter
    return {"provider": "vllm", "mode": spec.mode, "base_model": spec.base_model, "adapter": spec.adapter,
            "adapter_sha256": weights.get("weights_sha256") if weights else None, "params": spec.params,
            "server_args": spec.server_args, "engine_args": spec.engine_args}


def launch_specs(loaded: LoadedSuite,
                 models: dict[str, ResolvedModel]) -> dict[str, tuple[tuple[Any, ...], ServerSpec]]:
    """For each launch-mode model: the key of its server and that server's spec (all the base's adapters)."""
    groups: dict[tuple[Any, ...], ServerSpec] = {}
    keys: dict[str, tuple[Any, ...]] = {}
    for name, model in models.items():
        spec = model.spec
        if model.kind != "vllm/launch" or not isinstance(spec, VLLMModel):
            continue
        base = resolve_base(loaded, spec.base_model)
        served = spec.served_name or (Path(base).name if Path(base).exists() else spec.base_model)
        key = (base, served, tuple(spec.server_args))
        group = groups.setdefault(key, ServerSpec(base, served, tuple(spec.server_args),
                                                  startup_timeout_s=spec.startup_timeout_s,
                                                  warmup=loaded.suite.run.warmup > 0))
        group.startup_timeout_s = max(group.startup_timeout_s, spec.startup_timeout_s)
        adapter = model.adapter_dir
        if spec.adapter and adapter is not None:
            known = group.adapters.get(spec.adapter)
            if known is not None and known != adapter:
                raise ConfigError(f"adapter name '{spec.adapter}' is given two folders on one server "
                                  f"({known} and {adapter}); give each adapter its own name",
                                  file=str(loaded.path), key=f"models.{name}.adapter")
            group.adapters[spec.adapter] = adapter
        keys[name] = key
    return {name: (key, groups[key]) for name, key in keys.items()}


class ConnectFactory:
    """``mode: connect``: evalkit's own client against a server the user runs."""

    def __init__(self, context: BuildContext) -> None:
        self.context = context

    def build(self, model: ResolvedModel) -> VLLMServerBackend:
        return VLLMServerBackend(model, api_key(model.name, model.spec, self.context.suite_file),
                                 max_connections=model.concurrency)


class LaunchFactory:
    """``mode: launch``: one server per base model and server arguments, with every adapter on it."""

    def __init__(self, context: BuildContext) -> None:
        self.context = context
        self._servers: dict[str, tuple[tuple[Any, ...], ServerSpec]] | None = None

    def build(self, model: ResolvedModel) -> VLLMServerBackend:
        if self._servers is None:  # grouped on the first launch model, over every model of the run
            self._servers = launch_specs(self.context.loaded, dict(self.context.models))
        key, server_spec = self._servers[model.name]
        server = POOL.acquire(key, server_spec)
        return VLLMServerBackend(model, None, model.concurrency, api_base=server.api_base, server=server,
                                 identity=engine_identity(model))
