"""The DuckDB store: the single source of truth that reports, gates and analyses read.

:class:`Store` is the only way into the file: its query methods come from one module per group of
tables (:mod:`~evalkit.store.runs`, :mod:`~evalkit.store.results`, :mod:`~evalkit.store.analyses`,
:mod:`~evalkit.store.load`) over
the connection, transactions and batched inserts of :mod:`~evalkit.store.base`. Rows are built by
:mod:`evalkit.store.rows`; the schema lives in :mod:`evalkit.store.migrations` (append-only).
"""

from __future__ import annotations

from evalkit.store.analyses import AnalysisQueries
from evalkit.store.base import now, to_json
from evalkit.store.checks import CheckQueries
from evalkit.store.explorer import ExplorerQueries
from evalkit.store.judgements import JudgementQueries
from evalkit.store.load import LoadQueries
from evalkit.store.results import ResultQueries
from evalkit.store.runs import RunQueries

__all__ = ["Store", "now", "to_json"]


class Store(RunQueries, ResultQueries, AnalysisQueries, LoadQueries, JudgementQueries, CheckQueries, ExplorerQueries):
    """An open evalkit DuckDB file, migrated to the current schema; use it as a context manager."""

    def __enter__(self) -> Store:
        return self
