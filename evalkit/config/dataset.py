"""Held-out samples: read a JSONL, CSV or Parquet file, enforce unique ids, filter and limit.

Errors name the file and line (JSONL, CSV) so a user can fix the row; the file's sha256 is kept so
every run records exactly which data it saw.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.config.data_specs import DatasetSpec
from evalkit.errors import DatasetError

_SCALAR = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Sample:
    """One held-out sample: its id, position in the file and all of its fields."""

    id: str
    index: int
    fields: dict[str, Any]
    slice: str | None = None


@dataclass(frozen=True)
class Dataset:
    """The samples a run will use, with the hash of the file they came from."""

    path: Path
    sha256: str
    samples: list[Sample] = field(default_factory=list)
    rows_in_file: int = 0

    def __len__(self) -> int:
        return len(self.samples)


def _detect_format(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    suffixes = [s.lower() for s in path.suffixes]
    if ".jsonl" in suffixes or ".ndjson" in suffixes:
        return "jsonl"
    if ".csv" in suffixes:
        return "csv"
    if ".parquet" in suffixes or ".pq" in suffixes:
        return "parquet"
    raise DatasetError(f"{path}: cannot tell the format from the extension; set dataset.format "
                       "to jsonl, csv or parquet")


def _read_jsonl(path: Path, data: bytes) -> list[tuple[int, dict[str, Any]]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}:{lineno}: not UTF-8 (byte {exc.start} of the line); "
                               "re-encode the file as UTF-8") from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            # Some of json's messages end in "at" already ("Invalid control character at").
            what = exc.msg.removesuffix(" at")
            raise DatasetError(f"{path}:{lineno}: invalid JSON ({what} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise DatasetError(f"{path}:{lineno}: each line must be a JSON object, got "
                               f"{type(obj).__name__}")
        rows.append((lineno, obj))
    return rows


def _read_csv(path: Path, data: bytes) -> list[tuple[int, dict[str, Any]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError(f"{path}:{line}: not UTF-8; re-encode the file as UTF-8") from None
    reader = csv.DictReader(text.splitlines(keepends=True), strict=True)
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        for row in reader:
            if None in row:
                raise DatasetError(f"{path}:{reader.line_num}: more values than header columns")
            if any(v is None for v in row.values()):
                raise DatasetError(f"{path}:{reader.line_num}: fewer values than header columns")
            rows.append((reader.line_num, dict(row)))
    except csv.Error as exc:
        raise DatasetError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None
    return rows


def _read_parquet(path: Path) -> list[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DatasetError(f"{path}: not a readable Parquet file ({exc})") from None
    return [(i + 1, row) for i, row in enumerate(table.to_pylist())]


def _apply_filter(path: Path, rows: list[tuple[int, dict[str, Any]]], expr: str) -> list[int]:
    """Positions of the rows for which the DuckDB SQL expression is true (scalar fields only)."""
    import duckdb
    import pandas as pd

    names = sorted({k for _, r in rows for k, v in r.items() if isinstance(v, _SCALAR)})
    frame = pd.DataFrame(
        {n: [r.get(n) if isinstance(r.get(n), _SCALAR) else None for _, r in rows] for n in names})
    frame["__position"] = range(len(rows))
    con = duckdb.connect()
    try:
        con.register("samples", frame)
        kept = con.execute(f"SELECT __position FROM samples WHERE ({expr}) ORDER BY __position").fetchall()
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        raise DatasetError(f"{path}: dataset.filter {expr!r} is not a valid DuckDB SQL condition over "
                           f"the fields {names}: {first}") from None
    finally:
        con.close()
    return [k for (k,) in kept]


def _id_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _id_problem(value: Any) -> str | None:
    """Why a value cannot be a sample id (ids are strings or integers), or None when it can.

    An integral float (``3.0``: how spreadsheets and pandas write an integer column with gaps) is the
    integer 3; other numbers, booleans, objects and lists are refused rather than stored as their repr.
    """
    if value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return None
    if isinstance(value, float):
        return None if math.isnan(value) or value.is_integer() else "a non-integral number"
    kinds = {bool: "a boolean", dict: "an object", list: "a list", tuple: "a list"}
    return next((name for kind, name in kinds.items() if isinstance(value, kind)), f"a {type(value).__name__}")


def _shown(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)[:80]
    except (TypeError, ValueError):
        return repr(value)[:80]


def load_dataset(path: Path, spec: DatasetSpec) -> Dataset:
    """Read, validate, filter and limit the dataset named by a suite."""
    if path.is_dir():
        raise DatasetError(f"{path} is a directory, not a data file; dataset.path names one JSONL, CSV or "
                           "Parquet file (relative to the suite file)")
    if not path.is_file():
        raise DatasetError(f"dataset not found: {path} (dataset.path is relative to the suite file)")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    fmt = _detect_format(path, spec.format)
    if fmt == "jsonl":
        rows = _read_jsonl(path, data)
    elif fmt == "csv":
        rows = _read_csv(path, data)
    else:
        rows = _read_parquet(path)
    if not rows:
        raise DatasetError(f"{path}: the dataset has no rows")

    seen: dict[str, int] = {}
    for lineno, row in rows:
        if spec.id not in row:
            raise DatasetError(f"{path}:{lineno}: no '{spec.id}' field (dataset.id); fields are "
                               f"{sorted(row)[:12]}")
        problem = _id_problem(row[spec.id])
        if problem is not None:
            raise DatasetError(f"{path}:{lineno}: id {_shown(row[spec.id])} (field '{spec.id}') is {problem}; "
                               "ids must be strings or integers")
        sid = _id_text(row[spec.id])
        if sid is None:
            raise DatasetError(f"{path}:{lineno}: empty id in field '{spec.id}'")
        if sid in seen:
            raise DatasetError(f"{path}:{lineno}: duplicate id '{sid}' (first at line {seen[sid]}); "
                               "ids must be unique")
        seen[sid] = lineno
        if spec.slice and spec.slice not in row:
            raise DatasetError(f"{path}:{lineno}: no '{spec.slice}' field (dataset.slice)")

    positions = list(range(len(rows)))
    if spec.filter:
        positions = _apply_filter(path, rows, spec.filter)
        if not positions:
            raise DatasetError(f"{path}: dataset.filter {spec.filter!r} keeps no sample")
    if spec.limit:
        positions = positions[: spec.limit]

    samples = []
    for pos in positions:
        _, row = rows[pos]
        slice_value = _id_text(row.get(spec.slice)) if spec.slice else None
        samples.append(Sample(id=_id_text(row[spec.id]) or "", index=pos, fields=row, slice=slice_value))
    return Dataset(path=path, sha256=digest, samples=samples, rows_in_file=len(rows))
