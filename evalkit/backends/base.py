"""What every model backend takes and gives back.

A backend implements one async method, :meth:`Backend.complete`. It records what was sent and what
came back (resolved model, usage, timings, logprobs); it never retries — the runner does — and it
raises :class:`evalkit.errors.BackendError` with ``retryable`` set for failures worth retrying.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

# HTTP statuses worth another attempt: timeouts, conflicts, rate limits and server-side failures.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def retry_after_seconds(headers: Any) -> float | None:
    """The server's Retry-After header in seconds (numeric form), if it sent one."""
    value = headers.get("retry-after") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class ChatRequest:
    """One chat call: the messages and exactly the generation parameters to send."""

    messages: list[dict[str, str]]
    params: dict[str, Any]
    logprobs: bool = False
    top_logprobs: int = 0
    stream: bool = True
    timeout_s: float = 120.0


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
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    resolved_model: str | None = None
    logprobs: list[dict[str, Any]] | None = None
    cost_usd: float | None = None
    sent_params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Completion:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class Backend(Protocol):
    """A model reachable through one async call."""

    name: str

    async def complete(self, request: ChatRequest) -> Completion:
        """Send one request; return the answer or raise BackendError."""
        ...

    async def aclose(self) -> None:
        """Release connections (and servers the backend started)."""
        ...

    def identity(self) -> dict[str, Any]:
        """What makes this model's answers what they are (for the cache key and provenance)."""
        ...
