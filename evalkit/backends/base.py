"""What every model backend takes and gives back.

A backend implements one async method, :meth:`Backend.complete`. It records what was sent and what
came back (resolved model, usage, timings, logprobs); it never retries — the runner does — and it
raises :class:`evalkit.errors.BackendError` with ``retryable`` set for failures worth retrying.

Everything else the rest of evalkit may ask a backend is declared on :class:`Backend`: what it can do
(:class:`Capabilities`) and the hooks of self-started engines, which :class:`BackendBase` answers
with "nothing" for backends that start none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from evalkit.config.resolve import ResolvedModel
from evalkit.records import ChatRequest, Completion

# HTTP statuses worth another attempt: timeouts, conflicts, rate limits and server-side failures.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def retry_after_seconds(headers: Any, now: datetime | None = None) -> float | None:
    """The server's ``Retry-After`` header in seconds from ``now``, if it sent a readable one.

    Both forms of RFC 9110 §10.2.3: delta-seconds (``120``; a decimal is accepted too) and an HTTP date
    (``Wed, 21 Oct 2026 07:28:00 GMT``, any RFC 5322 date). A negative delay or a date already past
    means "now" (0); anything unreadable is ignored (None: the normal backoff applies). The runner caps
    the wait.
    """
    value = headers.get("retry-after") if headers is not None else None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a date without a zone is read as such
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared rather than probed.

    ``streaming``: answers can stream (time to first token is measured); ``logprobs``: token log
    probabilities come back; ``constrained_decoding``: structured-output parameters (response_format,
    guided decoding) can be sent; ``batch_latency``: requests run in engine batches, so a request's
    latency is its batch's wall time, not comparable with served latency.
    """

    streaming: bool = True
    logprobs: bool = True
    constrained_decoding: bool = True
    batch_latency: bool = False


class Backend(Protocol):
    """A model reachable through one async call."""

    name: str
    # The suite entry this backend was built from, resolved once (concurrency, adapter identity).
    resolved: ResolvedModel

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def served_model(self) -> str:
        """The model name the engine or provider is asked for (stored as run_models.model_ref)."""
        ...

    async def complete(self, request: ChatRequest) -> Completion:
        """Send one request; return the answer or raise BackendError."""
        ...

    async def aclose(self) -> None:
        """Release connections (and servers the backend started)."""
        ...

    def identity(self) -> dict[str, Any]:
        """What makes this model's answers what they are (for the cache key and provenance)."""
        ...

    def prepare(self) -> None:
        """Everything a first call would otherwise do on the clock (client imports and set-up, asking a
        loopback server what it serves for :meth:`identity`); called once, before any timed request."""
        ...

    async def start(self) -> None:
        """The set-up bound to the event loop the model's requests run on (clients made on that loop), done on
        it before its first request, warm-up or not."""
        ...

    @property
    def loop_group(self) -> str | None:
        """Backends with the same group share one event loop (their client state is bound to one loop);
        None: this model's requests get an event loop, and a thread, of their own."""
        ...

    def engine_info(self) -> dict[str, Any] | None:
        """A self-started engine's PID, address, command and log (stored with the run); None otherwise."""
        ...

    def live_endpoint(self) -> tuple[str, str] | None:
        """(api_base, the base model's served name) of a server evalkit launched; None otherwise."""
        ...

    def release_server(self) -> None:
        """Let go of a launched server (stopped when its last user lets go); nothing for other backends."""
        ...


class BackendBase:
    """The hooks of :class:`Backend` that only self-started engines need, answered with "nothing"."""

    name: str
    resolved: ResolvedModel
    capabilities = Capabilities()

    def engine_info(self) -> dict[str, Any] | None:
        return None

    def prepare(self) -> None:
        return None

    async def start(self) -> None:
        return None

    @property
    def loop_group(self) -> str | None:
        return None

    def live_endpoint(self) -> tuple[str, str] | None:
        return None

    def release_server(self) -> None:
        return None
