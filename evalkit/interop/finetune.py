"""The next fine-tune set from a run: the rendered messages of chosen samples plus an answer to learn, as
chat JSONL (OpenAI ``messages`` or ShareGPT ``conversations``), each row with its provenance.

Selection (``--where``), from the teacher's and the student's stored rows (repeat 0):

- ``student_wrong``: the student's answer is wrong (or its call failed);
- ``regressions``: the teacher is right and the student wrong — the corrections the student most needs;
- ``teacher_correct``: the teacher is right (its successes, whatever the student did);
- ``all``: every sample.

The assistant turn is the sample's target where it has one (JSON targets as JSON text), else the teacher's
answer; a sample with neither (no target, teacher call failed) is skipped and counted.

The guard: a row whose input (the user turns, by normalised content hash — :func:`evalkit.analysis.overlap.
content_hash`) is a sample of a run that gated a model in this store (``gate_checks``) is refused unless
``allow_heldout``: training on a held-out set voids every later evaluation on it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evalkit.analysis.overlap import content_hash
from evalkit.config.training_data import input_text
from evalkit.errors import ConfigError, ContaminationError
from evalkit.store.db import Store

Where = Literal["student_wrong", "regressions", "teacher_correct", "all"]
Format = Literal["openai", "sharegpt"]
WHERE: tuple[Where, ...] = ("student_wrong", "regressions", "teacher_correct", "all")
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}


@dataclass
class Export:
    rows: list[dict[str, Any]] = field(default_factory=list)
    selected: int = 0
    skipped_no_answer: int = 0
    refused: Counter[str] = field(default_factory=Counter)   # held-out suite (gated run) -> rows refused
    allowed_heldout: int = 0

    def summary(self) -> str:
        refused = sum(self.refused.values())
        parts = [f"{len(self.rows)} rows written of {self.selected} selected"]
        if self.skipped_no_answer:
            parts.append(f"{self.skipped_no_answer} skipped (no target and no teacher answer)")
        if refused:
            where = ", ".join(f"{n} of suite {s}" for s, n in self.refused.most_common())
            parts.append(f"{refused} refused: their input is in a held-out set that gated a model in this store "
                         f"({where}); --allow-heldout includes them, and voids later evaluations on that set")
        if self.allowed_heldout:
            parts.append(f"{self.allowed_heldout} held-out rows included (--allow-heldout)")
        return "; ".join(parts)


def _why(where: Where, teacher_ok: bool, student_ok: bool) -> str:
    return f"{where}: teacher {'right' if teacher_ok else 'wrong'}, student {'right' if student_ok else 'wrong'}"


def _chosen(where: Where, teacher_ok: bool, student_ok: bool) -> bool:
    if where == "student_wrong":
        return not student_ok
    if where == "regressions":
        return teacher_ok and not student_ok
    if where == "teacher_correct":
        return teacher_ok
    return True


def _formatted(messages: list[dict[str, Any]], answer: str, fmt: Format, provenance: dict[str, Any]) -> dict[str, Any]:
    turns = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    turns.append({"role": "assistant", "content": answer})
    if fmt == "openai":
        return {"messages": turns, "evalkit": provenance}
    return {"conversations": [{"from": SHAREGPT_ROLES.get(t["role"], t["role"]), "value": t["content"]}
                              for t in turns], "evalkit": provenance}


def heldout_hashes(store: Store) -> dict[str, str]:
    """Normalised input hash -> the suite whose gated held-out set holds that input."""
    found: dict[str, str] = {}
    for _run_id, suite, _sample_id, messages in store.gated_heldout_messages():
        parsed = json.loads(messages) if isinstance(messages, str) else messages or []
        found.setdefault(content_hash(input_text(parsed)), suite)
    return found


def build_export(store: Store, run_id: str, teacher: str, student: str, where: Where, fmt: Format,
                 allow_heldout: bool = False) -> Export:
    models = {m["model"] for m in store.run_models(run_id)}
    for role, name in (("--teacher", teacher), ("--student", student)):
        if name not in models:
            raise ConfigError(f"{role} {name!r} is not a model of run {run_id}; its models are {sorted(models)}")
    guard = heldout_hashes(store)
    out = Export()
    for row in store.finetune_rows(run_id, teacher, student):
        teacher_ok, student_ok = bool(row["teacher_correct"]), bool(row["student_correct"])
        if not _chosen(where, teacher_ok, student_ok):
            continue
        out.selected += 1
        messages = json.loads(row["messages"]) if isinstance(row["messages"], str) else row["messages"]
        target = json.loads(row["target"]) if isinstance(row["target"], str) else row["target"]
        if target is not None:
            answer, source = (target if isinstance(target, str) else json.dumps(target, ensure_ascii=False)), "target"
        elif row["teacher_status"] == "ok" and row["teacher_output"] is not None:
            answer, source = str(row["teacher_output"]), "teacher"
        else:
            out.skipped_no_answer += 1
            continue
        suite = guard.get(content_hash(input_text(messages)))
        if suite is not None and not allow_heldout:
            out.refused[suite] += 1
            continue
        out.allowed_heldout += suite is not None
        provenance = {"run_id": run_id, "sample_id": row["sample_id"], "why": _why(where, teacher_ok, student_ok),
                      "answer_from": source, "teacher": teacher, "student": student,
                      **({"heldout_suite": suite} if suite is not None else {})}
        out.rows.append(_formatted(messages, answer, fmt, provenance))
    if not out.rows and out.refused:
        raise ContaminationError(f"nothing to export: {out.summary()}")
    return out


def write_jsonl(export: Export, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in export.rows), encoding="utf-8")
