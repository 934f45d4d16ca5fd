"""What every model backend takes and gives back.

A backend implements one async method, :meth:`Backend.complete`. It records what was sent and what
came back (resolved model, usage, timings, logprobs); it never retries — the runner does — and it
raises :class:`evalkit.errors.BackendError` with ``retryable`` set for failures worth retrying.
"""

from __future__ import annotations

from typing import Any, Protocol

from evalkit.records import ChatRequest, Completion

# HTTP statuses worth another attempt: timeouts, conflicts, rate limits and server-side failures.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def retry_after_seconds(headers: Any) -> float | None:
    """The server's Retry-After header in seconds (numeric form), if it sent one."""
    value = headers.get("retry-after") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


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
