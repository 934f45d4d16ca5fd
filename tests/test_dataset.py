"""Datasets: JSONL, CSV and Parquet read alike; bad rows are reported with file and line."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalkit.config.data_specs import DatasetSpec
from evalkit.config.dataset import load_dataset
from evalkit.errors import DatasetError


def spec(**kw) -> DatasetSpec:
    return DatasetSpec(path="x", **kw)


def test_three_formats_give_the_same_samples(tmp_path: Path, email_rows):
    from conftest import write_jsonl

    jl = write_jsonl(tmp_path / "d.jsonl", email_rows)
    csv_path = tmp_path / "d.csv"
    cols = list(email_rows[0])
    csv_path.write_text(",".join(cols) + "\n" + "".join(
        ",".join('"' + str(r[c]).replace('"', '""') + '"' for c in cols) + "\n" for r in email_rows))
    pq_path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(email_rows), pq_path)
    loaded = [load_dataset(p, spec(slice="slice")) for p in (jl, csv_path, pq_path)]
    for ds in loaded:
        assert [s.id for s in ds.samples] == ["e1", "e2", "e3", "e4", "e5", "e6"]
        assert ds.samples[1].fields["subject"] == "WIN A FREE CRUISE"
        assert ds.samples[2].slice == "hard"
        assert len(ds.sha256) == 64


def test_filter_and_limit(tmp_path: Path, email_rows):
    from conftest import write_jsonl

    path = write_jsonl(tmp_path / "d.jsonl", email_rows)
    ds = load_dataset(path, spec(filter="label = 'spam'", limit=2))
    assert [s.id for s in ds.samples] == ["e2", "e4"]
    assert ds.rows_in_file == 6
    with pytest.raises(DatasetError, match="not a valid DuckDB SQL condition"):
        load_dataset(path, spec(filter="lable = 'spam'"))
    with pytest.raises(DatasetError, match="keeps no sample"):
        load_dataset(path, spec(filter="label = 'nothing'"))


@pytest.mark.parametrize("content, message", [
    (b'{"id": 1}\n{"id": 2\n', r"d.jsonl:2: invalid JSON"),
    (b'{"id": 1}\n[1, 2]\n', r"d.jsonl:2: each line must be a JSON object"),
    (b'{"id": 1}\n{"id": 1}\n', r"d.jsonl:2: duplicate id '1' \(first at line 1\)"),
    (b'{"id": 1}\n{"name": 2}\n', r"d.jsonl:2: no 'id' field"),
    (b'{"id": ""}\n', r"d.jsonl:1: empty id"),
    (b'{"id": 1, "t": "\xff\xfe"}\n', r"d.jsonl:1: not UTF-8"),
    (b"", r"has no rows"),
    (b"\n\n  \n", r"has no rows"),
])
def test_bad_jsonl(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "d.jsonl"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        load_dataset(path, spec())


def test_bad_csv_and_parquet_and_missing(tmp_path: Path):
    path = tmp_path / "d.csv"
    path.write_text("id,text\n1,a\n2,b,extra\n")
    with pytest.raises(DatasetError, match=r"d.csv:3: more values than header columns"):
        load_dataset(path, spec())
    bad_pq = tmp_path / "d.parquet"
    bad_pq.write_bytes(b"not parquet at all")
    with pytest.raises(DatasetError, match="not a readable Parquet file"):
        load_dataset(bad_pq, spec())
    with pytest.raises(DatasetError, match="dataset not found"):
        load_dataset(tmp_path / "missing.jsonl", spec())
    odd = tmp_path / "d.txt"
    odd.write_text("x")
    with pytest.raises(DatasetError, match="cannot tell the format"):
        load_dataset(odd, spec())


def test_bom_and_huge_line(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    big = "x" * 2_000_000
    path.write_bytes(b"\xef\xbb\xbf" + f'{{"id": "a", "t": "{big}"}}\n'.encode())
    ds = load_dataset(path, spec())
    assert ds.samples[0].fields["t"] == big
