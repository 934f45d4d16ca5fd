"""What every number of a gate or compare document was computed on.

A paired value is computed on the pairs where both sides have it: Brier on the pairs where *both*
models gave a confidence, latency on the pairs where both calls succeeded. That can be far fewer rows
than the run has, and the scorecard's value of the same metric (each model over all its own rows) can
then differ from the paired one. :func:`annotate_counts` adds to the document (additions only):

- ``n_rows``: each side's result rows (the scorecard's ``n``), and ``n_of``: the larger of the two — the
  count a number is "of";
- per paired delta: ``n_of``, ``partial`` (n < n_of) and, where a side's scorecard value differs from
  its paired value, ``unpaired`` ({side: {value, n}});
- per gate row: ``n`` (what the judged value rests on), ``n_of``, ``basis`` (``paired`` for
  max_drop / max_rise, ``candidate rows`` for min / max), ``partial`` and ``unpaired`` likewise.
"""

from __future__ import annotations

import math
from typing import Any

from evalkit.analysis.paired import Pairing
from evalkit.store.db import Store

RELATIVE_RULE_PREFIXES = ("drop", "rise")  # how describe_rule() starts a max_drop / max_rise rule


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)


def scorecards(store: Store, pairing: Pairing) -> dict[str, dict[str, dict[str, Any]]]:
    """Each side's stored metrics (value, n) by metric name."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for role, side in (("baseline", pairing.baseline), ("candidate", pairing.candidate)):
        out[role] = {m["metric"]: m for m in store.metrics(side.run_id) if m["model"] == side.model}
    return out


def _unpaired(card: dict[str, dict[str, dict[str, Any]]], metric: str, baseline: Any,
              candidate: Any) -> dict[str, dict[str, Any]] | None:
    """Both sides' scorecard values and n when either differs from the paired value shown."""
    out, differs = {}, False
    for role, shown in (("baseline", baseline), ("candidate", candidate)):
        row = card[role].get(metric)
        if row is None or row.get("value") is None or shown is None:
            continue
        out[role] = {"value": float(row["value"]), "n": int(row["n"] or 0)}
        differs = differs or not _same(row["value"], shown)
    return out if differs else None


def annotate_counts(doc: dict[str, Any], store: Store, pairing: Pairing) -> dict[str, Any]:
    """Add the counts described in the module docstring to a gate or compare document (in place)."""
    card = scorecards(store, pairing)
    n_rows = {role: int((card[role].get("n") or {}).get("n") or 0) for role in ("baseline", "candidate")}
    n_of = max(max(n_rows.values()), int(doc.get("n_pairs") or 0))
    doc["n_rows"], doc["n_of"] = n_rows, n_of
    deltas = doc.get("deltas") or {}
    for name, d in deltas.items():
        d["n_of"] = n_of
        d["partial"] = int(d.get("n") or 0) < n_of
        d["unpaired"] = _unpaired(card, name, d.get("baseline"), d.get("candidate"))
    for g in doc.get("gates") or []:
        metric = g.get("metric")
        d = deltas.get(metric)
        g["n_of"] = n_of
        if str(g.get("rule", "")).startswith(RELATIVE_RULE_PREFIXES):
            g["basis"], g["n"] = "paired", (int(d["n"]) if d else None)
            g["unpaired"] = _unpaired(card, metric, g.get("baseline"), g.get("candidate")) if d else None
        elif metric in card["candidate"]:
            row = card["candidate"][metric]
            g["basis"], g["n"] = "candidate rows", int(row.get("n") or 0)
            # the baseline and Δ columns of a min/max row are paired: show the paired candidate beside them
            g["unpaired"] = None
            if d and not _same(d.get("candidate"), g.get("candidate")):
                g["paired"] = {"baseline": d.get("baseline"), "candidate": d.get("candidate"), "n": d.get("n")}
        else:  # retention rules: lm-eval documents, counted by their own check
            g["basis"], g["n"], g["unpaired"] = None, None, None
        g["partial"] = g["n"] is not None and g["n"] < n_of
    return doc


def count_label(n: int | None, n_of: int | None, basis: str | None = "paired") -> str:
    """``(paired, n=9 of 300)`` when a number rests on fewer rows than the run has, else ``""``."""
    if n is None or n_of is None or n >= n_of:
        return ""
    return f"({basis + ', ' if basis else ''}n={n} of {n_of})"


__all__ = ["annotate_counts", "count_label", "scorecards"]
