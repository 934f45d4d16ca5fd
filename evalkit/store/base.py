"""The connection under every store query: opening and migrating a DuckDB file, running statements,
transactions, and the one batch-insert path (an Arrow table per batch, never a row at a time).

Only :mod:`evalkit.store` holds SQL and the connection; every other stage calls the query methods of
:class:`evalkit.store.db.Store` (``tests/test_layout.py`` keeps it so).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from evalkit.errors import StoreError
from evalkit.store import integrity
from evalkit.store.migrations import MIGRATIONS

_T = TypeVar("_T")


def now() -> datetime:
    """UTC now without tzinfo: DuckDB TIMESTAMP columns hold naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_json(value: Any) -> str | None:
    """A value as the text of a JSON column (None stays NULL)."""
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def arrow_schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    """An Arrow schema from (column, type) pairs: the types a batch of rows is inserted with."""
    return pa.schema(list(fields))


def json_values(row: dict[str, Any]) -> list[Any]:
    """A row's values ready for a parameterised INSERT: dicts and lists as JSON text."""
    return [to_json(v) if isinstance(v, (dict, list)) else v for v in row.values()]


class StoreBase:
    """An open evalkit DuckDB file, migrated to the current schema."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self._depth = 0  # open transaction() blocks: only the outermost one begins and commits
        if read_only and not self.path.is_file():
            raise StoreError(f"no evalkit store at {self.path} (run a suite first, or pass --db PATH)")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_file():
                # Checked through a read-only connection first: a damaged store is never opened for writing.
                probe = self._connect(read_only=True)
                try:
                    self._check_store(probe, writing=True)
                finally:
                    probe.close()
        self._con = self._connect(read_only)
        self._check_and_migrate(read_only)

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower():
                pid = re.search(r"PID (\d+)", text)
                holder = f" (PID {pid.group(1)})" if pid else ""
                raise StoreError(f"{self.path} is in use by another process{holder}; wait for it to "
                                 "finish or use another --db file") from None
            raise StoreError(f"{self.path} cannot be opened as a DuckDB database: "
                             f"{text.splitlines()[0]}; {integrity.next_steps(self.path)}") from None
        except duckdb.Error as exc:
            raise StoreError(f"{self.path} cannot be opened: {str(exc).splitlines()[0]}; "
                             f"{integrity.next_steps(self.path)}") from None

    def _execute(self, query: str, params: Sequence[Any] | None, fetch: Callable[[Any], _T]) -> _T:
        """Run a statement and fetch its result; a full disk or a damaged block becomes a StoreError that
        says what to do, and a statement cut short by Ctrl-C is the KeyboardInterrupt it is."""
        try:
            return fetch(self._con.execute(query, params))
        except duckdb.InterruptException:
            raise KeyboardInterrupt from None
        except duckdb.Error as exc:
            if "KeyboardInterrupt" in str(exc):  # Ctrl-C while DuckDB read a registered Arrow batch
                raise KeyboardInterrupt from None
            translated = integrity.translate(exc, self.path)
            if translated is None:
                raise
            raise translated from None
        except RuntimeError as exc:
            if "interrupted" in str(exc).lower():
                raise KeyboardInterrupt from None
            raise

    # -- statements ---------------------------------------------------------------------------
    def sql(self, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement and consume its result (DuckDB requires it before the next one)."""
        return self._execute(query, params, lambda cur: cur.fetchall())

    def one(self, query: str, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
        """The first row of a query, or None (the whole result is consumed)."""
        rows = self.sql(query, params)
        return rows[0] if rows else None

    def dicts(self, query: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """A query's rows as dicts keyed by column name."""
        return self._execute(query, params, lambda cur: [dict(zip([d[0] for d in cur.description], r))
                                                        for r in cur.fetchall()])

    def frame(self, query: str, params: Sequence[Any] | None = None) -> Any:
        """A query's rows as a pandas DataFrame."""
        return self._execute(query, params, lambda cur: cur.df())

    def arrow(self, query: str, params: Sequence[Any] | None = None) -> pa.Table:
        """A query's rows as an Arrow table."""
        table: pa.Table | None = self._execute(query, params, lambda cur: cur.to_arrow_table())
        assert table is not None, query  # a query has a result set: DuckDB gives None only for statements
        return table

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together or not at all; nested blocks join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.sql("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.sql("ROLLBACK")
            raise
        self._depth = 0
        self.sql("COMMIT")

    def insert_batch(self, table: str, rows: list[dict[str, Any]] | Any, schema: pa.Schema | None = None,
                     on_conflict_skip: bool = False) -> int:
        """Insert rows (dicts with ``schema``, or a DataFrame / Arrow table) in one statement, by column name.

        With ``on_conflict_skip`` rows whose key is already stored are left out. Returns the rows written.
        """
        if isinstance(rows, list):
            if not rows:
                return 0
            rows = pa.Table.from_pylist(rows, schema=schema)
        view = f"_evalkit_{table}_batch"
        try:
            self._con.register(view, rows)
        except duckdb.Error as exc:
            if "KeyboardInterrupt" in str(exc):  # Ctrl-C while DuckDB read the batch's schema
                raise KeyboardInterrupt from None
            raise
        try:
            # DuckDB reports the rows an INSERT wrote; ON CONFLICT DO NOTHING leaves the skipped ones out.
            written = self.one(f"INSERT INTO {table} BY NAME SELECT * FROM {view}"
                               + (" ON CONFLICT DO NOTHING" if on_conflict_skip else ""))
        finally:
            self._con.unregister(view)
        return int(written[0]) if written else 0

    def insert_row(self, table: str, row: dict[str, Any]) -> None:
        """Insert one row of a small table (runs); dicts and lists become JSON text."""
        cols = list(row)
        self.sql(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", json_values(row))

    def close(self) -> None:
        try:
            self._con.close()
        except duckdb.Error as exc:  # the last checkpoint can meet a full disk, too
            raise integrity.translate(exc, self.path) or exc from None

    def __enter__(self) -> StoreBase:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------------
    def _tables(self) -> set[str]:
        return {r[0] for r in self.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")}

    def schema_version(self) -> int:
        """The store's migration version (0: not yet an evalkit store)."""
        if "schema_migrations" not in self._tables():
            return 0
        row = self.one("SELECT max(version) FROM schema_migrations")
        return int(row[0] or 0) if row else 0

    def _check_store(self, con: duckdb.DuckDBPyConnection, writing: bool) -> int:
        """Refuse a foreign file, a newer schema, or (before writing) a damaged store; returns its version."""
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
        if tables and "schema_migrations" not in tables:
            raise StoreError(f"{self.path} is a DuckDB file but not an evalkit store (tables: "
                             f"{sorted(tables)[:6]}); use another --db file")
        current = 0
        if tables:
            try:
                row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
            except duckdb.Error as exc:
                raise integrity.translate(exc, self.path) or integrity.damaged(
                    self.path, str(exc).splitlines()[0]) from None
            current = int(row[0] or 0) if row else 0
        latest = MIGRATIONS[-1][0]
        if current > latest:
            raise StoreError(f"{self.path} was written by a newer evalkit (schema {current} > {latest}); "
                             "upgrade evalkit")
        if writing:
            integrity.check(con, self.path, current)
        return current

    def _check_and_migrate(self, read_only: bool) -> None:
        current = self._check_store(self._con, writing=False)
        latest = MIGRATIONS[-1][0]
        if current == latest:
            return
        if read_only:
            raise StoreError(f"{self.path} needs a schema upgrade ({current} → {latest}); open it once "
                             "with a writing command such as 'evalkit run'")
        self.sql("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                 "name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)")
        for version, name, sql in MIGRATIONS:
            if version <= current:
                continue
            try:
                with self.transaction():
                    self.sql(sql)
                    self.sql("INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, name, now()])
            except duckdb.Error as exc:
                raise StoreError(f"migration {version} ({name}) failed on {self.path}: {exc}") from None
