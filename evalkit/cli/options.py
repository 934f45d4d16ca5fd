"""What every command shares: where the store is by default, and the ``--db`` option that says so."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

DEFAULT_DB_NAME = "evalkit.duckdb"
F = TypeVar("F", bound=Callable[..., Any])


def default_db(suite_path: str | None = None) -> str:
    """``$EVALKIT_DB``, else evalkit.duckdb next to the suite (commands given one) or in the current folder."""
    if os.environ.get("EVALKIT_DB"):
        return os.environ["EVALKIT_DB"]
    if suite_path:
        return str(Path(suite_path).resolve().parent / DEFAULT_DB_NAME)
    return DEFAULT_DB_NAME


def db_option(next_to_suite: bool = False) -> Callable[[F], F]:
    """The ``--db`` option; ``next_to_suite``: the command takes a SUITE and defaults to the store beside it."""
    where = "evalkit.duckdb next to the suite" if next_to_suite else "./evalkit.duckdb"
    return click.option("--db", "db", help=f"DuckDB file (default: $EVALKIT_DB or {where}).")
