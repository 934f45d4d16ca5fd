"""The report's side-by-side sample explorer: which samples it carries, and the JSON blob the page reads.

Every sample when they fit; past :data:`MAX_SAMPLES` (or :data:`MAX_BYTES` of JSON) the explorer keeps, in this
order, the regressions of the gate pair (baseline right, candidate wrong, invalid or infeasible — the definition of
:func:`evalkit.analysis.paired.regressions`; all of them unless they would crowd out the rest), the worst rows of each
model (the gallery's order, up to ``MAX_WORST`` a model), then a random sample seeded by the suite's ``run.seed``
(at least ``RANDOM_SHARE`` of the cap); the page says how many of each.

The blob is one ``<script type="application/json">``: :func:`script_json` escapes ``<``, ``>``, ``&`` and the JS
line separators, so no string in it can close the script element; the page builds its DOM with ``textContent``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from evalkit.report.gallery import order_worst
from evalkit.store.db import Store

MAX_SAMPLES = 2000
MAX_BYTES = 1_500_000  # of JSON: the rest of the report stays well within its 5 MB
MAX_TEXT = 2000
MAX_WORST = 60
RANDOM_SHARE = 0.1  # of the cap kept for random samples however many regressions there are
FORMAT = "evalkit.explorer/1"


def _flag(series: pd.Series) -> np.ndarray:
    out: np.ndarray = series.astype("float64").fillna(0.0).to_numpy() > 0
    return out


def _clip(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"… [{len(text) - MAX_TEXT:,} more characters]"


def _json_list(value: Any) -> list[str]:
    if not isinstance(value, str):
        return []
    try:
        loaded = json.loads(value)
    except ValueError:
        return [value]
    return [_clip(v if isinstance(v, str) else json.dumps(v)) or "" for v in loaded] if isinstance(loaded, list) else \
        [_clip(value) or ""]


def _num(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return None if math.isnan(f) else round(f, 6)


def _bool(value: Any) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(value)


def pair_flags(light: pd.DataFrame, baseline: str, candidate: str) -> pd.DataFrame:
    """Per (sample, repeat) both sides have: ``regression`` and ``improvement`` of candidate against baseline."""
    keys = ["sample_id", "repeat"]
    b = light[light["model"] == baseline].set_index(keys)
    c = light[light["model"] == candidate].set_index(keys)
    both = b.join(c, how="inner", lsuffix="_b", rsuffix="_c")

    def lost(column: str, had: str, lose: str) -> np.ndarray:
        out: np.ndarray = _flag(both[f"{column}_{had}"]) & ~_flag(both[f"{column}_{lose}"])
        return out

    regression = lost("correct", "b", "c") | lost("schema_valid", "b", "c") | lost("feasible", "b", "c")
    improvement = lost("correct", "c", "b") | lost("schema_valid", "c", "b") | lost("feasible", "c", "b")
    return pd.DataFrame({"regression": regression, "improvement": improvement,
                         "position": both["position_b"].to_numpy()}, index=both.index)


def _choose(light: pd.DataFrame, baseline: str | None, candidate: str | None, seed: int,
            limit: int) -> tuple[list[tuple[str, int]], dict[tuple[str, int], str], dict[str, int]]:
    """(sample keys in priority order: regressions, worst, seeded random; why each is there; counts). Regressions
    take at most what the cap leaves after each model's worst rows and :data:`RANDOM_SHARE` of random ones."""
    units = light.drop_duplicates(["sample_id", "repeat"]).sort_values(["position", "repeat"], kind="stable")
    every = list(zip(units["sample_id"].astype(str), units["repeat"].astype(int)))
    counts = {"total": len(every), "regressions": 0, "improvements": 0}
    flags = None
    if baseline and candidate and baseline != candidate:
        flags = pair_flags(light, baseline, candidate)
        counts["regressions"] = int(flags["regression"].sum())
        counts["improvements"] = int(flags["improvement"].sum())
    why: dict[tuple[str, int], str] = {}
    order: list[tuple[str, int]] = []

    def take(keys: list[tuple[str, int]], reason: str) -> None:
        for k in keys:
            if k not in why:
                why[k] = reason
                order.append(k)

    worst_keys: list[tuple[str, int]] = []
    for model in light["model"].drop_duplicates():
        rows = light[light["model"] == model]
        n_worst = min(MAX_WORST, max(1, math.ceil(0.05 * len(rows))))
        worst = order_worst(rows, light[light["model"] != model]).head(n_worst)
        worst_keys += list(zip(worst["sample_id"].astype(str), worst["repeat"].astype(int)))
    left_out: set[tuple[str, int]] = set()
    if flags is not None:
        reg = flags[flags["regression"]].sort_values("position", kind="stable")
        keys = [(str(s), int(r)) for s, r in reg.index]
        quota = len(keys) if len(every) <= limit else max(0, limit - len(set(worst_keys)) - int(RANDOM_SHARE * limit))
        take(keys[:quota], "regression")
        left_out = set(keys[quota:])  # regressions past the quota are not drawn as "random" either
    take(worst_keys, "worst")
    rest = [k for k in every if k not in why and k not in left_out]
    picks = np.random.default_rng(seed).permutation(len(rest))
    take([rest[i] for i in picks], "random")
    return order, why, counts


def _answer(row: dict[str, Any]) -> dict[str, Any]:
    return {"status": row["status"], "correct": _bool(row["correct"]), "quality": _num(row["quality"]),
            "confidence": _num(row["confidence"]), "schema_valid": _bool(row["schema_valid"]),
            "feasible": _bool(row["feasible"]), "output": _clip(row["output"]), "parsed": _clip(row["parsed"]),
            "parse_error": _clip(row["parse_error"]), "schema_errors": _json_list(row["schema_errors"]),
            "violations": _json_list(row["violations"]), "score_error": _clip(row["score_error"]),
            "latency_ms": _num(row["latency_ms"]), "ttft_ms": _num(row["ttft_ms"]),
            "prompt_tokens": row["prompt_tokens"], "completion_tokens": row["completion_tokens"],
            "cost_usd": _num(row["cost_usd"]), "finish_reason": row["finish_reason"], "error": _clip(row["error"]),
            "error_kind": row["error_kind"]}


def _messages(text: Any, pool: dict[str, int]) -> list[list[Any]]:
    """[role, index into the string pool] per rendered message (system prompts repeat: stored once)."""
    try:
        messages = json.loads(text) if isinstance(text, str) else []
    except ValueError:
        messages = []
    out = []
    for m in messages if isinstance(messages, list) else []:
        content = m.get("content") if isinstance(m, dict) else m
        body = _clip(content if isinstance(content, str) else json.dumps(content)) or ""
        out.append([str(m.get("role", "")) if isinstance(m, dict) else "", pool.setdefault(body, len(pool))])
    return out


def _target(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return _clip(text)
    return _clip(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def _entries(store: Store, run_id: str, wanted: list[tuple[str, int]], why: dict[tuple[str, int], str],
             pool: dict[str, int]) -> list[dict[str, Any]]:
    ids = sorted({s for s, _ in wanted})
    answers: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for row in store.explorer_answers(run_id, ids):
        answers.setdefault((str(row["sample_id"]), int(row["repeat"])), {})[row["model"]] = _answer(row)
    samples = {str(s["sample_id"]): s for s in store.explorer_samples(run_id, ids)}
    out = []
    for key in wanted:
        sample = samples.get(key[0], {})
        out.append({"id": key[0], "repeat": key[1], "position": sample.get("position"), "slice": sample.get("slice"),
                    "target": _target(sample.get("target")), "why": why[key],
                    "messages": _messages(sample.get("messages"), pool), "answers": answers.get(key, {})})
    return out


def explorer(store: Store, run_id: str, models: list[str], baseline: str | None, candidate: str | None,
             seed: int = 0, limit: int = MAX_SAMPLES, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """The explorer's data (``evalkit.explorer/1``) and the counts the page states. Past ``max_bytes`` of JSON the
    cap shrinks in proportion (the shares of regressions, worst and random rows recomputed for it)."""
    light = store.explorer_light_frame(run_id)
    for _ in range(4):
        order, why, counts = _choose(light, baseline, candidate, seed, limit)
        pool: dict[str, int] = {}
        rows = _entries(store, run_id, order[:limit], why, pool)
        size = sum(len(json.dumps(e, ensure_ascii=False)) for e in rows) + sum(len(t) + 3 for t in pool)
        if size <= max_bytes or len(rows) <= 1:
            break
        limit = max(1, int(len(rows) * max_bytes / size * 0.97))
    while len(rows) > 1 and sum(len(json.dumps(e, ensure_ascii=False)) for e in rows) > max_bytes:
        rows = rows[: int(len(rows) * 0.9)]  # a last resort; the loop above nearly always fits
    shown = {"regression": 0, "worst": 0, "random": 0}
    for e in rows:
        shown[e["why"]] += 1
    used = {i for e in rows for _, i in e["messages"]}
    strings = [t if i in used else "" for t, i in pool.items()]
    rows.sort(key=lambda e: (e["position"] if e["position"] is not None else 1 << 60, e["repeat"]))
    repeats = bool(light["repeat"].max() > 0) if len(light) else False
    summary = {"shown": len(rows), "total": counts["total"], "regressions": shown["regression"],
               "regressions_total": counts["regressions"], "improvements_total": counts["improvements"],
               "worst": shown["worst"], "random": shown["random"], "seed": seed,
               "complete": len(rows) == counts["total"]}
    return {"format": FORMAT, "models": models, "baseline": baseline, "candidate": candidate, "repeats": repeats,
            "summary": summary, "strings": strings, "samples": rows}


def summary_text(summary: dict[str, Any]) -> str:
    """'showing 2,000 of 100,000: 312 regressions, 60 worst, 1,628 random (seed 0)', or all of them."""
    if summary["complete"]:
        return f"showing all {summary['total']:,} samples"
    parts = []
    if summary["regressions_total"]:
        of = "" if summary["regressions"] == summary["regressions_total"] else f" of {summary['regressions_total']:,}"
        parts.append(f"{summary['regressions']:,}{of} regressions")
    parts.append(f"{summary['worst']:,} worst")
    parts.append(f"{summary['random']:,} random (seed {summary['seed']})")
    return f"showing {summary['shown']:,} of {summary['total']:,}: " + ", ".join(parts)


def script_json(data: dict[str, Any]) -> str:
    """``data`` as JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` is left raw,
    so neither ``</script>`` nor ``<!--`` can occur; U+2028/U+2029 escaped too."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                         ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)
    return text


def explorer_context(store: Store, run_id: str, models: list[str], baseline: str | None, candidate: str | None,
                     seed: int) -> dict[str, Any]:
    """What ``explorer.html.j2`` reads: ``explorer`` (summary and the pair), its text and the escaped JSON blob."""
    data = explorer(store, run_id, models, baseline, candidate, seed)
    return {"explorer": {"summary": data["summary"], "text": summary_text(data["summary"]),
                         "baseline": baseline, "candidate": candidate, "n_models": len(models)},
            "explorer_json": script_json(data)}
