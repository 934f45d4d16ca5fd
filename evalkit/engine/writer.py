"""The one writer of a run's results: calls finished on the models' threads, scored, made rows and
batched into DuckDB here (so none of that runs on a model's timed event loop)."""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable
from typing import Any

from evalkit.scoring.worker import STOP_REQUESTED
from evalkit.store.db import Store

FLUSH_ROWS = 256
FLUSH_SECONDS = 1.0


class ResultWriter:
    """Buffers finished rows and writes them to DuckDB in batches."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.buffer: list[dict[str, Any]] = []
        self.written = 0
        self._last = time.monotonic()

    def add(self, row: dict[str, Any]) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= FLUSH_ROWS or time.monotonic() - self._last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            rows, self.buffer = self.buffer, []
            self.written += self.store.insert_results(rows)
        self._last = time.monotonic()

    def drain(self, rows: queue.SimpleQueue[Callable[[], dict[str, Any]]], wait_s: float) -> None:
        """Make and add the rows of the calls the models' threads finished (waiting up to ``wait_s`` for
        the first): each is a function that scores the call and returns its row."""
        try:
            row: Callable[[], dict[str, Any]] | None = rows.get(timeout=wait_s) if wait_s > 0 else rows.get_nowait()
        except queue.Empty:
            row = None
        while row is not None:
            try:
                made = row()
            except (KeyboardInterrupt, asyncio.CancelledError):
                if not STOP_REQUESTED.is_set():
                    raise  # the Ctrl-C itself: the caller stops the run (and drains again, landing below)
                made = None  # stopped while scoring it (user code asked to stop): not stored; --resume asks again
            if made is not None:
                self.add(made)
            try:
                row = rows.get_nowait()
            except queue.Empty:
                row = None
        if time.monotonic() - self._last >= FLUSH_SECONDS:
            self.flush()
