"""The report's "LLM judge" section: who judged, on what scale, what it cost, whether it agrees with people,
the pairwise verdict and its position bias, and the verdicts themselves (lowest scores and failures first)."""

from __future__ import annotations

import json
from typing import Any

from evalkit.scoring.judge import human_rater_model
from evalkit.store.db import Store

MAX_VERDICTS = 30
MAX_TEXT = 600
ROWS = [  # (metric, label, kind)
    ("quality_mean", "Judged quality (mean, 0-1)", "score"), ("judge_calls", "Judge calls made by this run", "count"),
    ("judge_cost_usd", "Judge cost (not in the model's cost)", "usd"), ("judge_errors", "Unreadable or failed verdicts", "count"),
    ("judge_agreement", "Agreement with people (same score)", "rate"), ("judge_kappa", "Cohen's kappa with people", "score"),
    ("judge_spearman", "Spearman with people", "score"), ("judge_win_rate", "Pairwise win rate (candidate)", "rate"),
    ("judge_position_disagreement", "Verdict changed when the order swapped", "rate"),
]


def _clip(text: Any) -> str:
    value = "" if text is None else str(text)
    return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"


def judge_section(store: Store, run_id: str, config: dict[str, Any],
                  metrics: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any] | None:
    """None when the run has no judge."""
    judge = ((config or {}).get("scoring") or {}).get("judge")
    if not judge:
        return None
    frame = store.judgements_frame(run_id, judge.get("human"))
    verdicts = []
    rater = human_rater_model(config) if judge.get("human") else None
    if len(frame):
        ordered = frame.assign(_bad=frame["status"] != "error").sort_values(["_bad", "score"], na_position="first")
        for r in ordered.head(MAX_VERDICTS).to_dict("records"):
            verdicts.append({"model": r["model"], "sample_id": r["sample_id"], "kind": r["kind"],
                             "order": r["pair_order"], "status": r["status"], "verdict": r["verdict"],
                             "score": r["score"], "reasoning": _clip(r["reasoning"]), "error": _clip(r["error"]),
                             "human": json.loads(str(r["human"])) if r["human"] is not None and r["model"] == rater
                             and r["kind"] == "pointwise" else None})
    judged = sorted({str(m) for m in frame["model"]}) if len(frame) else []
    rows = [(key, label, kind) for key, label, kind in ROWS
            if any(metrics.get(m, {}).get(key) for m in judged)]
    return {"model": judge.get("model"), "scale": judge.get("scale", [1, 5]), "rubric": judge.get("rubric"),
            "pairwise": bool(judge.get("pairwise")), "human": judge.get("human"),
            "human_model": rater,
            "models": judged, "rows": rows, "verdicts": verdicts, "n_verdicts": len(frame)}
