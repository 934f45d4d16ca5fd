"""What the held-out overlap checks (and leakage probes) of a run mean for its readers: the blocks of
``evalkit show --json`` and the effect on a gate.

A gate reads the overlap checks of both of its sides' runs and models:

- a side whose training data overlaps the held-out set under ``run.contamination: fail`` (the suite the gate
  reads) gets a failing ``heldout_overlap`` gate row — the verdict is FAIL, whatever the metrics say, because
  the held-out numbers are void (a run made under ``fail`` never gets that far; this catches runs made under
  ``warn``, imported, or gated with a stricter suite later);
- under ``warn`` the verdict is unchanged and the gate document carries ``heldout.warning``, which the
  terminal, Markdown and HTML renderings show beside the verdict;
- a side that named no training data is listed as ``unchecked``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from evalkit.analysis.gates import GateResult, overall_verdict
from evalkit.analysis.paired import Pairing
from evalkit.store.db import Store

HELDOUT_METRIC = "heldout_overlap"


def overlap_block(check: dict[str, Any], examples: int = 5) -> dict[str, Any]:
    """One stored check as the ``evalkit.show/1`` ``heldout_overlap`` entry."""
    return {"policy": check["policy"], "training_path": check["training_path"],
            "training_sha256": check["training_sha256"], "training_source": check["training_source"],
            "training_format": check["training_format"], "n_heldout": check["n_heldout"],
            "n_training": check["n_training"], "exact": check["n_exact"], "near": check["n_near"],
            "contaminated": bool(check["n_exact"] or check["n_near"]), "max_jaccard": check["max_jaccard"],
            "threshold": check["threshold"], "ngram": check["ngram"], "num_perm": check["num_perm"],
            "candidates": check["candidates"], "examples": check["pairs"][:examples]}


def show_blocks(store: Store, run_id: str) -> dict[str, Any]:
    """The ``evalkit.show/1`` additions: ``heldout_overlap`` {MODEL: check} and ``leakage`` {MODEL: {PROBE: …}}."""
    leakage: dict[str, dict[str, Any]] = {}
    for row in store.leakage_rows(run_id):
        leakage.setdefault(row["model"], {})[row["probe"]] = {
            "n": row["n"], "hits": row["hits"], "rate": row["rate"], "k": row["k"], "examples": row["details"][:5]}
    return {"heldout_overlap": {c["model"]: overlap_block(c) for c in store.overlap_checks(run_id)},
            "leakage": leakage}


def _line(side: str, check: dict[str, Any]) -> str:
    top = check["pairs"][:2]
    shown = "; ".join(f"{p['sample_id']} ~ {p['training_ref']} (Jaccard {p['jaccard']:.2f})" for p in top)
    return (f"{side}: {check['n_exact']} exact and {check['n_near']} near duplicate(s) of its {check['n_heldout']} "
            f"held-out inputs in its training data {check['training_path']} (max Jaccard "
            f"{check['max_jaccard']:.2f}; e.g. {shown})")


def add_heldout(report: dict[str, Any], store: Store, pairing: Pairing, policy: str) -> None:
    """Put the sides' overlap checks into a gate document (``heldout``); under ``fail`` an overlap fails it."""
    checked, unchecked, dirty = [], [], []
    for side in (pairing.baseline, pairing.candidate):
        found = {c["model"]: c for c in store.overlap_checks(side.run_id)}.get(side.model)
        if found is None:
            unchecked.append(str(side))
            continue
        checked.append({"side": str(side), **overlap_block(found, examples=3)})
        if found["n_exact"] or found["n_near"]:
            dirty.append(_line(str(side), found))
    block: dict[str, Any] = {"policy": policy, "checked": checked, "unchecked": unchecked,
                             "contaminated": bool(dirty), "warning": None}
    if dirty and policy == "fail":
        report["gates"].append(asdict(GateResult(
            HELDOUT_METRIC, "no held-out input in the training data", "point", None, None, None, None, None, "fail",
            "held-out samples are in the training data (run.contamination: fail): " + " | ".join(dirty))))
        report["verdict"] = overall_verdict(report["gates"])
    elif dirty and policy == "warn":
        block["warning"] = ("the held-out set overlaps the training data, so these numbers may be inflated "
                            "(run.contamination: warn; fail would block): " + " | ".join(dirty))
    report["heldout"] = block
