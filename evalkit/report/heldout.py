"""The report's held-out section: each model's overlap check (counts, Jaccard, examples) and its leakage
probes, for ``templates/heldout.html.j2`` in the provenance."""

from __future__ import annotations

from typing import Any

from evalkit.analysis.heldout_checks import overlap_block
from evalkit.store.db import Store

EXAMPLES = 8


def heldout_section(store: Store, run_id: str, models: list[str]) -> dict[str, Any]:
    checks = {c["model"]: overlap_block(c, EXAMPLES) for c in store.overlap_checks(run_id)}
    leakage: dict[str, list[dict[str, Any]]] = {}
    for row in store.leakage_rows(run_id):
        leakage.setdefault(row["model"], []).append({**row, "details": row["details"][:EXAMPLES]})
    return {"checks": checks, "unchecked": [m for m in models if m not in checks], "leakage": leakage}
