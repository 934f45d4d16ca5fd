"""Live progress per model: a rich progress bar on a terminal, plain lines elsewhere (CI logs)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from rich.progress import TaskID


@dataclass
class ModelProgress:
    total: int
    done: int = 0
    correct: int = 0
    errors: int = 0
    cached: int = 0
    latencies: list[float] = field(default_factory=list)

    def summary(self) -> str:
        acc = self.correct / self.done if self.done else 0.0
        lat = sorted(self.latencies[-500:])
        p50 = f"{lat[len(lat) // 2]:.0f}ms" if lat else "-"
        return f"acc {acc:.3f}  p50 {p50}  err {self.errors}  cached {self.cached}"


class Progress(Protocol):
    def start(self, model: str, total: int) -> None: ...
    def advance(self, model: str, correct: bool, error: bool, latency_ms: float | None,
                cached: bool) -> None: ...
    def close(self) -> None: ...


class NullProgress:
    """No output (library use, --json)."""

    def start(self, model: str, total: int) -> None: ...
    def advance(self, model: str, correct: bool, error: bool, latency_ms: float | None,
                cached: bool) -> None: ...
    def close(self) -> None: ...


class _Tracker:
    def __init__(self) -> None:
        self.models: dict[str, ModelProgress] = {}

    def _advance(self, model: str, correct: bool, error: bool, latency_ms: float | None,
                 cached: bool) -> ModelProgress:
        p = self.models[model]
        p.done += 1
        p.correct += int(correct)
        p.errors += int(error)
        p.cached += int(cached)
        if latency_ms is not None and not error:
            p.latencies.append(latency_ms)
        return p


class LineProgress(_Tracker):
    """One line per model every ``every_s`` seconds and at the end: readable in CI logs."""

    def __init__(self, stream: TextIO = sys.stderr, every_s: float = 5.0) -> None:
        super().__init__()
        self.stream, self.every_s = stream, every_s
        self._last: dict[str, float] = {}

    def start(self, model: str, total: int) -> None:
        self.models[model] = ModelProgress(total)
        self._last[model] = time.monotonic()
        print(f"[{model}] {total} to run", file=self.stream, flush=True)

    def advance(self, model: str, correct: bool, error: bool, latency_ms: float | None,
                cached: bool) -> None:
        p = self._advance(model, correct, error, latency_ms, cached)
        now = time.monotonic()
        if p.done == p.total or now - self._last[model] >= self.every_s:
            self._last[model] = now
            print(f"[{model}] {p.done}/{p.total}  {p.summary()}", file=self.stream, flush=True)

    def close(self) -> None: ...


class RichProgress(_Tracker):
    """A bar per model with running accuracy, median latency, errors and cache hits."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                             console=Console(stderr=True), transient=False)
        self._tasks: dict[str, TaskID] = {}
        self._bar.start()

    def start(self, model: str, total: int) -> None:
        self.models[model] = ModelProgress(total)
        self._tasks[model] = self._bar.add_task(model, total=total, stats="")

    def advance(self, model: str, correct: bool, error: bool, latency_ms: float | None,
                cached: bool) -> None:
        p = self._advance(model, correct, error, latency_ms, cached)
        self._bar.update(self._tasks[model], advance=1, stats=p.summary())

    def close(self) -> None:
        self._bar.stop()


def default_progress(quiet: bool = False) -> Progress:
    if quiet:
        return NullProgress()
    return RichProgress() if sys.stderr.isatty() else LineProgress()
