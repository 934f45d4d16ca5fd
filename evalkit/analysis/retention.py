"""Capability retention, compared: the suite's retention candidate against its baseline on one lm-eval
metric, paired over the documents both answered (bootstrap CI), or from lm-eval's own values and
standard errors for corpus-level metrics. The lm-eval runs themselves are :mod:`evalkit.interop.lm_eval`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evalkit.analysis.bootstrap import bootstrap, seeded_rng
from evalkit.analysis.paired import Delta
from evalkit.config.suite import BASE_SUFFIX
from evalkit.store.db import Store


def parse_ref(ref: str) -> tuple[str, str, str | None]:
    """``TASK/METRIC`` or ``TASK/METRIC,FILTER`` → (task, metric, filter or None)."""
    task, sep, rest = ref.rpartition("/")
    if not sep or not task or not rest:
        raise ValueError(f"retention gate '{ref}' must look like TASK/METRIC or TASK/METRIC,FILTER")
    metric, _, filt = rest.partition(",")
    return task, metric, filt or None


@dataclass(frozen=True)
class RetentionComparison:
    """A retention metric of the baseline and the candidate on the documents both answered."""

    delta: Delta | None
    higher_is_better: bool | None
    reason: str | None  # why there is no delta


def compare_retention(store: Store, run_id: str, baseline: str, candidate: str, ref: str, seed: int = 0,
                      resamples: int = 2000, confidence: float = 0.95) -> RetentionComparison:
    """candidate − baseline on one retention metric, with a paired bootstrap CI over documents."""
    task, metric, filt = parse_ref(ref)
    rows = store.retention_metric(run_id, task, metric, (baseline, candidate))
    if not rows:
        have = store.retention_refs(run_id)
        what = f"; it has {have}" if have else (
            " (run 'evalkit retention SUITE --run RUN_ID' first)")
        return RetentionComparison(None, None, f"no retention results for {ref} in run {run_id}{what}")
    filters = sorted({r["filter"] for r in rows})
    if filt is None:
        if len(filters) > 1:
            return RetentionComparison(None, None, f"{ref} has several filters {filters}: write {ref},FILTER")
        filt = filters[0]
    models = {r["model"] for r in rows if r["filter"] == filt}
    missing = [m for m in (baseline, candidate) if m not in models]
    if missing:
        return RetentionComparison(None, None, f"no retention results for {ref} of {missing} in run {run_id}")
    higher = next((r["higher_is_better"] for r in rows if r["filter"] == filt), None)
    docs = store.retention_docs(run_id, task, metric, filt, baseline, candidate)
    if docs.empty:  # a corpus-level metric (no numeric value per document): lm-eval's values and stderrs
        return _from_summary(store, run_id, baseline, candidate, task, metric, filt, ref, confidence, higher)
    b, c = docs["b"].to_numpy(float), docs["c"].to_numpy(float)
    diff = c - b
    low, high = bootstrap(diff, lambda m: m.mean(axis=-1), resamples, seeded_rng(seed, f"retention:{ref}"), confidence)
    d = Delta(metric=f"retention:{ref}", baseline=float(b.mean()), candidate=float(c.mean()),
              delta=float(diff.mean()), ci_low=low, ci_high=high, n=len(diff))
    return RetentionComparison(d, higher, None)


def _from_summary(store: Store, run_id: str, baseline: str, candidate: str, task: str, metric: str, filt: str,
                  ref: str, confidence: float, higher: bool | None) -> RetentionComparison:
    from scipy import stats

    vals = store.retention_summary(run_id, task, metric, filt, (baseline, candidate))
    b, c = vals[baseline], vals[candidate]
    if b["value"] is None or c["value"] is None:
        return RetentionComparison(None, higher, f"{ref} has no value for both models")
    delta = c["value"] - b["value"]
    low = high = None
    if b["stderr"] is not None and c["stderr"] is not None:  # independent normal approximation
        half = stats.norm.ppf(0.5 + confidence / 2) * (b["stderr"] ** 2 + c["stderr"] ** 2) ** 0.5
        low, high = delta - half, delta + half
    d = Delta(metric=f"retention:{ref}", baseline=b["value"], candidate=c["value"], delta=delta, ci_low=low,
              ci_high=high, n=int(min(b["n"] or 0, c["n"] or 0)))
    return RetentionComparison(d, higher, None)


def retention_pair_from_config(config: dict[str, Any]) -> tuple[str, str] | None:
    """(baseline, candidate) of a stored run's validated suite config, as :meth:`Suite.retention_pair`."""
    spec = config.get("retention")
    if not spec:
        return None
    candidate = spec.get("candidate") or (config.get("gates") or {}).get("candidate")
    if not candidate:
        return None
    return spec.get("baseline") or f"{candidate}{BASE_SUFFIX}", candidate
