"""Hybrid routing from stored results: the tuned model answers the confident majority, the frontier
model the rest. No extra model call: both models already answered every held-out sample.

A policy escalates a sample to the large model when the routing signal (the small model's stored
confidence, or another model's — a router) is below a threshold; a missing signal escalates. Two
deployment styles:

- **cascade**: the small model always runs; an escalation adds the large call (cost and latency add).
- **router-first**: a router decides up front and only one model runs (assumes the signal is
  available before the small model answers, e.g. from a separate cheap router model).

The recommended threshold for a target ("accuracy within D of the large model at least cost") is
chosen on one half of the samples and evaluated on the other half (a seeded split by sample id), in
both directions, so the recommendation is not fitted to the samples it is judged on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from evalkit.analysis.bootstrap import paired_bootstrap, tail_mean
from evalkit.analysis.capacity import CostInputs, js_params, model_cost, policy_monthly, stored_inputs
from evalkit.analysis.costs import HOURS_PER_MONTH
from evalkit.analysis.paired import Pairing, Side, flags, pair
from evalkit.analysis.routing_curve import summary as gap_summary
from evalkit.errors import ConfigError
from evalkit.store.db import now

STYLES = ("cascade", "router")


@dataclass(frozen=True)
class Policy:
    """One threshold in one deployment style, evaluated on a set of samples."""

    style: str
    threshold: float
    share_escalated: float
    accuracy: float
    feasible_rate: float | None
    tail5: float
    brier: float | None
    cost_per_1k: float | None
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    pareto: bool = False


@dataclass
class RoutingData:
    """Per-sample arrays of the small (s) and large (l) model, aligned on the same samples."""

    sample_ids: np.ndarray
    signal: np.ndarray
    correct_s: np.ndarray
    correct_l: np.ndarray
    quality_s: np.ndarray
    quality_l: np.ndarray
    feasible_s: np.ndarray | None
    feasible_l: np.ndarray | None
    conf_s: np.ndarray
    conf_l: np.ndarray
    cost_s: np.ndarray | None
    cost_l: np.ndarray | None
    latency_s: np.ndarray
    latency_l: np.ndarray

    def subset(self, mask: np.ndarray) -> RoutingData:
        return RoutingData(**{k: (v[mask] if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()})


def routing_data(pairing: Pairing, signal: dict[str, float] | None = None) -> RoutingData:
    """Arrays from a pairing whose baseline is the small model and candidate the large one."""
    rows = pairing.rows
    conf_s = rows["confidence_b"].to_numpy(dtype=float, na_value=np.nan)
    if signal is not None:
        sig = np.array([signal.get(sid, np.nan) for sid in rows["sample_id"]], dtype=float)
    else:
        sig = conf_s.copy()
    has_feasible = rows["feasible_b"].notna().any()
    costs = rows["cost_usd_b"].notna().all() and rows["cost_usd_c"].notna().all()
    return RoutingData(
        sample_ids=rows["sample_id"].to_numpy(), signal=np.nan_to_num(sig, nan=-np.inf),
        correct_s=flags(rows["correct_b"]), correct_l=flags(rows["correct_c"]),
        quality_s=rows["quality_b"].to_numpy(float), quality_l=rows["quality_c"].to_numpy(float),
        feasible_s=flags(rows["feasible_b"]) if has_feasible else None,
        feasible_l=flags(rows["feasible_c"]) if has_feasible else None,
        conf_s=conf_s, conf_l=rows["confidence_c"].to_numpy(dtype=float, na_value=np.nan),
        cost_s=rows["cost_usd_b"].to_numpy(float) if costs else None,
        cost_l=rows["cost_usd_c"].to_numpy(float) if costs else None,
        latency_s=rows["latency_ms_b"].to_numpy(dtype=float, na_value=np.nan),
        latency_l=rows["latency_ms_c"].to_numpy(dtype=float, na_value=np.nan))


def thresholds(signal: np.ndarray, points: int = 101) -> np.ndarray:
    """Never escalate (-inf), every signal quantile, and always escalate (+inf)."""
    finite = signal[np.isfinite(signal)]
    qs = np.unique(np.quantile(finite, np.linspace(0, 1, points))) if len(finite) else np.array([])
    # a threshold just above each quantile, so "signal < t" escalates that quantile's samples too
    above = np.nextafter(qs, np.inf)
    return np.concatenate([[-np.inf], above, [np.inf]])


def evaluate_policy(d: RoutingData, t: float, style: str) -> Policy:
    esc = d.signal < t
    correct = np.where(esc, d.correct_l, d.correct_s)
    quality = np.where(esc, d.quality_l, d.quality_s)
    conf = np.where(esc, d.conf_l, d.conf_s)
    has = ~np.isnan(conf)
    brier = float(np.mean((conf[has] - correct[has]) ** 2)) if has.all() and has.any() else None
    feasible = (None if d.feasible_s is None or d.feasible_l is None
                else float(np.where(esc, d.feasible_l, d.feasible_s).mean()))
    if style == "cascade":
        cost = None if d.cost_s is None or d.cost_l is None else d.cost_s + np.where(esc, d.cost_l, 0.0)
        latency = d.latency_s + np.where(esc, d.latency_l, 0.0)
    else:
        cost = None if d.cost_s is None or d.cost_l is None else np.where(esc, d.cost_l, d.cost_s)
        latency = np.where(esc, d.latency_l, d.latency_s)
    lat = latency[~np.isnan(latency)]
    return Policy(style=style, threshold=float(t), share_escalated=float(esc.mean()), accuracy=float(correct.mean()),
                  feasible_rate=feasible, tail5=tail_mean(quality), brier=brier,
                  cost_per_1k=None if cost is None else float(cost.mean() * 1000),
                  latency_ms_p50=float(np.percentile(lat, 50)) if len(lat) else None,
                  latency_ms_p95=float(np.percentile(lat, 95)) if len(lat) else None)


def mark_pareto(policies: list[Policy]) -> list[Policy]:
    """Flag the policies no other policy beats on both cost (lower) and accuracy (higher)."""
    out = []
    for p in policies:
        if p.cost_per_1k is None:
            out.append(p)
            continue
        dominated = any(q.cost_per_1k is not None and q.cost_per_1k <= p.cost_per_1k and q.accuracy >= p.accuracy
                        and (q.cost_per_1k < p.cost_per_1k or q.accuracy > p.accuracy) for q in policies)
        out.append(Policy(**{**asdict(p), "pareto": not dominated}))
    return out


def sweep(d: RoutingData, style: str) -> list[Policy]:
    return mark_pareto([evaluate_policy(d, t, style) for t in thresholds(d.signal)])


def oracle(d: RoutingData) -> dict[str, Any]:
    """The upper bound: escalate exactly the samples the small model gets wrong and the large one right."""
    esc = (d.correct_s == 0) & (d.correct_l == 1)
    cost = (None if d.cost_s is None or d.cost_l is None
            else float((d.cost_s + np.where(esc, d.cost_l, 0.0)).mean() * 1000))
    return {"share_escalated": float(esc.mean()), "accuracy": float(np.maximum(d.correct_s, d.correct_l).mean()),
            "cost_per_1k": cost}


def split_mask(sample_ids: np.ndarray, seed: int) -> np.ndarray:
    """A stable half split by sample id: a sample's side depends only on its id and the seed."""
    return np.array([hashlib.sha256(f"{seed}:{sid}".encode()).digest()[0] % 2 == 0 for sid in sample_ids])


def halves(sample_ids: np.ndarray, seed: int) -> dict[str, Any]:
    """What the folds' A and B are: the two halves of a seeded split of the samples by id."""
    mask = split_mask(sample_ids, seed)
    return {"A": int(mask.sum()), "B": int((~mask).sum()), "seed": seed,
            "how": f"the samples split in two by a hash of (seed {seed}, sample id): half A holds "
                   f"{int(mask.sum())}, half B {int((~mask).sum())}; 'A→B' chooses the threshold on A and judges "
                   "it on B, 'B→A' the reverse"}


def choose(policies: list[Policy], large_accuracy: float, max_drop: float,
           monthly: Callable[[Policy], float | None] | None = None) -> Policy | None:
    """The cheapest policy whose accuracy is within max_drop of the large model's (ties: fewer escalations).

    Cheapest by ``monthly(policy)`` — the deployment's monthly cost at the volume, a self-hosted side always
    on (:func:`evalkit.analysis.capacity.policy_monthly`) — where it prices the policy; else by cost per call.
    The two orderings differ: at a low volume an always-on box costs more than sending everything to the API,
    however little GPU time each of its calls takes."""
    ok = [p for p in policies if p.accuracy >= large_accuracy - max_drop - 1e-12]
    if not ok:
        return None

    def cost(p: Policy) -> tuple[int, float, float]:
        month = monthly(p) if monthly is not None else None
        if month is not None:
            return 0, month, p.share_escalated
        return 1, (p.cost_per_1k if p.cost_per_1k is not None else p.share_escalated), p.share_escalated
    return min(ok, key=cost)


def recommend(d: RoutingData, style: str, max_drop: float, seed: int = 0, resamples: int = 2000,
              monthly: Callable[[Policy], float | None] | None = None) -> list[dict[str, Any]]:
    """Choose on one half (by ``monthly`` cost, see :func:`choose`), evaluate on the other, both ways; CI of the
    held-out accuracy difference."""
    mask = split_mask(d.sample_ids, seed)
    folds: list[dict[str, Any]] = []
    for name, fit, test in (("A→B", mask, ~mask), ("B→A", ~mask, mask)):
        if fit.sum() < 2 or test.sum() < 2:
            raise ConfigError("too few paired samples to split for a recommendation (need at least 4)")
        dfit, dtest = d.subset(fit), d.subset(test)
        chosen = choose(sweep(dfit, style), float(dfit.correct_l.mean()), max_drop, monthly)
        if chosen is None:
            folds.append({"fold": name, "threshold": None, "note": "no threshold meets the target on the fitting half"})
            continue
        held = evaluate_policy(dtest, chosen.threshold, style)
        esc = dtest.signal < chosen.threshold
        routed = np.where(esc, dtest.correct_l, dtest.correct_s)
        low, high = paired_bootstrap(dtest.correct_l, routed, lambda m: m.mean(axis=-1), resamples,
                                     np.random.default_rng([seed, len(folds)]))
        folds.append({"fold": name, "threshold": chosen.threshold, "n_fit": int(fit.sum()), "n_test": int(test.sum()),
                      "accuracy_fit": chosen.accuracy, "accuracy_test": held.accuracy,
                      "large_accuracy_test": float(dtest.correct_l.mean()),
                      "delta_vs_large_test": held.accuracy - float(dtest.correct_l.mean()),
                      "delta_ci_low": low, "delta_ci_high": high, "share_escalated_test": held.share_escalated,
                      "cost_per_1k_test": held.cost_per_1k,
                      "meets_target_test": held.accuracy >= float(dtest.correct_l.mean()) - max_drop - 1e-12})
    return folds


def deployment_inputs(store: Any, run_id: str, d: RoutingData, small: str, large: str,
                      gpu_usd_per_hour: float | None = None, monthly_usd: float | None = None,
                      requests_per_second: float | None = None) -> tuple[CostInputs, CostInputs]:
    """The cost inputs of both sides: suite cost blocks and measured throughput from the stored run, the per-call
    price from the paired rows (as the policies' cost per 1k). ``gpu_usd_per_hour`` or a fixed per-replica
    ``monthly_usd`` (e.g. a reserved instance) overrides the small model's GPU price (it is then self-hosted),
    ``requests_per_second`` its per-replica throughput."""
    stored = stored_inputs(store, run_id)
    sides = [replace(stored.get(name, CostInputs()), cost_per_call=None if costs is None else float(costs.mean()))
             for name, costs in ((small, d.cost_s), (large, d.cost_l))]
    if monthly_usd is not None:
        gpu_usd_per_hour = monthly_usd / HOURS_PER_MONTH
    if gpu_usd_per_hour is not None:
        sides[0] = replace(sides[0], gpu_usd_per_hour=gpu_usd_per_hour)
    if requests_per_second is not None:
        sides[0] = replace(sides[0], requests_per_second=requests_per_second)
    return sides[0], sides[1]


def self_hosting(small_inputs: CostInputs, large_inputs: CostInputs, volume_per_day: float,
                 large: str = "large") -> dict[str, Any]:
    """When does serving the small model on always-on replicas beat paying the large model's API per call?

    The small model's ``cost`` block at the volume (:func:`evalkit.analysis.capacity.model_cost`) against the
    large model as the baseline: replicas, their throughput's source, monthly cost and the exact break-even.
    """
    if not small_inputs.self_hosted:
        return {"break_even_calls_per_day": None, "break_even_requests_per_day": None,
                "note": "needs a GPU price (--gpu-usd-per-hour, --gpu-monthly-usd or the suite's cost block)"}
    block = model_cost(small_inputs, volume_per_day, large_inputs, large)
    return {**block, "break_even_calls_per_day": block["break_even_requests_per_day"],
            "self_hosted_monthly_usd": block["monthly_cost_usd"], "api_cost_per_call": large_inputs.cost_per_call,
            "note": block["note"] or block["break_even_note"]}


def analyse(store: Any, run_id: str, small: str, large: str, signal_model: str | None = None,
            max_drop: float = 0.01, volume_per_day: float = 100_000, seed: int = 0,
            resamples: int = 2000, gpu_usd_per_hour: float | None = None,
            gpu_monthly_usd: float | None = None, requests_per_second: float | None = None) -> dict[str, Any]:
    """Sweep every threshold in both styles, mark the Pareto set, recommend out of sample, store it all."""
    pairing = pair(store, Side(run_id, small), Side(run_id, large))
    signal = None
    if signal_model is not None and signal_model != small:
        stored = store.confidences(run_id, signal_model, repeat=0)
        if not stored:
            raise ConfigError(f"run {run_id} has no model '{signal_model}' to route on")
        signal = {sid: (c if c is not None else np.nan) for sid, c in stored}
    d = routing_data(pairing, signal)
    if not np.isfinite(d.signal).any():
        raise ConfigError(f"'{signal_model or small}' has no stored confidence to route on; give the suite a "
                          "confidence source (logprobs or a field), or route on a router model with --signal")
    signal_name = signal_model or small
    policies = {style: sweep(d, style) for style in STYLES}
    result: dict[str, Any] = {
        "format": "evalkit.route/1", "run_id": run_id, "small": small, "large": large, "signal": signal_name,
        "n_pairs": int(len(d.sample_ids)), "volume_per_day": volume_per_day, "max_drop": max_drop,
        "small_only": asdict(evaluate_policy(d, -np.inf, "cascade")),
        "large_only": asdict(evaluate_policy(d, np.inf, "router")), "oracle": oracle(d),  # the large model alone
        "policies": {s: [asdict(p) for p in ps] for s, ps in policies.items()},  # monthly_cost_usd added below
        "halves": halves(d.sample_ids, seed),
    }
    result["gap_recovery"] = gap_summary(result["policies"]["cascade"], d.correct_s, d.correct_l)
    small_inputs, large_inputs = deployment_inputs(store, run_id, d, small, large, gpu_usd_per_hour, gpu_monthly_usd,
                                                   requests_per_second)

    def monthly(p: Policy) -> float | None:  # the recommendation ranks by the deployment's monthly cost
        return policy_monthly(p.style, p.share_escalated, small_inputs, large_inputs, volume_per_day)
    result["recommendation"] = {s: recommend(d, s, max_drop, seed, resamples, monthly) for s in STYLES}
    result["self_hosting"] = self_hosting(small_inputs, large_inputs, volume_per_day, large)
    result["cost_params"] = {"small": js_params(small_inputs), "large": js_params(large_inputs)}
    result["small_only"]["monthly_cost_usd"] = policy_monthly("cascade", 0.0, small_inputs, large_inputs, volume_per_day)
    result["large_only"]["monthly_cost_usd"] = policy_monthly("router", 1.0, small_inputs, large_inputs, volume_per_day)
    for listed in result["policies"].values():
        for p in listed:
            p["monthly_cost_usd"] = policy_monthly(p["style"], p["share_escalated"], small_inputs, large_inputs,
                                                   volume_per_day)
    created = now()
    rows = []
    for listed in result["policies"].values():
        for p in listed:
            rows.append({**p, "run_id": run_id, "small": small, "large": large, "signal": signal_name,
                         "volume_per_day": volume_per_day, "created_at": created})
    recommendations = [{"style": style, "max_drop": max_drop, "fold": fold["fold"], "detail": fold, "created_at": created}
                       for style, folds in result["recommendation"].items() for fold in folds]
    store.replace_routing((run_id, small, large, signal_name), pd.DataFrame(rows), recommendations)
    return result
