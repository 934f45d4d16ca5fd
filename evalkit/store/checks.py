"""Store queries about what a run was checked against: held-out overlap with training data
(``heldout_overlap``), the leakage probe (``leakage``) and the gate checks made on runs (``gate_checks``),
which tell the fine-tune export which held-out sets must stay out of training."""

from __future__ import annotations

import json
from typing import Any

from evalkit.store.base import StoreBase, now


class CheckQueries(StoreBase):
    """Overlap checks, leakage probes and gate checks of runs."""

    # -- held-out overlap -------------------------------------------------------------------
    def insert_overlap(self, row: dict[str, Any]) -> None:
        """One model's overlap check of a run (``pairs`` a list, stored as JSON)."""
        self.sql("DELETE FROM heldout_overlap WHERE run_id = ? AND model = ?", [row["run_id"], row["model"]])
        self.insert_row("heldout_overlap", {**row, "created_at": row.get("created_at") or now()})

    def overlap_checks(self, run_id: str) -> list[dict[str, Any]]:
        """The run's overlap checks, one per model that named training data, pairs decoded."""
        if "heldout_overlap" not in self._tables():
            return []
        rows = self.dicts("SELECT * FROM heldout_overlap WHERE run_id = ? ORDER BY model", [run_id])
        for r in rows:
            r["pairs"] = json.loads(r["pairs"]) if r["pairs"] else []
        return rows

    # -- leakage ----------------------------------------------------------------------------
    def replace_leakage(self, run_id: str, model: str, rows: list[dict[str, Any]]) -> None:
        with self.transaction():
            self.sql("DELETE FROM leakage WHERE run_id = ? AND model = ?", [run_id, model])
            for row in rows:
                self.insert_row("leakage", {"run_id": run_id, "model": model, **row, "created_at": now()})

    def leakage_rows(self, run_id: str) -> list[dict[str, Any]]:
        if "leakage" not in self._tables():
            return []
        rows = self.dicts("SELECT * FROM leakage WHERE run_id = ? ORDER BY model, probe", [run_id])
        for r in rows:
            r["details"] = json.loads(r["details"]) if r["details"] else []
        return rows

    # -- gate checks ------------------------------------------------------------------------
    def record_gate_check(self, run_id: str, suite_name: str, baseline: str, candidate: str, verdict: str) -> None:
        self.insert_row("gate_checks", {"run_id": run_id, "suite_name": suite_name, "baseline": baseline,
                                        "candidate": candidate, "verdict": verdict, "created_at": now()})

    def gated_heldout_messages(self) -> list[tuple[str, str, str, Any]]:
        """(run_id, suite_name, sample_id, messages JSON) of every sample of every run that was gated here."""
        if "gate_checks" not in self._tables():
            return []
        return [(str(r[0]), str(r[1]), str(r[2]), r[3]) for r in self.sql(
            "SELECT s.run_id, g.suite_name, s.sample_id, s.messages FROM samples s "
            "JOIN (SELECT DISTINCT run_id, suite_name FROM gate_checks) g USING (run_id) ORDER BY s.run_id, s.position")]

    # -- fine-tune export -------------------------------------------------------------------
    def finetune_rows(self, run_id: str, teacher: str, student: str) -> list[dict[str, Any]]:
        """Per sample of the run (file order): its messages and target, and the teacher's and student's
        first-repeat answer, status and correctness (a missing row counts as not correct)."""
        return self.dicts(
            "SELECT s.sample_id, s.messages, s.target, t.output AS teacher_output, t.status AS teacher_status, "
            "coalesce(t.correct, false) AS teacher_correct, coalesce(c.correct, false) AS student_correct "
            "FROM samples s "
            "LEFT JOIN results t ON t.run_id = s.run_id AND t.sample_id = s.sample_id AND t.model = ? AND t.repeat = 0 "
            "LEFT JOIN results c ON c.run_id = s.run_id AND c.sample_id = s.sample_id AND c.model = ? AND c.repeat = 0 "
            "WHERE s.run_id = ? ORDER BY s.position", [teacher, student, run_id])

    def answered(self, run_id: str, model: str) -> list[tuple[str, str, Any]]:
        """(sample_id, output, the sample's messages) of a model's successful rows."""
        return [(str(r[0]), str(r[1] or ""), r[2]) for r in self.sql(
            "SELECT r.sample_id, r.output, s.messages FROM results r JOIN samples s USING (run_id, sample_id) "
            "WHERE r.run_id = ? AND r.model = ? AND r.status = 'ok' ORDER BY s.position, r.repeat", [run_id, model])]
