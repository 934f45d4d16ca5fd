"""Is a file an undamaged evalkit store, and what does a DuckDB failure mean for the user?

A store is checked before it is opened for writing (:class:`evalkit.store.base.StoreBase`), so a damaged
file is never written to:

- DuckDB's own checks: the file header, and the checksum of every block it reads while opening;
- the file's size against the blocks its header accounts for: DuckDB writes whole blocks after a
  fixed header, so bytes appended or a cut-off tail show as a size that is not ``header + k blocks``
  (more whole blocks than the header names is what a checkpoint killed half-way leaves, and is fine);
- evalkit's own tables: one ``schema_migrations`` row per version up to the store's, and every table
  and column those migrations create (compared with the same migrations applied to an in-memory
  database), with the small tables (``runs``, ``run_models``, ``schema_migrations``) read in full so
  their blocks' checksums are verified.

Failures of a statement later on are translated by :func:`translate`: a full disk is "no space left
on …", a block that fails its checksum or cannot be read is "damaged" with the next steps — never an
internal error.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import duckdb

from evalkit.errors import StoreError
from evalkit.store.migrations import MIGRATIONS

HEADER_BYTES = 3 * 4096  # DuckDB's main header and its two database headers precede the first block
SMALL_TABLES = ("schema_migrations", "runs", "run_models")
_DAMAGE_MARKS = ("corrupt", "checksum", "could not read enough bytes", "not a valid duckdb database",
                 "invalidated", "serialization error", "failed to deserialize", "failed to read")


def next_steps(path: Path) -> str:
    """What a user can do with a damaged store."""
    return (f"nothing was written to it. Restore it from a backup, or move it aside (mv {path} {path}.damaged) "
            "so the next run starts a new store; runs that are still readable can be saved first with "
            f"'evalkit export parquet RUN_ID -o DIR --db {path}' (reading commands still open it)")


def damaged(path: Path, what: str) -> StoreError:
    return StoreError(f"{path} is damaged ({what}); {next_steps(path)}")


def no_space(path: Path) -> StoreError:
    where = path.parent if path.parent.exists() else Path(".")
    try:
        free = f"{shutil.disk_usage(where).free / 2**20:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    return StoreError(f"no space left on the device holding {path} ({free}); the transaction that failed was "
                      "rolled back, so nothing is half-written: free some space and run the command again")


def translate(exc: duckdb.Error, path: Path) -> StoreError | None:
    """The user-facing error for a DuckDB failure that is about the file or the disk; None for others."""
    text = str(exc)
    low = text.lower()
    if "no space left" in low or "disk full" in low or "file too large" in low:
        return no_space(path)
    if any(mark in low for mark in _DAMAGE_MARKS):
        return damaged(path, text.splitlines()[0][:300])
    return None


@functools.cache
def reference_columns(version: int) -> dict[str, frozenset[str]]:
    """The tables and columns migrations 1..version create, from an in-memory database."""
    con = duckdb.connect(":memory:")
    try:
        for number, _name, sql in MIGRATIONS:
            if number <= version:
                con.execute(sql)
        return _columns(con)
    finally:
        con.close()


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, frozenset[str]]:
    found: dict[str, set[str]] = {}
    for table, column in con.execute("SELECT table_name, column_name FROM information_schema.columns "
                                     "WHERE table_schema = 'main'").fetchall():
        found.setdefault(str(table), set()).add(str(column))
    return {t: frozenset(c) for t, c in found.items()}


def size_damage(con: duckdb.DuckDBPyConnection, path: Path) -> str | None:
    """A description of a file size that the header's blocks do not account for, or None."""
    row = con.execute("PRAGMA database_size").fetchone()
    if row is None or not path.is_file():
        return None
    block_size, total_blocks, used_blocks = int(row[2]), int(row[3]), int(row[4])
    expected = HEADER_BYTES + block_size * total_blocks
    actual = os.path.getsize(path)
    if total_blocks == 0 or actual == expected:
        return None
    # A checkpoint may truncate free blocks at the end of the file, so the file can be shorter than all the
    # blocks the header counts — never shorter than the blocks in use.
    needed = HEADER_BYTES + block_size * used_blocks
    if actual < needed:
        return f"the file is {actual:,} bytes but its blocks in use need {needed:,}: it was cut short"
    if actual < expected:
        return None
    if (actual - expected) % block_size:
        return (f"the file is {actual:,} bytes, {actual - expected:,} more than its header accounts for and not "
                f"a whole number of {block_size:,}-byte blocks: bytes were added or overwritten")
    return None


def schema_damage(con: duckdb.DuckDBPyConnection, version: int) -> str | None:
    """A description of missing evalkit tables, columns or migration rows, or None."""
    versions = [int(r[0]) for r in con.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()]
    expected = [number for number, _name, _sql in MIGRATIONS if number <= version]
    if versions != expected:
        return f"schema_migrations holds versions {versions[:12]}, not {expected}"
    have = _columns(con)
    for table, columns in sorted(reference_columns(version).items()):
        if table not in have:
            return f"table '{table}' is missing"
        missing = sorted(columns - have[table])
        if missing:
            return f"table '{table}' lacks column(s) {missing[:6]}"
    for table in SMALL_TABLES:
        con.execute(f"SELECT * FROM {table}").fetchall()  # reads every block: checksums verified
    return None


def check(con: duckdb.DuckDBPyConnection, path: Path, version: int) -> None:
    """Raise the 'damaged' StoreError when the open store at ``path`` fails any check above."""
    try:
        problem = size_damage(con, path) or (schema_damage(con, version) if version else None)
    except duckdb.Error as exc:
        translated = translate(exc, path)
        if translated is not None:
            raise translated from None
        problem = f"reading evalkit's tables failed: {str(exc).splitlines()[0][:300]}"
    if problem:
        raise damaged(path, problem)
