"""The DuckDB store: migrations, foreign files, locking, batched idempotent writes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from evalkit.errors import RunNotFoundError, StoreError
from evalkit.store import Store
from evalkit.store.db import now
from evalkit.store.migrations import MIGRATIONS


def _row(i: int, **kw):
    row = {"run_id": "r", "model": "m", "sample_id": f"s{i}", "repeat": 0, "status": "ok", "quality": 1.0,
           "correct": True, "attempts": 1, "cache_hit": False, "cache_key": f"k{i}", "created_at": now()}
    row.update(kw)
    return row


def test_new_store_is_migrated_once_and_records_it(tmp_path: Path):
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        assert store.schema_version() == MIGRATIONS[-1][0]
    with Store(path) as store:  # reopening applies nothing twice
        rows = store.sql("SELECT version, name FROM schema_migrations ORDER BY version")
        assert rows == [(v, n) for v, n, _ in MIGRATIONS]


def test_foreign_or_newer_or_corrupt_files_are_refused(tmp_path: Path):
    foreign = tmp_path / "other.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE t (x INT)")
    con.close()
    with pytest.raises(StoreError, match="not an evalkit store"):
        Store(foreign)
    newer = tmp_path / "newer.duckdb"
    with Store(newer) as store:
        store.sql("INSERT INTO schema_migrations VALUES (999, 'future', now())")
    with pytest.raises(StoreError, match="newer evalkit"):
        Store(newer)
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot be opened"):
        Store(junk)
    with pytest.raises(StoreError, match="no evalkit store"):
        Store(tmp_path / "absent.duckdb", read_only=True)


def test_results_are_inserted_once_per_key(tmp_path: Path):
    with Store(tmp_path / "s.duckdb") as store:
        assert store.insert_results([_row(i) for i in range(500)]) == 500
        # the same keys again (a resumed run re-sending finished rows) change nothing
        assert store.insert_results([_row(i, quality=0.0) for i in range(250, 750)]) == 250
        assert store.one("SELECT count(*), sum(quality) FROM results") == (750, 500.0)
        assert store.done_keys("r", "m") == {(f"s{i}", 0) for i in range(750)}


def test_cache_lookup_returns_newest_successful_answer(tmp_path: Path):
    with Store(tmp_path / "s.duckdb") as store:
        store.insert_results([_row(1, cache_key="k", output="old", run_id="a"),
                              _row(1, cache_key="k", output="new", run_id="b"),
                              _row(1, cache_key="k", output=None, status="error", run_id="c")])
        hits = store.cached_responses(["k", "missing"])
        assert set(hits) == {"k"} and hits["k"]["output"] == "new"


def test_run_lookup_by_prefix_and_latest(tmp_path: Path):
    with Store(tmp_path / "s.duckdb") as store:
        with pytest.raises(RunNotFoundError, match="no runs yet"):
            store.resolve_run_id("latest")
        for rid in ("20260101-000000-aaaaaa", "20260102-000000-bbbbbb"):
            store.create_run({"run_id": rid, "suite_name": "s", "suite_hash": "h", "status": "complete",
                              "created_at": now()})
        assert store.resolve_run_id("latest") == "20260102-000000-bbbbbb"
        assert store.resolve_run_id("20260101") == "20260101-000000-aaaaaa"
        with pytest.raises(RunNotFoundError, match="matches 2 runs"):
            store.resolve_run_id("2026")
        with pytest.raises(RunNotFoundError, match="recent runs"):
            store.resolve_run_id("nope")


def test_second_process_gets_a_clear_message(tmp_path: Path):
    path = tmp_path / "s.duckdb"
    Store(path).close()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from evalkit.store import Store
        s = Store({str(path)!r})
        print("ready", flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreError, match="in use by another process"):
            Store(path)
    finally:
        holder.kill()
        holder.wait()
    with Store(path) as store:  # the file is intact afterwards
        assert store.schema_version() == MIGRATIONS[-1][0]
