"""A damaged store or a full disk is the user's to fix (exit 2, the file, the next step), never "internal
error … please report it"; a damaged store is never written to."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LABEL_SUITE, TEST_KEY, TRIAGE_RULES, run_cli, write_jsonl

from evalkit.errors import StoreError
from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import RuleResponder


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _store_with_a_run(path: Path) -> None:
    with Store(path) as store:
        store.sql("INSERT INTO runs (run_id, suite_name, suite_hash, status, created_at) "
                  "VALUES ('r1', 's', 'h', 'complete', now())")


def _append(path: Path) -> None:
    with path.open("ab") as fh:
        fh.write(random.Random(1).randbytes(4096))


def _overwrite_header_block(path: Path) -> None:
    with path.open("r+b") as fh:  # the first database header: DuckDB's checksum catches it
        fh.seek(4096)
        fh.write(random.Random(2).randbytes(4096))


def _overwrite_start(path: Path) -> None:
    with path.open("r+b") as fh:
        fh.write(random.Random(3).randbytes(4096))


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


DAMAGE = {"appended": _append, "header_block": _overwrite_header_block, "magic": _overwrite_start,
          "truncated": _truncate}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_store_is_refused_for_writing_and_left_untouched(damage, tmp_path):
    path = tmp_path / "s.duckdb"
    _store_with_a_run(path)
    DAMAGE[damage](path)
    before = _sha(path)
    with pytest.raises(StoreError) as caught:
        Store(path)
    text = str(caught.value)
    assert str(path) in text and "backup" in text and "mv " in text, text
    assert _sha(path) == before


def test_a_sound_store_that_was_killed_mid_write_still_opens(tmp_path):
    """The checks must not call a store damaged after a crash: whole blocks past the header's count are
    what a checkpoint killed half-way leaves."""
    path = tmp_path / "s.duckdb"
    _store_with_a_run(path)
    with path.open("ab") as fh:
        fh.write(b"\0" * 262144)
    with Store(path) as store:
        assert store.has_run("r1")


def test_a_store_missing_an_evalkit_column_is_damaged(tmp_path):
    path = tmp_path / "s.duckdb"
    _store_with_a_run(path)
    import duckdb

    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE run_models DROP COLUMN error")
    con.close()
    with pytest.raises(StoreError, match=r"table 'run_models' lacks column\(s\) \['error'\]"):
        Store(path)


@pytest.mark.parametrize("damage", ["appended", "truncated", "magic"])
def test_cli_run_on_a_damaged_store_exits_2_with_the_next_step(damage, tmp_path, cli_env, email_rows):
    write_jsonl(tmp_path / "data.jsonl", email_rows)
    db = tmp_path / "d.duckdb"
    _store_with_a_run(db)
    DAMAGE[damage](db)
    before = _sha(db)
    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY) as server:
        (tmp_path / "suite.yaml").write_text(LABEL_SUITE.format(base=server.url).lstrip())
        done = run_cli(["run", str(tmp_path / "suite.yaml"), "--db", str(db), "--quiet"], cli_env)
        assert len(server.requests) == 0
    assert done.returncode == 2, done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr
    assert str(db) in done.stderr and "backup" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert _sha(db) == before


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m none /mnt 2>/dev/null || "
                            "mount -t tmpfs -o size=1m none /tmp"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(sys.platform != "linux" or not _can_mount_tmpfs(),
                    reason="needs an unprivileged user+mount namespace to mount a small tmpfs")
def test_a_full_disk_is_exit_2_and_leaves_no_half_written_run(tmp_path, cli_env, email_rows):
    """A real full disk: the store on a 3 MiB tmpfs (mounted in a user namespace), a dataset whose
    samples cannot fit. The run row and its samples are one transaction, so nothing of it is left."""
    rows = [dict(email_rows[i % 6], id=f"f{i:05d}", body="x" * 400 + str(i)) for i in range(12000)]
    write_jsonl(tmp_path / "data.jsonl", rows)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY) as server:
        (tmp_path / "suite.yaml").write_text(LABEL_SUITE.format(base=server.url).lstrip())
        script = (f"mount -t tmpfs -o size=3m none {mnt} && "
                  f"{sys.executable} -m evalkit.cli run {tmp_path / 'suite.yaml'} --db {mnt / 'f.duckdb'} --quiet; "
                  f"echo rc=$?; {sys.executable} -c \"from evalkit.store import Store; "
                  f"s = Store('{mnt / 'f.duckdb'}', read_only=True); "
                  "print('runs', s.one('SELECT count(*) FROM runs')[0], 'samples', "
                  "s.one('SELECT count(*) FROM samples')[0])\"")
        done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                              env=cli_env, timeout=300)
        assert len(server.requests) == 0
    assert "rc=2" in done.stdout, (done.stdout, done.stderr)
    assert "no space left on the device holding" in done.stderr and "internal error" not in done.stderr
    assert "runs 0 samples 0" in done.stdout, (done.stdout, done.stderr)
