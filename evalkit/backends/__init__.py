"""Model backends, one per provider; :func:`create_backend` builds the one a suite entry names.

Heavy client libraries are imported inside the factory, so ``import evalkit`` never needs them.
"""

from __future__ import annotations

import os

from evalkit.backends.base import Backend, ChatRequest, Completion
from evalkit.errors import ConfigError
from evalkit.suite import LiteLLMModel, VLLMModel

__all__ = ["Backend", "ChatRequest", "Completion", "create_backend", "api_key_for"]


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
