"""The watch list: what got significantly worse that no gate rule says anything about.

A verdict covers the metrics its rules name. Everything else the paired comparison measures is
checked here, with a default margin per metric kind (``gates.watch``):

- **metrics** no rule covers (every metric of :data:`evalkit.analysis.paired.PAIRED_METRICS` that has a
  paired value on these runs), from the same paired deltas the gate table uses;
- **slices** (``dataset.slice``): each slice's rates (accuracy, error rate, schema-valid, feasible,
  valid-but-infeasible, quality when it differs from correctness), by a paired bootstrap within the
  slice that resamples whole samples, unless a rule targets that slice (``slice:`` / ``per_slice:``).

An entry is listed when its change is *significantly worse than the margin*: the CI bound on the good
side lies beyond the margin on the bad side (higher-is-better: ``ci_high < −margin``; lower-is-better:
``ci_low > +margin``). Rates and scores take an absolute margin (``absolute``, 0.02 = 2 points);
latencies, time to first token, cost and tokens take a relative one (``relative``, 0.2 = 20% worse than
the baseline's value), and their entries carry the ratio candidate / baseline with its CI (the CI of Δ
divided by the baseline's value, plus one). Fewer than
``min_pairs`` pairs, or no CI, is not judged (and listed as such). The watch list never changes a verdict
or an exit code; it is not corrected for multiplicity (it is a list to look at, not a gate).
"""

from __future__ import annotations

import difflib
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from evalkit.analysis.bootstrap import FloatArray, paired_bootstrap, row_mean
from evalkit.analysis.metrics import METRICS
from evalkit.analysis.paired import PAIRED_METRICS, Pairing, flags, paired_deltas
from evalkit.analysis.sample_counts import annotate_counts
from evalkit.config.gate_specs import GateRule, WatchSpec
from evalkit.errors import ConfigError
from evalkit.store.db import Store

RELATIVE_PREFIXES = ("latency_", "ttft_", "cost_", "cold_start")
RELATIVE_SUFFIXES = ("_ms", "_tokens", "_tokens_mean", "_usd")
ALL_SLICES = "*"


def margin_kind(metric: str) -> str:
    """``relative`` for latencies, TTFT, cost and tokens (a share of the baseline); else ``absolute``."""
    if metric.startswith(RELATIVE_PREFIXES) or metric.endswith(RELATIVE_SUFFIXES) or "_ms_" in metric:
        return "relative"
    return "absolute"


def margin_for(metric: str, spec: WatchSpec) -> float:
    if metric in spec.margin:
        return spec.margin[metric]
    return spec.relative if margin_kind(metric) == "relative" else spec.absolute


def check_watch(spec: WatchSpec, suite_file: str | None = None) -> None:
    """Reject ``gates.watch.margin`` keys that are not metrics evalkit compares pairwise, naming the key."""
    for name in spec.margin:
        if name in PAIRED_METRICS:
            continue
        close = difflib.get_close_matches(name, sorted(PAIRED_METRICS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"gates.watch.margin: '{name}' is not a metric with a paired comparison{hint}; "
                          f"use one of {sorted(PAIRED_METRICS)}", file=suite_file, key=f"gates.watch.margin.{name}")


def covered(rules: Iterable[GateRule]) -> set[tuple[str, str | None]]:
    """(metric, slice) pairs some rule decides: slice None is the whole run, ``*`` every slice.

    Reads the optional ``slice`` / ``per_slice`` keys of a rule when the rule model has them."""
    out: set[tuple[str, str | None]] = set()
    for rule in rules:
        if rule.metric is None:
            continue
        target = getattr(rule, "slice", None)
        if getattr(rule, "per_slice", False):
            out.add((rule.metric, ALL_SLICES))
        else:
            out.add((rule.metric, None if target is None else str(target)))
    return out


@dataclass(frozen=True)
class WatchItem:
    """One metric (or one slice's metric) significantly worse than its margin."""

    kind: str  # "metric" or "slice"
    metric: str
    slice: str | None
    baseline: float
    candidate: float
    delta: float
    ci_low: float
    ci_high: float
    n: int
    margin: float
    margin_kind: str  # "absolute" (the metric's unit) or "relative" (share of the baseline)
    higher_is_better: bool
    ratio: float | None = None
    ratio_ci_low: float | None = None
    ratio_ci_high: float | None = None
    worse_pairs: int | None = None  # slices: pairs where the candidate is worse / better on this rate
    better_pairs: int | None = None


def _significantly_worse(higher: bool, ci_low: float, ci_high: float, margin: float, kind: str,
                         baseline: float) -> bool:
    limit = margin * abs(baseline) if kind == "relative" else margin
    return ci_high < -limit if higher else ci_low > limit


def _item(kind: str, metric: str, slice_name: str | None, baseline: float, candidate: float, low: float,
          high: float, n: int, spec: WatchSpec, **extra: Any) -> WatchItem | None:
    higher = METRICS[metric].higher_is_better if metric in METRICS else None
    if higher is None:
        return None
    margin, mk = margin_for(metric, spec), margin_kind(metric)
    if not _significantly_worse(higher, low, high, margin, mk, baseline):
        return None
    ratio = ratio_low = ratio_high = None
    if mk == "relative" and baseline != 0:
        ratio, ratio_low, ratio_high = candidate / baseline, 1 + low / baseline, 1 + high / baseline
    return WatchItem(kind, metric, slice_name, baseline, candidate, candidate - baseline, low, high, n, margin, mk,
                     higher, ratio, ratio_low, ratio_high, **extra)


def _metric_items(deltas: Mapping[str, Mapping[str, Any]], skip: set[tuple[str, str | None]], spec: WatchSpec,
                  not_judged: list[str]) -> tuple[list[WatchItem], list[str]]:
    items, checked = [], []
    for name, d in deltas.items():
        if (name, None) in skip or d.get("delta") is None:
            continue
        if name not in METRICS or METRICS[name].higher_is_better is None:
            continue
        if d.get("ci_low") is None or int(d.get("n") or 0) < spec.min_pairs:
            not_judged.append(f"{name} (n={d.get('n')})")
            continue
        checked.append(name)
        item = _item("metric", name, None, float(d["baseline"]), float(d["candidate"]), float(d["ci_low"]),
                     float(d["ci_high"]), int(d["n"]), spec)
        if item is not None:
            items.append(item)
    return items, checked


def slice_rates(rows: pd.DataFrame) -> dict[str, tuple[FloatArray, FloatArray]]:
    """Per-row (baseline, candidate) values of the rates a slice is watched on."""
    ok_b, ok_c = (rows["status_b"] == "ok").to_numpy(), (rows["status_c"] == "ok").to_numpy()
    correct = (flags(rows["correct_b"]), flags(rows["correct_c"]))
    out = {"accuracy": correct, "error_rate": ((~ok_b).astype(float), (~ok_c).astype(float))}
    quality = (rows["quality_b"].to_numpy(float), rows["quality_c"].to_numpy(float))
    if not (np.array_equal(quality[0], correct[0]) and np.array_equal(quality[1], correct[1])):
        out["quality_mean"] = quality
    if rows["schema_valid_b"].notna().any() or rows["schema_valid_c"].notna().any():
        out["schema_valid_rate"] = (flags(rows["schema_valid_b"]), flags(rows["schema_valid_c"]))
    if rows["feasible_b"].notna().any() or rows["feasible_c"].notna().any():
        out["feasible_rate"] = (flags(rows["feasible_b"]), flags(rows["feasible_c"]))
        out["valid_but_infeasible_rate"] = (flags(rows["schema_valid_b"]) * (1 - flags(rows["feasible_b"])),
                                            flags(rows["schema_valid_c"]) * (1 - flags(rows["feasible_c"])))
    return out


def _slice_items(pairing: Pairing, skip: set[tuple[str, str | None]], spec: WatchSpec, seed: int, resamples: int,
                 not_judged: list[str]) -> tuple[list[WatchItem], list[str]]:
    rows = pairing.rows
    if rows["slice_b"].isna().all():
        return [], []
    rng = np.random.default_rng([seed, zlib.crc32(f"watch|{pairing.baseline}|{pairing.candidate}".encode())])
    names = rows["slice_b"].fillna("(none)").astype(str).to_numpy()
    samples = pd.factorize(rows["sample_id"])[0]
    rates = slice_rates(rows)
    items, checked = [], []
    for name in sorted(set(names)):
        mask = names == name
        n = int(mask.sum())
        if n < spec.min_pairs:
            not_judged.append(f"slice {name} (n={n})")
            continue
        checked.append(name)
        for metric, (a_all, b_all) in rates.items():
            if (metric, name) in skip or (metric, ALL_SLICES) in skip:
                continue
            a, b = a_all[mask], b_all[mask]
            low, high = paired_bootstrap(a, b, row_mean, resamples, rng, spec.confidence, samples[mask])
            if low is None or high is None:
                continue
            worse = a > b if METRICS[metric].higher_is_better else a < b
            better = a < b if METRICS[metric].higher_is_better else a > b
            item = _item("slice", metric, name, float(a.mean()), float(b.mean()), low, high, n, spec,
                         worse_pairs=int(worse.sum()), better_pairs=int(better.sum()))
            if item is not None:
                items.append(item)
    items.sort(key=lambda i: (i.slice or "", -abs(i.delta)))
    return items, checked


def watch_list(pairing: Pairing, deltas: Mapping[str, Mapping[str, Any]], rules: Iterable[GateRule] = (),
               spec: WatchSpec | None = None, seed: int = 0, resamples: int = 2000,
               deltas_confidence: float = 0.95) -> dict[str, Any]:
    """The ``watch`` section of a gate or compare document.

    ``deltas`` are the document's paired deltas (``asdict`` of :class:`Delta`) at ``deltas_confidence``;
    when ``spec.confidence`` differs they are recomputed at that level."""
    spec = spec or WatchSpec()
    base: dict[str, Any] = {"enabled": spec.enabled, "confidence": spec.confidence, "absolute": spec.absolute,
                            "relative": spec.relative, "margin": dict(spec.margin), "min_pairs": spec.min_pairs,
                            "changes_exit_code": False}
    if not spec.enabled:
        return {**base, "items": [], "n_items": 0, "checked": {"metrics": [], "slices": []}, "not_judged": []}
    if spec.confidence != deltas_confidence:
        deltas = {k: asdict(v) for k, v in paired_deltas(pairing, seed, resamples, spec.confidence).items()}
    skip = covered(rules)
    rows = pairing.rows
    if (np.array_equal(rows["quality_b"].to_numpy(float), flags(rows["correct_b"]))
            and np.array_equal(rows["quality_c"].to_numpy(float), flags(rows["correct_c"]))):
        skip.add(("quality_mean", None))  # 0/1 quality: the same number as accuracy, watched (or gated) there
    not_judged: list[str] = []
    metric_items, metrics = _metric_items(deltas, skip, spec, not_judged)
    slice_items, slices = _slice_items(pairing, skip, spec, seed, resamples, not_judged) if spec.slices else ([], [])
    items = metric_items + slice_items
    return {**base, "items": [asdict(i) for i in items], "n_items": len(items),
            "checked": {"metrics": metrics, "slices": slices}, "not_judged": not_judged}


__all__ = ["WatchItem", "add_counts_and_watch", "check_watch", "covered", "margin_for", "margin_kind", "slice_rates", "watch_list"]


def add_counts_and_watch(report: dict[str, Any], store: Store, pairing: Pairing, rules: Sequence[GateRule] = (),
                         watch: WatchSpec | None = None, seed: int = 0, resamples: int = 2000) -> dict[str, Any]:
    """Add the n of every number and the watch list to a gate or compare document (additions only): what
    ``evalkit gate``, ``evalkit compare`` and the report all show."""
    annotate_counts(report, store, pairing)
    report["watch"] = watch_list(pairing, report["deltas"], rules, watch, seed, resamples)
    return report
