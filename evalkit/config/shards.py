"""Split one suite run over several processes (or machines, or vLLM replicas) and merge the parts.

``evalkit run SUITE --shard I/N`` runs the samples whose stable hash of the sample id falls in part I
of N, so N processes — each pointed at its own replica through ``api_base`` — together cover every
sample exactly once, whatever the order of the dataset. Each writes its own DuckDB file (one writer
per file); ``evalkit export parquet`` and ``evalkit import parquet`` (:mod:`evalkit.store.parquet`)
bring the parts into one run whose metrics are those of an unsharded run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from evalkit.errors import ConfigError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Part ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, sample_id: str) -> bool:
        """Whether this part runs ``sample_id``: a hash of the id, so stable across machines and orders."""
        return part_of(sample_id, self.count) == self.index


def part_of(sample_id: str, count: int) -> int:
    """The part (1-based) of ``count`` that holds ``sample_id``."""
    digest = hashlib.blake2b(sample_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count + 1


def parse_shard(text: str) -> Shard:
    """``"I/N"`` with 1 ≤ I ≤ N."""
    match = _SHARD.match(text)
    if not match:
        raise ConfigError(f"--shard {text!r}: write it as I/N, e.g. 1/4")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise ConfigError(f"--shard {text!r}: I must be between 1 and N")
    return Shard(index, count)
