"""Stage 4 — the DuckDB store: the only place with SQL and the connection (queries, row builders,
transactions, batched inserts, append-only migrations, Parquet export/import)."""

from evalkit.store.db import Store

__all__ = ["Store"]
