"""One shard of a ``--ray`` run, on a Ray worker: the shard's model clients (and any vLLM engine they
start, beside the GPU Ray gave the shard) calling the requests the driver sends, finished calls handed
back in batches.

The worker holds no store and scores nothing: the driver renders the samples, answers what its cache
holds, scores and writes every row (:mod:`evalkit.engine.ray_run`), so a worker node needs evalkit and
the model endpoints, not the dataset or the suite's scoring code. The calls themselves run as in one
process: each model (or loop group) on an event loop and thread of its own with a lag monitor, its
bounded pool of ``concurrency`` requests in flight (per shard), retries with backoff, warm-up first,
and the same stop when a model fails every call.
"""

from __future__ import annotations

import asyncio
import functools
import os
import queue
import random
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from evalkit.backends import Backend, create_backends, release_servers
from evalkit.config.resolve import ResolvedModel
from evalkit.config.suite import LoadedSuite
from evalkit.engine.loops import LagMonitor, run_on_threads
from evalkit.errors import BackendError, ModelAbortedError
from evalkit.records import ChatRequest, Completion

BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0
RETRY_AFTER_MAX_S = 120.0
TAKE_MAX_ROWS = 2048
TAKE_LINGER_S = 0.1


@dataclass
class Call:
    """One finished request of a shard: the answer, or the error after the last attempt."""

    model: str
    index: int  # the driver's index of the request in what it sent this shard for the model
    completion: Completion | None
    error: str | None = None
    error_kind: str | None = None
    error_status: int | None = None
    attempts: int = 0


@dataclass
class ModelDone:
    """How a model's part of the shard ended."""

    status: str = "complete"
    error: str | None = None
    calls: int = 0
    wall_s: float = 0.0
    warmup_latencies_ms: list[float | None] = field(default_factory=list)


async def call_with_retries(backend: Backend, request: ChatRequest, retries: int) -> tuple[Completion, int]:
    """The answer and the attempts it took (the runner's rule: backoff with jitter, Retry-After honoured)."""
    monitor = LagMonitor.of_running_loop()
    for attempt in range(1, retries + 2):
        try:
            mark = monitor.mark() if monitor else 0.0
            completion = await backend.complete(request)
            if monitor is not None:
                completion.client_lag_ms = monitor.lag_ms_since(mark)
            return completion, attempt
        except BackendError as exc:
            exc.attempts = attempt
            if not exc.retryable or attempt == retries + 1:
                raise
            delay = (min(exc.retry_after, RETRY_AFTER_MAX_S) if exc.retry_after is not None else
                     min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1)) * (0.5 + random.random()))
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


class ShardWorker:
    """The Ray actor of one shard (made remote by the driver: ``ray.remote(ShardWorker)``).

    ``open`` builds and prepares the backends and says who they are; ``start`` runs the calls on
    threads of this process; ``take`` hands back what finished (waiting a little for it), and the
    per-model endings once everything has. A worker that dies is restarted by Ray with the same
    arguments; the driver then opens it again and starts only what it has not received.
    """

    def __init__(self, loaded: LoadedSuite, resolved: dict[str, ResolvedModel], retries: int) -> None:
        self.loaded = loaded
        self.resolved = resolved
        self.retries = retries
        self.backends: dict[str, Backend] = {}
        self.out: queue.SimpleQueue[Call] = queue.SimpleQueue()
        self.done: dict[str, ModelDone] | None = None
        self.failure: BaseException | None = None

    def open(self) -> dict[str, dict[str, Any]]:
        """Start the shard's clients (a launch-mode model's vLLM server starts here); who each model is."""
        if not self.backends:
            self.backends = create_backends(self.loaded, self.resolved)
            for backend in self.backends.values():
                backend.prepare()
        where = {"pid": os.getpid(), "host": socket.gethostname(), "node_id": _node_id()}
        return {name: {"identity": b.identity(), "served_model": b.served_model, "engine_info": b.engine_info(),
                       "loop_group": b.loop_group, **where} for name, b in self.backends.items()}

    def start(self, work: dict[str, list[tuple[int, ChatRequest]]],
              warmups: dict[str, list[ChatRequest]]) -> int:
        """Run ``work`` (per model: the driver's index and the request) in the background; returns the PID."""
        import threading

        groups: dict[str, list[str]] = {}
        for model in work:
            groups.setdefault(self.backends[model].loop_group or f"model:{model}", []).append(model)
        calls = ShardCalls(self.backends, self.retries, self.out)  # the async part: Ray keeps this actor synchronous
        jobs: list[tuple[str, Callable[[], Coroutine[Any, Any, Any]]]] = [
            ("+".join(g), functools.partial(calls.run_group, g, work, warmups)) for g in groups.values()]
        threading.Thread(target=self._run_jobs, args=(jobs,), name="evalkit-shard", daemon=True).start()
        return os.getpid()

    def take(self, wait_s: float) -> tuple[list[Call], dict[str, ModelDone] | None]:
        """What finished since the last take (waiting up to ``wait_s`` for the first); the endings once all did."""
        calls: list[Call] = []
        try:
            calls.append(self.out.get(timeout=wait_s))
            until = time.monotonic() + TAKE_LINGER_S  # a batch per round trip, not a round trip per row
            while len(calls) < TAKE_MAX_ROWS and (left := until - time.monotonic()) > 0 and self.done is None:
                calls.append(self.out.get(timeout=left))
        except queue.Empty:
            pass
        while len(calls) < TAKE_MAX_ROWS and not self.out.empty():
            calls.append(self.out.get_nowait())
        if self.failure is not None and not calls:
            raise self.failure
        return calls, (self.done if self.done is not None and self.out.empty() else None)

    def close(self) -> None:
        """Stop the servers the shard launched."""
        release_servers(self.backends)

    def _run_jobs(self, jobs: list[tuple[str, Callable[[], Coroutine[Any, Any, Any]]]]) -> None:
        try:
            results = run_on_threads([jobs], lambda wait_s: time.sleep(wait_s))
            self.done = {m: d for group in results for m, d in group.items()}
        except BaseException as exc:  # handed to the driver by the next take
            self.failure = exc

class ShardCalls:
    """The calls of one shard, on the event loops of :func:`evalkit.engine.loops.run_on_threads`."""

    def __init__(self, backends: dict[str, Backend], retries: int, out: queue.SimpleQueue[Call]) -> None:
        self.backends = backends
        self.retries = retries
        self.out = out

    async def run_group(self, models: list[str], work: dict[str, list[tuple[int, ChatRequest]]],
                         warmups: dict[str, list[ChatRequest]]) -> dict[str, ModelDone]:
        monitor = LagMonitor.start()
        try:
            done = await asyncio.gather(*(self.run_model(m, work[m], warmups.get(m, [])) for m in models))
            return dict(zip(models, done, strict=True))
        finally:
            monitor.stop()
            for m in models:
                await self.backends[m].aclose()

    async def run_model(self, model: str, items: list[tuple[int, ChatRequest]],
                         warmups: list[ChatRequest]) -> ModelDone:
        backend = self.backends[model]
        outcome = ModelDone()
        if items:
            for request in warmups:  # one at a time, not results; the first one's latency is the cold start
                try:
                    outcome.warmup_latencies_ms.append((await backend.complete(request)).latency_ms)
                except BackendError:
                    outcome.warmup_latencies_ms.append(None)
                    break
        pending = list(range(len(items)))[::-1]
        state = {"successes": 0, "consecutive_failures": 0}
        concurrency = backend.resolved.concurrency
        abort_after = max(10, concurrency)
        started = time.perf_counter()

        async def worker() -> None:
            while pending:
                index, request = items[pending.pop()]
                try:
                    completion, attempts = await call_with_retries(backend, request, self.retries)
                    state["successes"] += 1
                    state["consecutive_failures"] = 0
                    self.out.put(Call(model, index, completion, attempts=attempts))
                    outcome.calls += attempts
                    continue
                except BackendError as exc:
                    error = exc
                state["consecutive_failures"] += 1
                outcome.calls += error.attempts
                self.out.put(Call(model, index, None, str(error), error.kind, error.status, error.attempts))
                if state["successes"] == 0:  # unreachable, or our credentials refused: stop, as one process does
                    fatal = error.kind == "connect" or error.status in (401, 403, 404)
                    if fatal or state["consecutive_failures"] >= abort_after:
                        raise ModelAbortedError(f"model '{model}' stopped after {state['consecutive_failures']} "
                                                f"failed call(s) and no success: {error}")

        workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, max(1, len(items))))]
        try:
            await asyncio.gather(*workers)
        except ModelAbortedError as exc:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            outcome.status, outcome.error = "aborted", str(exc)
        finally:
            outcome.wall_s = time.perf_counter() - started
        return outcome


def _node_id() -> str | None:
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # outside Ray (a unit test driving the class directly)
        return None
