"""RouteLLM's summary numbers of a routing curve: APGR and CPT, with the random-router line and the oracle curve.

The curve is accuracy against the share of calls that go to the strong (large) model, one point per threshold
of the sweep (share 0: the weak model alone, share 1: the strong model alone). Definitions as in RouteLLM
(lm-sys/RouteLLM, ``routellm/evals/evaluate.py``):

- **APGR** (average performance gap recovered) = (AUC_router − AUC_weak) / (AUC_strong − AUC_weak), the areas
  under the curve by the trapezoidal rule over the share of strong calls; AUC_weak and AUC_strong are the
  constant lines at each model's own accuracy over the same span. A random router scores 0.5, the oracle more.
- **CPT(x%)** (call-performance threshold) = the share of strong calls at which the router first recovers x% of
  the quality gap, i.e. reaches weak + x·(strong − weak). RouteLLM interpolates the share linearly against the
  accuracy (``np.interp``), which assumes accuracy rises with the share; here the curve is walked in order of
  share and the crossing is interpolated on the first segment that reaches the target, so a curve that dips
  gives the smallest share that truly recovers x%, not an average over the dip.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CPT_LEVELS = (0.5, 0.8, 0.95)


def _auc(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0)) if len(x) > 1 else 0.0


def curve(share: np.ndarray, accuracy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points in order of share (ties in share: in the given order, which is the sweep's)."""
    order = np.argsort(share, kind="stable")
    return np.asarray(share, float)[order], np.asarray(accuracy, float)[order]


def apgr(share: np.ndarray, accuracy: np.ndarray, weak: float, strong: float) -> float | None:
    """(AUC_router − AUC_weak) / (AUC_strong − AUC_weak) over the curve's span; None without a gap to recover."""
    x, y = curve(share, accuracy)
    span = float(x[-1] - x[0]) if len(x) else 0.0
    if strong <= weak or span <= 0:
        return None
    return (_auc(x, y) - weak * span) / ((strong - weak) * span)


def cpt(share: np.ndarray, accuracy: np.ndarray, weak: float, strong: float, level: float) -> float | None:
    """The smallest share of strong calls whose (interpolated) accuracy recovers ``level`` of the gap."""
    if strong <= weak:
        return None
    target = weak + level * (strong - weak)
    x, y = curve(share, accuracy)
    if not len(x):
        return None
    if y[0] >= target - 1e-12:
        return float(x[0])
    for i in range(1, len(x)):
        if y[i] >= target - 1e-12:
            if y[i] == y[i - 1]:
                return float(x[i])
            return float(x[i - 1] + (target - y[i - 1]) / (y[i] - y[i - 1]) * (x[i] - x[i - 1]))
    return None


def oracle_curve(correct_s: np.ndarray, correct_l: np.ndarray, points: int = 101) -> dict[str, list[float]]:
    """The best accuracy any router can reach at each share of strong calls: escalate the samples only the strong
    model gets right first, then those where both agree, and last those only the weak model gets right."""
    s, lg = np.asarray(correct_s, float), np.asarray(correct_l, float)
    n = len(s)
    gain = float(((s == 0) & (lg == 1)).sum()) / n if n else 0.0
    loss = float(((s == 1) & (lg == 0)).sum()) / n if n else 0.0
    weak = float(s.mean()) if n else 0.0
    x = np.linspace(0.0, 1.0, points)
    y = weak + np.minimum(x, gain) - np.maximum(0.0, x - (1.0 - loss))
    return {"share": [float(v) for v in x], "accuracy": [float(v) for v in y]}


def summary(policies: list[dict[str, Any]], correct_s: np.ndarray, correct_l: np.ndarray) -> dict[str, Any]:
    """APGR and CPT of a sweep's policies (share_escalated, accuracy), the random router's and the oracle's."""
    weak = float(np.mean(correct_s)) if len(correct_s) else 0.0
    strong = float(np.mean(correct_l)) if len(correct_l) else 0.0
    share = np.array([p["share_escalated"] for p in policies], float)
    accuracy = np.array([p["accuracy"] for p in policies], float)
    x, y = curve(share, accuracy)
    orc = oracle_curve(correct_s, correct_l)
    ox, oy = np.array(orc["share"]), np.array(orc["accuracy"])
    gap = strong - weak
    return {
        "weak_accuracy": weak, "strong_accuracy": strong, "gap": gap,
        "apgr": apgr(x, y, weak, strong), "apgr_random": 0.5 if gap > 0 else None,
        "apgr_oracle": apgr(ox, oy, weak, strong),
        "cpt": {f"{round(level * 100)}%": cpt(x, y, weak, strong, level) for level in CPT_LEVELS},
        "cpt_random": {f"{round(level * 100)}%": (level if gap > 0 else None) for level in CPT_LEVELS},
        "cpt_oracle": {f"{round(level * 100)}%": cpt(ox, oy, weak, strong, level) for level in CPT_LEVELS},
        "curve": {"share": [float(v) for v in x], "accuracy": [float(v) for v in y]},
        "oracle_curve": orc,
        "note": None if gap > 0 else ("the large model is not more accurate than the small one here: there is no "
                                      "quality gap to recover, so APGR and CPT are undefined"),
    }
