"""Which backend serves which kind of model entry: one factory per provider and mode.

A factory is a class built once per :func:`evalkit.backends.create_backends` call with the whole set
of models being started (:class:`BuildContext`), so a provider can share what its models have in
common — one launched server per base model, one in-process engine per base and engine arguments —
and then asked for each model's backend in turn. Factories are named by import path, so the heavy
client libraries load only when a suite uses them. Adding a provider: its module, plus one line here
(and its kind in :data:`evalkit.config.resolve.KINDS`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, cast

from evalkit.backends.base import Backend
from evalkit.config.resolve import ResolvedModel
from evalkit.config.suite import LoadedSuite

FACTORIES: dict[str, str] = {
    "litellm": "evalkit.backends.litellm_backend:LiteLLMFactory",
    "vllm/connect": "evalkit.backends.vllm:ConnectFactory",
    "vllm/launch": "evalkit.backends.vllm:LaunchFactory",
    "vllm/inprocess": "evalkit.backends.vllm_inprocess:InProcessFactory",
    "vllm/ray-data": "evalkit.backends.vllm_ray_data:RayDataFactory",
}


@dataclass(frozen=True)
class BuildContext:
    """What a factory may look at: the suite and every model started with this one."""

    loaded: LoadedSuite
    models: Mapping[str, ResolvedModel]

    @property
    def suite_file(self) -> str:
        return str(self.loaded.path)


class BackendFactory(Protocol):
    def build(self, model: ResolvedModel) -> Backend:
        """The backend of one model (starting, or joining, the engine it runs on)."""
        ...


def factory_class(kind: str) -> Callable[[BuildContext], BackendFactory]:
    """The factory registered for a kind of model entry (``litellm``, ``vllm/launch``, ...)."""
    try:
        module, attr = FACTORIES[kind].split(":")
    except KeyError:
        raise KeyError(f"no backend registered for model kind '{kind}' (known: {sorted(FACTORIES)})") from None
    return cast(Callable[[BuildContext], BackendFactory], getattr(importlib.import_module(module), attr))
