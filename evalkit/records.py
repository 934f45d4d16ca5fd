"""The records every stage may import: what a model is asked (:class:`ChatRequest`) and what came back
(:class:`Completion`). Neutral ground: backends produce them, scoring, pricing and the store read them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Constraint:
    """Constrained decoding asked of the provider (``output.constrain``): the output's JSON Schema
    (``kind="json"``) or its label set (``kind="choice"``); each backend sends it in its native form."""

    kind: str  # "json" | "choice"
    name: str  # the schema's name where a provider wants one (OpenAI: ^[a-zA-Z0-9_-]{1,64}$)
    schema: dict[str, Any] | None = None
    choices: tuple[str, ...] = ()

    def key(self) -> dict[str, Any]:
        """What the cache key holds of it (the answer depends on exactly this)."""
        return {"kind": self.kind, "name": self.name, "schema": self.schema, "choices": list(self.choices)}


@dataclass(frozen=True)
class ChatRequest:
    """One chat call: the messages and exactly the generation parameters to send."""

    messages: list[dict[str, str]]
    params: dict[str, Any]
    logprobs: bool = False
    top_logprobs: int = 0
    stream: bool = True
    timeout_s: float = 120.0
    constraint: Constraint | None = None  # output.constrain: sent in the backend's native form


@dataclass
class Completion:
    """A model's answer and the measurements of the call that produced it.

    ``logprobs`` holds one entry per generated token: ``{"token": str, "logprob": float,
    "top": [[token, logprob], ...]}``; None when the server sent none.
    """

    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = 0.0  # None only where a log being imported did not record it
    ttft_ms: float | None = None
    resolved_model: str | None = None
    logprobs: list[dict[str, Any]] | None = None
    cost_usd: float | None = None
    # How late the client's event loop ran while this call was timed (set by the runner; None: not measured).
    client_lag_ms: float | None = None
    sent_params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Completion:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
