"""The DuckDB store and its schema migrations."""

from evalkit.store.db import Store

__all__ = ["Store"]
