"""Fault injection for :mod:`evalkit.testing.devserver`: the failures real model servers and gateways produce.

A :class:`FaultPlan` is an ordered list of :class:`Fault` s. For each completion request the server asks
the plan for the first fault that wants to fire; at most one fault applies to a request. Kinds:

    status     answer ``status`` (429, 500, 503, ...) with an OpenAI-style error body; ``retry_after``
               (seconds) adds a ``Retry-After`` header, as delta-seconds or, with
               ``retry_after_form="date"``, as the HTTP date that many seconds from now (rounded up);
               ``echo_key=True`` quotes the request's ``Authorization`` header in the error message, as
               some providers and proxies do ("Incorrect API key provided: Bearer sk-…")
    hang       sleep ``hang_s`` seconds, then answer normally (a client timeout should fire first)
    reset      abort the TCP connection (RST) without any response
    garbage    200 with ``Content-Type: application/json`` and a body that is not JSON
    truncate   200 whose body stops half-way: a JSON body cut in half (with a matching Content-Length),
               or a stream that ends after half of its chunks, with no finish_reason and no
               ``data: [DONE]``; the connection is closed afterwards. For a stream, ``after`` says how it
               ends after the half: ``eof`` (default, a clean end of the body), ``stall`` (nothing more
               for ``hang_s`` seconds, then the clean end: a client timeout fires mid-answer) or ``cut``
               (the connection is reset: RST mid-answer)

When a fault fires (each fault counts the requests that pass its ``model`` filter, 1-based):

    times=N    on the first N requests it is offered; once used up, later faults in the list get their
               turn, so ``[429 times=2, 500 times=1]`` gives 429, 429, 500, then normal answers
    every=N    on every N-th request (N, 2N, ...)
    nth=(..)   on exactly these request numbers
    none set   on every request (e.g. a model that is always down)

Faults can also be written as dicts (``{"kind": "status", "status": 429, "retry_after": 1, "times": 2}``),
e.g. under ``faults:`` in a devserver rules file.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Literal

from aiohttp import web

FaultKind = Literal["status", "hang", "reset", "garbage", "truncate"]
_KINDS = ("status", "hang", "reset", "garbage", "truncate")
TruncateEnd = Literal["eof", "stall", "cut"]
_ENDS = ("eof", "stall", "cut")

# (type, code) pairs as OpenAI's API reports them, so clients map them to the same exception classes.
_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", None),
}


def error_response(status: int, message: str, *, code: str | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    """An OpenAI-style error: ``{"error": {"message", "type", "param", "code"}}`` with ``status``."""
    err_type, default_code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error",
                                                       None))
    body = {"error": {"message": message, "type": err_type, "param": None, "code": code or default_code}}
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json",
                        headers=headers)


@dataclass
class Fault:
    """One failure mode and when it fires (see the module docstring)."""

    kind: FaultKind
    status: int = 500
    retry_after: float | None = None
    retry_after_form: Literal["seconds", "date"] = "seconds"
    echo_key: bool = False
    hang_s: float = 30.0
    times: int | None = None
    every: int | None = None
    nth: tuple[int, ...] | None = None
    model: str | None = None
    after: TruncateEnd = "eof"
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(_KINDS)}")
        if self.retry_after_form not in ("seconds", "date"):
            raise ValueError(f"unknown retry_after_form {self.retry_after_form!r}; expected seconds or date")
        if self.after not in _ENDS:
            raise ValueError(f"unknown truncate end {self.after!r}; expected one of {', '.join(_ENDS)}")
        if self.every is not None and self.every < 1:
            raise ValueError("Fault.every must be >= 1")
        if self.nth is not None:
            self.nth = tuple(self.nth)

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> Fault:
        """Build a fault from a mapping with the constructor's field names."""
        allowed = {f.name for f in fields(cls) if f.init}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown fault field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        return cls(**spec)

    def offer(self, model: str | None) -> bool:
        """Count this request if it passes the filter; True when the fault fires on it."""
        if self.model is not None and model != self.model:
            return False
        self.seen += 1
        if self.nth is not None:
            hit = self.seen in self.nth
        elif self.every is not None:
            hit = self.seen % self.every == 0
        else:
            hit = True
        if hit and self.times is not None and self.fired >= self.times:
            hit = False
        if hit:
            self.fired += 1
        return hit


class FaultPlan:
    """An ordered list of faults; :meth:`pick` returns the one that applies to a request, if any."""

    def __init__(self, faults: Iterable[Fault | dict[str, Any]] = ()) -> None:
        self.faults: list[Fault] = [f if isinstance(f, Fault) else Fault.from_dict(f) for f in faults]

    def __bool__(self) -> bool:
        return bool(self.faults)

    def add(self, *faults: Fault) -> FaultPlan:
        """Append faults (they rank after the existing ones); returns the plan for chaining."""
        self.faults.extend(faults)
        return self

    def clear(self) -> None:
        """Remove every fault."""
        self.faults.clear()

    def pick(self, model: str | None) -> Fault | None:
        """The first fault that fires for a request to ``model``.

        Every fault is offered the request, even after one fired, so that ``every``/``nth`` count all
        requests and do not depend on what the faults before them did.
        """
        chosen: Fault | None = None
        for fault in self.faults:
            if chosen is None:
                if fault.offer(model):
                    chosen = fault
            elif fault.model is None or fault.model == model:
                # Counted but not fired: its `times` budget is kept for a request it does get.
                fault.seen += 1
        return chosen


def _retry_after_value(fault: Fault) -> str:
    assert fault.retry_after is not None
    if fault.retry_after_form == "seconds":
        return f"{fault.retry_after:g}"
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=math.ceil(fault.retry_after) + 1)
    return format_datetime(when, usegmt=True)  # whole seconds, so one more to wait at least retry_after


async def break_stream(request: web.Request, resp: web.StreamResponse, fault: Fault) -> web.StreamResponse:
    """End a stream whose first half was sent: stall ``hang_s`` then end it (``after: stall``), or reset
    the connection (``after: cut``)."""
    await asyncio.sleep(fault.hang_s if fault.after == "stall" else 0.05)
    if fault.after == "cut":
        _abort(request)
        await asyncio.sleep(5.0)  # handler_cancellation ends this task when the connection goes
    await resp.write_eof()
    return resp


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:  # linger 0: close() sends RST, as a crashed server or a killed proxy does, not a polite FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


async def apply_fault(fault: Fault, request: web.Request) -> web.StreamResponse | None:
    """Carry out ``fault`` before the normal answer; a response ends the request, None goes on.

    ``truncate`` returns None: the caller cuts the normal answer itself, as only it knows the body.
    """
    if fault.kind == "status":
        headers = {"Retry-After": _retry_after_value(fault)} if fault.retry_after is not None else None
        message = {429: "Rate limit reached for requests (injected by evalkit devserver)",
                   503: "The server is overloaded or not ready yet (injected by evalkit devserver)"}.get(
            fault.status, f"injected fault: HTTP {fault.status}")
        if fault.echo_key:
            message = f"Incorrect API key provided: {request.headers.get('Authorization', '(none)')}. {message}"
        return error_response(fault.status, message, headers=headers)
    if fault.kind == "hang":
        await asyncio.sleep(fault.hang_s)
        return None
    if fault.kind == "garbage":
        return web.Response(status=200, body=b"<html><body>502 Bad Gateway</body></html>\n{not json",
                            content_type="application/json")
    if fault.kind == "reset":
        _abort(request)
        # The server runs with handler_cancellation, so losing the connection cancels this task;
        # the bounded sleep only guards against that not happening.
        await asyncio.sleep(5.0)
        raise ConnectionResetError("connection reset by injected fault")
    return None
