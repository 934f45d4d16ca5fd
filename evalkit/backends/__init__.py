"""Model backends, one per provider; :func:`create_backend` builds the one a suite entry names.

Heavy client libraries are imported inside the factory, so ``import evalkit`` never needs them.
"""

from __future__ import annotations

import os

from evalkit.backends.base import Backend
from evalkit.config.model_specs import LiteLLMModel, VLLMModel
from evalkit.config.suite import LoadedSuite
from evalkit.errors import ConfigError
from evalkit.records import ChatRequest, Completion

__all__ = ["Backend", "ChatRequest", "Completion", "api_key_for", "create_backend", "create_backends",
           "live_endpoints", "release_servers"]


def api_key_for(name: str, env_var: str | None, suite_file: str) -> str | None:
    """Read the API key from the environment variable the suite names (the key is never stored)."""
    if not env_var:
        return None
    value = os.environ.get(env_var)
    if not value:
        raise ConfigError(f"environment variable {env_var} is not set; export it with the API key "
                          f"for model '{name}' (the suite stores only the variable's name)",
                          file=suite_file, key=f"models.{name}.api_key_env")
    return value


def create_backend(name: str, spec: LiteLLMModel | VLLMModel, suite_file: str,
                   max_connections: int = 64) -> Backend:
    """The backend for one model entry of a suite."""
    key = api_key_for(name, spec.api_key_env, suite_file)
    if isinstance(spec, LiteLLMModel):
        from evalkit.backends.litellm_backend import LiteLLMBackend

        return LiteLLMBackend(name, spec, key)
    from evalkit.backends.vllm import VLLMServerBackend

    return VLLMServerBackend(name, spec, key, max_connections=max_connections)


def create_backends(loaded: LoadedSuite, names: list[str]) -> dict[str, Backend]:
    """The backends of the chosen models of a suite; self-started vLLM engines are shared per base model.

    Launched servers and in-process engines start here, before anything is stored, so a model that
    cannot start fails the run cleanly. If one fails, engines already started are stopped again.
    """
    suite_file = str(loaded.path)
    backends: dict[str, Backend] = {}
    try:
        launch = None
        inprocess: dict[tuple[str, str], object] = {}
        for name in names:
            spec = loaded.suite.models[name]
            connections = spec.concurrency or loaded.suite.run.concurrency
            if isinstance(spec, VLLMModel) and spec.mode == "launch":
                from evalkit.backends.vllm import VLLMServerBackend, adapter_folder, engine_identity, launch_specs
                from evalkit.backends.vllm_launch import POOL

                launch = launch if launch is not None else launch_specs(loaded, names)
                key, server_spec = launch[name]
                server = POOL.acquire(key, server_spec)
                backends[name] = VLLMServerBackend(
                    name, spec, None, connections, api_base=server.api_base, server=server,
                    identity=engine_identity(loaded, spec, adapter_folder(loaded, name, spec)))
            elif isinstance(spec, VLLMModel) and spec.mode == "inprocess":
                backends[name] = _inprocess_backend(loaded, names, name, spec, inprocess)
            else:
                backends[name] = create_backend(name, spec, suite_file, max_connections=connections)
    except BaseException:
        import asyncio

        async def _close_all() -> None:
            for backend in backends.values():
                await backend.aclose()

        asyncio.run(_close_all())
        release_servers(backends)
        raise
    return backends


def live_endpoints(backends: dict[str, Backend]) -> dict[str, tuple[str, str]]:
    """Launch-mode models and their running server: (api_base, the base's served name)."""
    live = {}
    for name, backend in backends.items():
        endpoint = getattr(backend, "live_endpoint", lambda: None)()
        if endpoint:
            live[name] = endpoint
    return live


def release_servers(backends: dict[str, Backend]) -> None:
    """Stop the vLLM servers these backends launched (each when its last user lets go)."""
    for backend in backends.values():
        release = getattr(backend, "release_server", None)
        if release is not None:
            release()


def _inprocess_backend(loaded: LoadedSuite, names: list[str], name: str, spec: VLLMModel,
                       engines: dict[tuple[str, str], object]) -> Backend:
    """An in-process model; the engine for its base is built once, with every adapter on that base."""
    import json

    from evalkit.backends.vllm import adapter_folder, engine_identity, resolve_base
    from evalkit.backends.vllm_inprocess import InProcessEngine, VLLMInProcessBackend, sampling_kwargs

    def engine_key(model: VLLMModel) -> tuple[str, str]:
        return resolve_base(loaded, model.base_model), json.dumps(model.engine_args, sort_keys=True, default=str)

    sampling = sampling_kwargs(spec.params, f"models.{name}.params", str(loaded.path))  # before the slow start
    key = engine_key(spec)
    if key not in engines:
        adapters = {}
        for other in names:
            o = loaded.suite.models[other]
            if isinstance(o, VLLMModel) and o.mode == "inprocess" and o.adapter and engine_key(o) == key:
                adapters[o.adapter] = adapter_folder(loaded, other, o)
        engines[key] = InProcessEngine(key[0], adapters, spec.engine_args)
    adapter = adapter_folder(loaded, name, spec)
    return VLLMInProcessBackend(name, spec.adapter, engines[key], sampling,  # type: ignore[arg-type]
                                engine_identity(loaded, spec, adapter))
