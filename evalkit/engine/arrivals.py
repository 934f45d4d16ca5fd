"""Open-loop pacing: requests released at scheduled arrival times, whatever the completions.

A closed loop (``run.concurrency`` workers) sends the next request when one finishes, so a slow server
slows the arrivals down and its latency never shows what users at a given rate would see. An
:class:`OpenLoop` releases request *i* at its scheduled arrival time — Poisson arrivals (exponential gaps
from a seeded generator, as vLLM's ``benchmark_serving.py --request-rate``) or constant ones (exactly
``1/rate`` apart) — bounded only by a safety cap on requests in flight (``max_in_flight``). An arrival that
finds the cap full waits for a slot: it is counted (``cap_waits``) and its wait is part of its queueing
delay (scheduled arrival → sent), stored apart from the latency, which is measured from the send.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from evalkit.config.run_spec import DEFAULT_MAX_IN_FLIGHT, LoadSpec

FloatArray = npt.NDArray[np.float64]
ARRIVALS = ("poisson", "constant")


def arrival_offsets(n: int, rate_per_s: float, arrival: str = "poisson", seed: int = 0) -> FloatArray:
    """Scheduled arrival times in seconds from the start: the first at 0, then gaps of mean ``1/rate``."""
    if rate_per_s <= 0:
        raise ValueError("rate_per_s must be positive")
    if arrival not in ARRIVALS:
        raise ValueError(f"arrival must be one of {ARRIVALS}, not {arrival!r}")
    if n <= 0:
        return np.zeros(0)
    if arrival == "constant":
        return np.arange(n, dtype=float) / rate_per_s
    gaps = np.random.default_rng(seed).exponential(1.0 / rate_per_s, n - 1)
    return np.concatenate([[0.0], np.cumsum(gaps)])


@dataclass
class PacingStats:
    """What one open-loop phase did, per request (seconds from the phase's start; NaN: never sent)."""

    rate_per_s: float
    arrival: str
    max_in_flight: int
    scheduled_s: FloatArray
    sent_s: FloatArray
    done_s: FloatArray
    capped: npt.NDArray[np.bool_]
    peak_in_flight: int = 0
    wall_s: float = 0.0

    @property
    def n_sent(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.sent_s)))

    @property
    def queue_ms(self) -> FloatArray:
        """Scheduled arrival → sent, per request, in ms (the cap's waits and the event loop's lateness)."""
        return (self.sent_s - self.scheduled_s) * 1000.0

    @property
    def cap_waits(self) -> int:
        """Arrivals that found ``max_in_flight`` requests in flight and waited for a slot."""
        return int(np.count_nonzero(self.capped))

    @property
    def duration_s(self) -> float:
        """First scheduled arrival → last completion: the span the achieved throughput is counted over."""
        done = self.done_s[~np.isnan(self.done_s)]
        return float(done.max()) if len(done) else 0.0

    def summary(self) -> dict[str, Any]:
        """The phase's pacing figures (JSON-able): asked rate, sends, the cap's hits and delays."""
        sent = ~np.isnan(self.sent_s)
        queue = self.queue_ms[sent]
        capped = self.queue_ms[self.capped & sent]
        span = float(self.sent_s[sent].max()) if sent.sum() > 1 else 0.0
        return {
            "rate_per_s": self.rate_per_s, "arrival": self.arrival, "max_in_flight": self.max_in_flight,
            "n_scheduled": len(self.scheduled_s), "n_sent": int(sent.sum()),
            "send_rate_rps": (int(sent.sum()) - 1) / span if span > 0 else None,
            "duration_s": self.duration_s, "peak_in_flight": self.peak_in_flight, "cap_waits": self.cap_waits,
            "cap_delay_ms_mean": float(capped.mean()) if len(capped) else None,
            "cap_delay_ms_max": float(capped.max()) if len(capped) else None,
            "queue_ms_p50": float(np.percentile(queue, 50)) if len(queue) else None,
            "queue_ms_p99": float(np.percentile(queue, 99)) if len(queue) else None,
            "queue_ms_max": float(queue.max()) if len(queue) else None,
        }


@dataclass
class OpenLoop:
    """Releases ``n`` requests at their scheduled arrival times, at most ``max_in_flight`` at once.

    Used in place of a closed pool of workers: :meth:`run` calls ``send(i)`` for request ``i`` at its
    arrival time and waits for all of them; the first exception a request raises stops the arrivals,
    cancels the requests in flight and is raised again.
    """

    rate_per_s: float
    arrival: str = "poisson"
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    seed: int = 0
    _in_flight: int = field(default=0, init=False, repr=False)

    @classmethod
    def from_spec(cls, spec: LoadSpec) -> OpenLoop:
        return cls(spec.rate_per_s, spec.arrival, spec.max_in_flight, spec.seed)

    def schedule(self, n: int) -> FloatArray:
        return arrival_offsets(n, self.rate_per_s, self.arrival, self.seed)

    async def run(self, n: int, send: Callable[[int], Awaitable[Any]]) -> PacingStats:
        offsets = self.schedule(n)
        stats = PacingStats(self.rate_per_s, self.arrival, self.max_in_flight, offsets,
                            np.full(n, math.nan), np.full(n, math.nan), np.zeros(n, dtype=bool))
        slots = asyncio.Semaphore(self.max_in_flight)
        tasks: set[asyncio.Task[None]] = set()
        failures: list[BaseException] = []
        start = time.perf_counter()

        async def one(i: int) -> None:
            stats.sent_s[i] = time.perf_counter() - start  # when it really starts: the loop's lag counts as queueing
            try:
                await send(i)
            finally:
                stats.done_s[i] = time.perf_counter() - start
                self._in_flight -= 1
                slots.release()

        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                failures.append(task.exception())  # type: ignore[arg-type]

        try:
            for i in range(n):
                if failures:
                    break
                wait = start + offsets[i] - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                if slots.locked():
                    stats.capped[i] = True
                await slots.acquire()
                self._in_flight += 1
                stats.peak_in_flight = max(stats.peak_in_flight, self._in_flight)
                task = asyncio.create_task(one(i))
                tasks.add(task)
                task.add_done_callback(finished)
            while tasks and not failures:
                await asyncio.wait(set(tasks), return_when=asyncio.FIRST_COMPLETED)
        finally:
            pending = list(tasks)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            stats.wall_s = time.perf_counter() - start
        if failures:
            raise failures[0]
        return stats


def percentile(values: FloatArray, q: float) -> float | None:
    """numpy's (linear) percentile of the finite values; None when there are none."""
    finite = values[np.isfinite(values)]
    return float(np.percentile(finite, q)) if len(finite) else None


def phase_point(stats: PacingStats, latency_ms: FloatArray, ttft_ms: FloatArray, ok: npt.NDArray[np.bool_],
                slo_p99_ms: float | None = None, max_error_rate: float = 0.01,
                counted: npt.NDArray[np.bool_] | None = None) -> dict[str, Any]:
    """One rate's figures from its pacing and its per-request answers (arrays by request index).

    Latency percentiles are of successful requests, measured from the send; ``e2e_ms_p99`` adds each
    one's queueing delay (scheduled arrival → answer), and is what the SLO is judged on, so a rate that
    only "met" its latency because the in-flight cap held requests back does not meet it. Achieved
    throughput: successful answers per second from the first scheduled arrival to the last completion.
    ``counted``: the requests that count (default: all; a run leaves out answers reused from the cache).
    """
    sent = ~np.isnan(stats.sent_s) & (counted if counted is not None else True)
    n_sent = int(sent.sum())
    good = ok & sent
    n_ok = int(good.sum())
    duration = stats.duration_s
    lat = latency_ms[good]
    e2e = (latency_ms + stats.queue_ms)[good]
    point = {
        **stats.summary(), "n_sent": n_sent, "n_ok": n_ok, "n_errors": n_sent - n_ok,
        "error_rate": (n_sent - n_ok) / n_sent if n_sent else None,
        "achieved_rps": n_ok / duration if duration > 0 else None,
        "latency_ms_p50": percentile(lat, 50), "latency_ms_p95": percentile(lat, 95),
        "latency_ms_p99": percentile(lat, 99), "ttft_ms_p50": percentile(ttft_ms[good], 50),
        "ttft_ms_p99": percentile(ttft_ms[good], 99), "e2e_ms_p99": percentile(e2e, 99),
    }
    if slo_p99_ms is not None:
        point["meets_slo"] = bool(point["e2e_ms_p99"] is not None and point["e2e_ms_p99"] <= slo_p99_ms
                                  and point["error_rate"] is not None and point["error_rate"] <= max_error_rate)
    return point
