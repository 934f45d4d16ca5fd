"""Models on a vLLM engine. Mode ``connect``: a running OpenAI-compatible vLLM server.

The served model is the LoRA module name when an adapter is given, else the base model; the request
format, the measurements and the stored record are the same as for every other backend.
"""

from __future__ import annotations

from typing import Any

from evalkit.backends.base import ChatRequest, Completion
from evalkit.backends.openai_http import OpenAICompatibleClient
from evalkit.suite import VLLMModel


class VLLMServerBackend:
    """A base model or one of its LoRA adapters on a vLLM server."""

    def __init__(self, name: str, spec: VLLMModel, api_key: str | None, max_connections: int = 64) -> None:
        self.name = name
        self.spec = spec
        self.served_model = spec.adapter or spec.base_model
        self._client = OpenAICompatibleClient(spec.api_base, self.served_model, api_key, max_connections)

    def identity(self) -> dict[str, Any]:
        return {"provider": "vllm", "api_base": self.spec.api_base, "base_model": self.spec.base_model,
                "adapter": self.spec.adapter, "params": self.spec.params}

    async def complete(self, request: ChatRequest) -> Completion:
        return await self._client.complete(request)

    async def aclose(self) -> None:
        await self._client.aclose()
