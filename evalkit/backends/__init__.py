"""Stage 2 — model backends, one per provider and mode; :func:`create_backends` builds those of a run.

Which class serves which kind of model entry is :mod:`evalkit.backends.registry`'s business; heavy
client libraries are imported only when a factory is used, so ``import evalkit`` never needs them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from evalkit.backends.base import Backend, Capabilities
from evalkit.backends.registry import BackendFactory, BuildContext, factory_class
from evalkit.config.resolve import ResolvedModel, resolve_models
from evalkit.config.suite import LoadedSuite
from evalkit.records import ChatRequest, Completion

__all__ = ["Backend", "Capabilities", "ChatRequest", "Completion", "create_backends", "live_endpoints",
           "release_servers"]


def create_backends(loaded: LoadedSuite,
                    models: Iterable[str] | Mapping[str, ResolvedModel]) -> dict[str, Backend]:
    """The backends of the chosen models of a suite (names, or models already resolved).

    Self-started vLLM engines start here — launched servers shared per base model, in-process engines
    per base and engine arguments — before anything is stored, so a model that cannot start fails the
    run cleanly. If one fails, engines already started are stopped again.
    """
    resolved = dict(models) if isinstance(models, Mapping) else resolve_models(loaded, models)
    context = BuildContext(loaded, resolved)
    factories: dict[str, BackendFactory] = {}
    backends: dict[str, Backend] = {}
    try:
        for name, model in resolved.items():
            if model.kind not in factories:
                factories[model.kind] = factory_class(model.kind)(context)
            backends[name] = factories[model.kind].build(model)
    except BaseException:
        async def _close_all() -> None:
            for backend in backends.values():
                await backend.aclose()

        asyncio.run(_close_all())
        release_servers(backends)
        raise
    return backends


def live_endpoints(backends: dict[str, Backend]) -> dict[str, tuple[str, str]]:
    """Launch-mode models and their running server: (api_base, the base's served name)."""
    return {name: endpoint for name, backend in backends.items() if (endpoint := backend.live_endpoint())}


def release_servers(backends: dict[str, Backend]) -> None:
    """Stop the vLLM servers these backends launched (each when its last user lets go)."""
    for backend in backends.values():
        backend.release_server()
