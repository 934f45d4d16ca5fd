"""The held-out guard of a run: before any model is called, each model's training data (``training_data``
or its adapter's training record) is compared with the held-out set's rendered inputs
(:mod:`evalkit.analysis.overlap`); ``run.contamination`` decides what an overlap does — ``fail`` stops the
run (exit 2, nothing is called or stored), ``warn`` runs and records it (``heldout_overlap``: show,
report, gate), ``off`` does not look.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evalkit.analysis.overlap import OverlapReport, find_overlap
from evalkit.config.training_data import TrainingData, input_text, load_training_data
from evalkit.errors import ContaminationError
from evalkit.scoring.prepare import Prepared
from evalkit.store.db import Store


@dataclass
class OverlapCheck:
    model: str
    policy: str
    training: TrainingData
    report: OverlapReport

    def row(self, run_id: str) -> dict[str, Any]:
        r, t = self.report, self.training
        return {"run_id": run_id, "model": self.model, "policy": self.policy, "training_path": str(t.path),
                "training_sha256": t.sha256, "training_source": t.source, "training_format": t.format,
                "n_heldout": r.n_heldout, "n_training": r.n_training, "n_exact": r.exact, "n_near": r.near,
                "max_jaccard": r.max_jaccard, "threshold": r.threshold, "ngram": r.ngram, "num_perm": r.num_perm,
                "candidates": r.candidates, "pairs": r.as_dict(all_pairs=True)["pairs"]}

    def message(self) -> str:
        return f"model '{self.model}': training data {self.training.path} ({self.training.source}): " \
               f"{self.report.summary()}"


def check_heldout(prepared: Prepared) -> list[OverlapCheck]:
    """Overlap of the held-out inputs with each model's training data; raises under ``run.contamination: fail``."""
    loaded = prepared.loaded
    policy = loaded.suite.run.contamination
    if policy == "off":
        return []
    heldout = [(r.sample.id, input_text(r.messages)) for r in prepared.rendered]
    checks: list[OverlapCheck] = []
    done: dict[str, OverlapReport] = {}  # one comparison per training file, whichever models name it
    for model in prepared.models:
        training = load_training_data(loaded, model)
        if training is None:
            continue
        if training.sha256 not in done:
            done[training.sha256] = find_overlap(heldout, [(e.ref, e.input) for e in training.examples])
        checks.append(OverlapCheck(model, policy, training, done[training.sha256]))
    bad = [c for c in checks if c.report.contaminated]
    if bad and policy == "fail":
        raise ContaminationError("the held-out set overlaps the training data (run.contamination: fail; no model "
                                 "was called): " + " | ".join(c.message() for c in bad)
                                 + f" — remove those samples from {prepared.dataset.path} or from the training data")
    return checks


def store_checks(store: Store, run_id: str, checks: list[OverlapCheck]) -> None:
    for check in checks:
        store.insert_overlap(check.row(run_id))


def scan_pii(store: Store, run_id: str, prepared: Prepared) -> None:
    """The ``pii`` leakage probe of each model that names training data: its held-out outputs holding email
    addresses or phone numbers of the training data that their input does not hold (``leakage`` table)."""
    import json

    from evalkit.analysis.pii import pii_leaks

    if prepared.loaded.suite.run.contamination == "off":
        return
    for model in prepared.models:
        training = load_training_data(prepared.loaded, model)
        if training is None:
            continue
        rows = [(sid, out, "\n".join(str(m.get("content", "")) for m in (json.loads(msgs) if isinstance(msgs, str)
                                                                          else msgs or [])))
                for sid, out, msgs in store.answered(run_id, model)]
        store.replace_leakage(run_id, model, [pii_leaks(rows, (e.text for e in training.examples))])
