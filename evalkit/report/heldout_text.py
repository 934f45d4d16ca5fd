"""The held-out overlap of a gate's sides, as the lines the terminal and Markdown summaries print beside
the verdict (the gate document's ``heldout`` block, :mod:`evalkit.analysis.heldout_checks`)."""

from __future__ import annotations

from typing import Any


def heldout_lines(report: dict[str, Any]) -> list[str]:
    block = report.get("heldout")
    if not block:
        return []
    lines = []
    if block.get("warning"):
        lines.append("WARNING: " + str(block["warning"]))
    elif block.get("contaminated") and block.get("policy") == "fail":
        lines.append("held-out overlap: the heldout_overlap gate failed (run.contamination: fail)")
    for c in block.get("checked", []):
        if not c["contaminated"]:
            lines.append(f"held-out check {c['side']}: no overlap with its training data {c['training_path']} "
                         f"({c['n_heldout']} held-out inputs, {c['n_training']} training examples)")
    if block.get("unchecked"):
        lines.append(f"held-out check: not checked for {', '.join(block['unchecked'])} (no training data named: "
                     "training_data, or the adapter's training.json)")
    return lines
