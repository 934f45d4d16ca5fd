"""A request's latency taken at the connection: from its last byte sent to its answer's last byte read.

A coroutine's own clock (``perf_counter`` around ``await client.post(...)``) also counts the client's
CPU: building the request, waiting for its turn on a busy event loop, parsing, and — when several
answers arrive at once — every answer processed before this one. With 16 answers landing together that
is 16 × the client's per-answer work (~0.4 ms lean, ~5 ms through LiteLLM) in the tail of every
model's latency. So the sessions built here stamp the exchange where the bytes move:

- the request: when its body has been handed to the socket (:class:`StampingRequest`);
- the answer: every time the connection's protocol receives bytes (:class:`StampingHandler`): the
  first bytes of a whole answer (its status line: a server sends it once the answer is complete), the
  last bytes of a stream — read off the socket before any of the client's parsing or the answers
  queued in front of it.

A backend opens :func:`exchange` around one call (a context variable, so every task the call spawns
sees it) and reads :attr:`WireTimes.latency_ms` after it; what its own clock measured beyond that is
the client's own delay (stored per row as ``client_lag_ms``). Both evalkit's aiohttp client and
LiteLLM (through ``acompletion(shared_session=...)``, its aiohttp transport) use :func:`stamping_session`.

What is still in the figure: the time from the bytes reaching the kernel to the loop reading them —
one turn of the event loop when it is busy.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

from evalkit.records import Completion


@dataclass
class WireTimes:
    """One exchange's stamps on the ``time.perf_counter`` clock (None: not seen on a stamping connection)."""

    sent_at: float | None = None
    first_byte_at: float | None = None
    last_byte_at: float | None = None

    def latency_ms(self, stream: bool = False) -> float | None:
        """Last byte sent → the answer, in ms: its first byte for a whole (non-streamed) answer — a server
        sends the status line only once the answer is complete, and a body that follows in a second
        segment may wait a turn of a busy loop to be read — its last byte for a stream. None when either
        end was not stamped."""
        end = self.last_byte_at if stream else self.first_byte_at
        if self.sent_at is None or end is None or end < self.sent_at:
            return None
        return (end - self.sent_at) * 1000.0

    def since_sent_ms(self, at: float) -> float | None:
        """``at`` (a ``perf_counter`` reading) measured from when the request went out, in ms."""
        return None if self.sent_at is None else max(0.0, (at - self.sent_at) * 1000.0)


_current: ContextVar[WireTimes | None] = ContextVar("evalkit_wire_times", default=None)


@contextmanager
def exchange() -> Iterator[WireTimes]:
    """Stamp the request sent inside this block (on a :func:`stamping_session`)."""
    times = WireTimes()
    token = _current.set(times)
    try:
        yield times
    finally:
        _current.reset(token)


class StampingHandler(ResponseHandler):
    """aiohttp's connection protocol, stamping the exchange it currently carries as bytes arrive."""

    wire: WireTimes | None = None

    def data_received(self, data: bytes) -> None:
        wire = self.wire
        if wire is not None and data:
            now = time.perf_counter()
            if wire.first_byte_at is None:
                wire.first_byte_at = now
            wire.last_byte_at = now
        super().data_received(data)


class StampingRequest(aiohttp.ClientRequest):
    """Binds the connection to the current exchange before the body goes out; stamps when it has."""

    async def write_bytes(self, writer: Any, conn: Any, content_length: int | None = None) -> None:
        wire = _current.get()
        protocol = getattr(conn, "protocol", None)
        if isinstance(protocol, StampingHandler):
            protocol.wire = wire  # an answer can only arrive after this; a reused connection is rebound
        await super().write_bytes(writer, conn, content_length)
        if wire is not None and isinstance(protocol, StampingHandler):
            wire.sent_at = time.perf_counter()


class StampingConnector(aiohttp.TCPConnector):
    """A TCP connector whose connections are :class:`StampingHandler` protocols."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # aiohttp builds each connection's protocol with this factory (no public hook for it in 3.x).
        if hasattr(self, "_factory"):
            self._factory = functools.partial(StampingHandler, loop=self._loop)  # type: ignore[assignment]


def time_wire(completion: Completion, wire: WireTimes, start: float, stream: bool = False) -> None:
    """Set a finished call's ``latency_ms`` from the wire (the coroutine's clock from ``start`` when the
    exchange was not stamped) and ``client_lag_ms`` to what the coroutine's clock measured beyond it."""
    wall_ms = (time.perf_counter() - start) * 1000.0
    on_wire = wire.latency_ms(stream)
    if on_wire is None or on_wire > wall_ms:
        completion.latency_ms = wall_ms
        return
    completion.latency_ms = on_wire
    completion.client_lag_ms = wall_ms - on_wire


def stamping_session(limit: int, headers: dict[str, str] | None = None) -> aiohttp.ClientSession:
    """An aiohttp session (create it on the loop that uses it) whose exchanges :func:`exchange` can time."""
    connector = StampingConnector(limit=limit, ttl_dns_cache=300)
    return aiohttp.ClientSession(connector=connector, headers=headers, request_class=StampingRequest)
