"""Each model's requests on an event loop of its own, in a thread of its own, and how late that loop runs.

One model's client work (LiteLLM spends milliseconds of Python per call) must not land in another
model's latency. So the runner gives every model — or every group of models whose client state is
bound to one loop (:attr:`evalkit.backends.Backend.loop_group`) — its own thread running its own
event loop; finished rows go through a queue to the one thread that writes DuckDB. Threads share the
GIL, so while a run has more than one loop the interpreter's switch interval is lowered from 5 ms to
:data:`SWITCH_INTERVAL_S`: a loop whose answer has arrived gets the interpreter within about that.

:class:`LagMonitor` measures what is left: a tick every :data:`TICK_S` on the loop records how late it
ran. A call's ``client_lag_ms`` is the longest the loop was late while the call was timed — an upper
bound of what the client's own delay added to that call's latency.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from evalkit.engine.progress import Progress
from evalkit.scoring.worker import STOP_REQUESTED

TICK_S = 0.002
# epoll waits in whole milliseconds, so a tick up to 1 ms late is the timer's resolution, not lag.
TIMER_SLACK_S = 0.001
SWITCH_INTERVAL_S = 0.0005
_monitors: dict[int, LagMonitor] = {}


class LagMonitor:
    """Ticks on one event loop and remembers when it ran late (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tick_s: float = TICK_S) -> None:
        self.loop = loop
        self.tick_s = tick_s
        self.late: deque[tuple[float, float]] = deque(maxlen=4096)  # (ran at, seconds late) of late ticks
        self._due = loop.time() + tick_s
        self._handle: asyncio.TimerHandle | None = loop.call_at(self._due, self._tick)

    @classmethod
    def of_running_loop(cls) -> LagMonitor | None:
        """The monitor of the running loop, if one was started there."""
        try:
            return _monitors.get(id(asyncio.get_running_loop()))
        except RuntimeError:
            return None

    @classmethod
    def start(cls) -> LagMonitor:
        """Start (or return) the running loop's monitor."""
        loop = asyncio.get_running_loop()
        monitor = _monitors.get(id(loop))
        if monitor is None or monitor.loop is not loop:
            monitor = _monitors[id(loop)] = cls(loop)
        return monitor

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if _monitors.get(id(self.loop)) is self:
            del _monitors[id(self.loop)]

    def _tick(self) -> None:
        now = self.loop.time()
        late = now - self._due
        if late > TIMER_SLACK_S:
            self.late.append((now, late))
        self._due = now + self.tick_s
        self._handle = self.loop.call_at(self._due, self._tick)

    def mark(self) -> float:
        """Now, on the loop's clock: pass it to :meth:`lag_ms_since` when the timed call ends."""
        return self.loop.time()

    def lag_ms_since(self, start: float) -> float:
        """The longest the loop ran late between ``start`` and now (ms), counting a tick overdue right now."""
        now = self.loop.time()
        worst = now - self._due if now - self._due > TIMER_SLACK_S else 0.0
        for ran_at, late in reversed(self.late):
            if ran_at < start:
                break
            worst = max(worst, min(late, ran_at - start))
        return worst * 1000.0


@contextmanager
def fine_thread_switching(loops: int) -> Iterator[None]:
    """With several loops in threads, let a waiting thread take the interpreter sooner (restored after)."""
    previous = sys.getswitchinterval()
    if loops > 1:
        sys.setswitchinterval(min(previous, SWITCH_INTERVAL_S))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class LoopThread:
    """One coroutine on a fresh event loop in its own thread; its result or error, and a way to cancel it."""

    def __init__(self, name: str, make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        self.name = name
        self._make = make
        self.result: Any = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False
        self.thread = threading.Thread(target=self._run, name=f"evalkit-{name}", daemon=True)

    def start(self) -> LoopThread:
        self.thread.start()
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self._make())
            if self._cancelled:
                self._task.cancel()
            self.result = loop.run_until_complete(self._task)
        except BaseException as exc:  # handed to the runner's thread, which re-raises it
            self.error = exc
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def cancel(self) -> None:
        """Cancel the coroutine from another thread (Ctrl-C in the runner's thread)."""
        self._cancelled = True
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop closed in between
                pass

    def alive(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)


class LockedProgress:
    """A progress display shared by the models' threads: one update at a time."""

    def __init__(self, inner: Progress) -> None:
        self.inner = inner
        self._lock = threading.Lock()

    def start(self, model: str, total: int) -> None:
        with self._lock:
            self.inner.start(model, total)

    def advance(self, model: str, correct: bool, error: bool, latency_ms: float | None,
                cached: bool) -> None:
        with self._lock:
            self.inner.advance(model, correct, error, latency_ms, cached)

    def close(self) -> None:
        with self._lock:
            self.inner.close()


def run_on_threads(batches: list[list[tuple[str, Callable[[], Coroutine[Any, Any, Any]]]]],
                   tick: Callable[[float], None]) -> list[Any]:
    """Run each batch's coroutines side by side, each on its own :class:`LoopThread`, batch after batch;
    ``tick(wait_s)`` runs on this thread meanwhile (the store writer). The coroutines' results in order.

    The first error (Ctrl-C in this thread included) cancels every loop of the batch, waits for them to
    finish and is raised here.
    """
    results: list[Any] = []
    threads: list[LoopThread] = []
    STOP_REQUESTED.clear()
    try:
        with fine_thread_switching(max((len(b) for b in batches), default=0)):
            for batch in batches:
                threads = [LoopThread(name, make).start() for name, make in batch]
                while any(t.alive() for t in threads):
                    tick(0.05)
                for t in threads:
                    if t.error is not None:
                        raise t.error
                    results.append(t.result)
    except BaseException:
        STOP_REQUESTED.set()  # a loop blocked in a scorer or check stops waiting for it
        for t in threads:
            t.cancel()
        for t in threads:
            t.join(timeout=30)
        raise
    return results
