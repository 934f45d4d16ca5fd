"""Gates: the suite's rules a candidate must meet against a baseline, and their verdicts.

Rule semantics (``gates.rules`` in the suite; each metric's direction comes from the metric registry,
never from the rule):

- ``max_drop: d`` (higher-is-better metrics): the change candidate − baseline may not go below −d.
  ``significance: ci`` (default) **fails** only when the whole confidence interval of the change lies
  below −d — noise does not fail a pull request — and **warns** when only the point estimate does;
  ``significance: point`` fails on the point estimate.
- ``max_rise: r`` (lower-is-better metrics): the mirror image — fails when the CI lies above +r.
- ``min`` / ``max``: bounds on the candidate's own value over all its rows (the CI is shown).
- Relative rules need a metric that is compared pairwise (``evalkit.analysis.paired.PAIRED_METRICS``); counts
  such as ``n_errors`` take ``min`` / ``max`` (or use the matching rate, ``error_rate``).
- ``retention: TASK/METRIC`` rules bound an lm-eval capability metric instead (``evalkit.analysis.retention``):
  the suite's retention candidate against its retention baseline, on the documents both answered,
  from the gated run's ``retention`` results; the direction comes from lm-eval's task definition.
- A gate whose metric has no value for these runs (e.g. ``brier`` without confidences) is an **error**
  and fails: a gate that cannot be checked never passes silently.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, replace
from typing import Any

from evalkit.analysis.coverage import CONFIDENCE_METRICS, confidence_gap
from evalkit.analysis.gate_family import Evidence, expand_targets, family_document, family_levels, in_family
from evalkit.analysis.metrics import METRICS
from evalkit.analysis.paired import PAIRED_METRICS, Delta, Pairing, mcnemar_tests, regressions, slice_table
from evalkit.analysis.power import DEFAULT_POWER, Spread, n_needed
from evalkit.analysis.retention import compare_retention, parse_ref
from evalkit.analysis.score_errors import QUALITY_DERIVED, rows_with_score_errors
from evalkit.config.gate_specs import GateRule
from evalkit.errors import ConfigError
from evalkit.store.db import Store

GATE_FORMAT = "evalkit.gate/1"
MAX_LISTED_REGRESSIONS = 200


@dataclass(frozen=True)
class GateResult:
    """One rule's outcome: verdict is pass, warn, inconclusive, fail or error."""

    metric: str
    rule: str
    significance: str
    baseline: float | None
    candidate: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str
    reason: str
    level: float = 0.95  # the CI level the verdict used (Holm-adjusted under gates.correction: holm)
    slice: str | None = None  # the slice whose pairs the rule was checked on (None: all pairs)
    n_needed: int | None = None  # an inconclusive noninferiority verdict: paired samples estimated to resolve it


def describe_rule(rule: GateRule) -> str:
    parts = []
    if rule.max_drop is not None:
        parts.append(f"drop ≤ {rule.max_drop:g}")
    if rule.max_rise is not None:
        parts.append(f"rise ≤ {rule.max_rise:g}")
    if rule.min is not None:
        parts.append(f"≥ {rule.min:g}")
    if rule.max is not None:
        parts.append(f"≤ {rule.max:g}")
    return ", ".join(parts) + (f" on slice {rule.slice}" if rule.slice is not None else "")


def rule_name(rule: GateRule) -> str:
    """What the gate table calls a rule's metric: the metric, or ``retention:TASK/METRIC``."""
    return rule.metric if rule.metric is not None else f"retention:{rule.retention}"


LineOf = Callable[[tuple[str | int, ...]], int | None]


def check_rules(rules: list[GateRule], suite_file: str | None = None, line_of: LineOf | None = None,
                slices: Collection[str] | None = None) -> None:
    """Reject rules on unknown metrics, with a bound in the wrong direction, relative bounds on metrics
    that are not paired, or (given the dataset's ``slices``) a slice that does not exist — naming the
    rule's key, and its line when ``line_of`` maps a key path of the suite to one."""
    def error(message: str, *path: str | int) -> ConfigError:
        where = ("gates", "rules", *path)
        return ConfigError(message, file=suite_file, line=line_of(where) if line_of else None,
                           key=".".join(str(p) for p in where))

    for i, rule in enumerate(rules):
        if rule.retention is not None:
            try:
                parse_ref(rule.retention)
            except ValueError as exc:
                raise error(str(exc), i, "retention") from None
            continue
        assert rule.metric is not None
        info = METRICS.get(rule.metric)
        if info is None:
            close = difflib.get_close_matches(rule.metric, list(METRICS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise error(f"unknown metric '{rule.metric}'{hint}", i, "metric")
        if rule.max_drop is not None and info.higher_is_better is not True:
            raise error(f"max_drop needs a higher-is-better metric; '{rule.metric}' is not (use max_rise or max)",
                        i, "max_drop")
        if rule.max_rise is not None and info.higher_is_better is not False:
            raise error(f"max_rise needs a lower-is-better metric; '{rule.metric}' is not (use max_drop or min)",
                        i, "max_rise")
        if (rule.max_drop is not None or rule.max_rise is not None) and rule.metric not in PAIRED_METRICS:
            raise error(f"'{rule.metric}' has no paired comparison, so max_drop/max_rise cannot apply; bound the "
                        f"candidate's value with min/max, or use one of {sorted(PAIRED_METRICS)}", i, "metric")
        if slices is not None and (rule.slice is not None or rule.per_slice) and not slices:
            raise error("the dataset has no slices (set dataset.slice to the field that names them)", i,
                        "slice" if rule.slice is not None else "per_slice")
        if slices is not None and rule.slice is not None and rule.slice not in slices:
            close = difflib.get_close_matches(rule.slice, list(slices), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise error(f"slice '{rule.slice}' is not in the dataset{hint}; its slices are {sorted(slices)}", i,
                        "slice")


def judge_relative(rule: GateRule, d: Delta | None, level: float | None = None, spread: Spread | None = None,
                   power: float = DEFAULT_POWER) -> GateResult:
    """The verdict of a relative rule (max_drop / max_rise) on a paired delta whose CI is at ``level``.

    ``spread`` (:mod:`evalkit.analysis.power`) sizes ``n_needed`` when a noninferiority rule is inconclusive."""
    level = rule.confidence if level is None else level
    base: dict[str, Any] = dict(metric=rule_name(rule), rule=describe_rule(rule), significance=rule.significance, level=level,
                slice=rule.slice)
    if d is None or d.delta is None:
        return GateResult(**base, baseline=None, candidate=None, delta=None, ci_low=None, ci_high=None,
                          verdict="error", reason="no paired value for this metric on these runs")
    if rule.max_drop is not None:
        limit, point_bad = -rule.max_drop, d.delta < -rule.max_drop
        ci_bad = d.ci_high is not None and d.ci_high < -rule.max_drop
        ci_good = d.ci_low is not None and d.ci_low >= -rule.max_drop
        what = f"change {d.delta:+.4g}, allowed down to {-rule.max_drop:+g}"
    else:
        assert rule.max_rise is not None
        limit, point_bad = rule.max_rise, d.delta > rule.max_rise
        ci_bad = d.ci_low is not None and d.ci_low > rule.max_rise
        ci_good = d.ci_high is not None and d.ci_high <= rule.max_rise
        what = f"change {d.delta:+.4g}, allowed up to {rule.max_rise:+g}"
    needed = None
    if rule.significance == "point":
        verdict = "fail" if point_bad else "pass"
        reason = f"{what} (point estimate)"
    elif rule.significance == "noninferiority":
        bound = "lower" if rule.max_drop is not None else "upper"
        if d.ci_low is None:
            verdict, reason = "inconclusive", f"{what}; no CI (too few pairs, or no resamples): not shown non-inferior"
        elif ci_bad:
            verdict, reason = "fail", f"{what}; the whole {level:.4g} CI is beyond {limit:+g}"
        elif ci_good:
            verdict, reason = "pass", f"{what}; the CI's {bound} bound is within the margin (shown non-inferior)"
        else:
            verdict, reason = "inconclusive", f"{what}; the {level:.4g} CI straddles {limit:+g}: neither shown " \
                                              "within the margin nor beyond it"
        if verdict == "inconclusive" and spread is not None:
            margin = rule.max_drop if rule.max_drop is not None else rule.max_rise
            assert margin is not None
            found = n_needed(spread.effect, spread.sd, margin, level, power)
            if found is not None:
                needed = max(found, spread.n + 1)
                reason += f"; ≈{needed} paired samples would resolve it at {power:.0%} power ({spread.basis})"
            else:
                reason += "; the observed change sits on the margin: no sample size resolves it"
    elif d.ci_low is None:  # too few pairs for an interval: fall back to the point estimate, and say so
        verdict = "fail" if point_bad else "pass"
        reason = f"{what} (no CI: too few pairs, judged on the point estimate)"
    elif ci_bad:
        verdict, reason = "fail", f"{what}; the whole CI is beyond {limit:+g}"
    elif point_bad:
        verdict, reason = "warn", f"{what}, but the CI reaches within the margin (not significant)"
    else:
        verdict, reason = "pass", what
    return GateResult(**base, baseline=d.baseline, candidate=d.candidate, delta=d.delta, ci_low=d.ci_low,
                      ci_high=d.ci_high, verdict=verdict, reason=reason, n_needed=needed)


def _absolute(rule: GateRule, value: dict[str, Any] | None, d: Delta | None) -> GateResult:
    base: dict[str, Any] = dict(metric=rule_name(rule), rule=describe_rule(rule), significance="point", slice=rule.slice)
    if value is None or value.get("value") is None:
        return GateResult(**base, baseline=None, candidate=None, delta=None, ci_low=None, ci_high=None,
                          verdict="error", reason="the candidate has no value for this metric")
    v = float(value["value"])
    bad = (rule.min is not None and v < rule.min) or (rule.max is not None and v > rule.max)
    return GateResult(**base, baseline=d.baseline if d else None, candidate=v, delta=d.delta if d else None,
                      ci_low=value.get("ci_low"), ci_high=value.get("ci_high"), verdict="fail" if bad else "pass",
                      reason=f"candidate {v:.4g} {'outside' if bad else 'within'} {describe_rule(rule)}")


def _retention(store: Store, pairing: Pairing, rule: GateRule, pair: tuple[str, str] | None, seed: int,
               resamples: int) -> list[GateResult]:
    """A retention rule: the retention candidate against its baseline, on the gated run's lm-eval results."""
    assert rule.retention is not None
    base: dict[str, Any] = dict(metric=rule_name(rule), rule=describe_rule(rule), significance=rule.significance)
    if pair is None:
        return [GateResult(**base, baseline=None, candidate=None, delta=None, ci_low=None, ci_high=None,
                           verdict="error", reason="the suite has no 'retention' section")]
    run_id = pairing.candidate.run_id
    found = compare_retention(store, run_id, pair[0], pair[1], rule.retention, seed, resamples, rule.confidence)
    if found.delta is None:
        return [GateResult(**base, baseline=None, candidate=None, delta=None, ci_low=None, ci_high=None,
                           verdict="error", reason=str(found.reason))]
    d, out = found.delta, []
    wrong_way = ((rule.max_drop is not None and found.higher_is_better is False)
                 or (rule.max_rise is not None and found.higher_is_better is True))
    if wrong_way:
        out.append(GateResult(**base, baseline=d.baseline, candidate=d.candidate, delta=d.delta, ci_low=d.ci_low,
                              ci_high=d.ci_high, verdict="error", reason="lm-eval says this metric is "
                              f"{'higher' if found.higher_is_better else 'lower'}-is-better: use "
                              f"{'max_drop' if found.higher_is_better else 'max_rise'}"))
    elif rule.max_drop is not None or rule.max_rise is not None:
        result = judge_relative(rule, d)
        out.append(replace(result, reason=f"{pair[1]} vs {pair[0]}: {result.reason}"))
    if rule.min is not None or rule.max is not None:
        result = _absolute(rule, {"value": d.candidate, "ci_low": None, "ci_high": None}, d)
        out.append(replace(result, reason=f"{pair[1]}: {result.reason}"))
    return out


def _judge(store: Store, rule: GateRule, level: float, evidence: Evidence,
           candidate_metrics: dict[str, dict[str, Any]]) -> list[GateResult]:
    assert rule.metric is not None  # check_rules: a rule without retention names a metric
    if rule.slice is not None and rule.slice not in evidence.slices:
        base: dict[str, Any] = dict(metric=rule.metric, rule=describe_rule(rule), significance=rule.significance, slice=rule.slice,
                    baseline=None, candidate=None, delta=None, ci_low=None, ci_high=None, verdict="error")
        known = f"the paired rows' slices are {evidence.slices}" if evidence.slices else "the runs have no slices"
        return [GateResult(**base, reason=f"no pairs in slice '{rule.slice}' ({known})")]
    d = evidence.deltas(rule.slice, level).get(rule.metric)
    out = []
    if rule.max_drop is not None or rule.max_rise is not None:
        spread = evidence.spread(rule, level) if rule.significance == "noninferiority" else None
        out.append(judge_relative(rule, d, level, spread))
    if rule.min is not None or rule.max is not None:
        value = candidate_metrics.get(rule.metric) if rule.slice is None else (
            {"value": d.candidate, "ci_low": None, "ci_high": None} if d is not None else None)
        out.append(_absolute(rule, value, d))
    if rule.slice is not None:
        n = len(evidence.rows(rule.slice))
        out = [replace(r, reason=f"slice {rule.slice} ({n} pairs): {r.reason}") for r in out]
    return out


def _verdict(rule: GateRule, d: Delta | None, level: float) -> str:
    return judge_relative(rule, d, level).verdict


def overall_verdict(results: list[dict[str, Any]]) -> str:
    """FAIL if any rule fails or cannot be checked, else INCONCLUSIVE if any is inconclusive, else PASS."""
    verdicts = {r["verdict"] for r in results}
    return "fail" if verdicts & {"fail", "error"} else "inconclusive" if "inconclusive" in verdicts else "pass"


def score_error_verdicts(results: list[GateResult], store: Store, pairing: Pairing,
                         max_score_errors: int) -> list[GateResult]:
    """Gates on quality-derived metrics answer ``error`` when either side has more rows with a score error
    (a scorer or check that raised, timed out or returned nonsense) than ``scoring.max_score_errors``."""
    over = [(str(side), n) for side in (pairing.baseline, pairing.candidate)
            if (n := rows_with_score_errors(store, side.run_id, side.model)) > max_score_errors]
    if not over:
        return results
    reason = ("; ".join(f"{side} has {n} row(s) with score errors" for side, n in over)
              + f", more than scoring.max_score_errors ({max_score_errors}): the metric is not trustworthy until "
              "the scorer or checks are fixed (the run's score errors say which)")
    return [replace(r, verdict="error", reason=reason) if r.metric in QUALITY_DERIVED else r for r in results]


def evaluate(store: Store, pairing: Pairing, rules: list[GateRule], seed: int = 0,
             resamples: int = 2000, retention: tuple[str, str] | None = None,
             correction: str = "none", max_score_errors: int = 0) -> dict[str, Any]:
    """Every rule's verdict plus the evidence: deltas, McNemar tests, regressions, slices.

    ``retention`` is the (baseline, candidate) pair of the suite's retention check; retention rules
    read their lm-eval results from the candidate side's run. ``correction`` is ``gates.correction``;
    ``max_score_errors`` is the suite's ``scoring.max_score_errors`` (:func:`score_error_verdicts`)."""
    check_rules(rules)
    evidence = Evidence(pairing, seed, resamples)
    candidate_metrics = {m["metric"]: m for m in store.metrics(pairing.candidate.run_id)
                         if m["model"] == pairing.candidate.model}
    targets = expand_targets(rules, evidence)
    family = [r for r in targets if in_family(r)]
    levels_by_rule = dict(zip(map(id, family), family_levels(family, evidence, correction, _verdict), strict=True))
    results = []
    for rule in targets:
        if rule.retention is not None:
            results += _retention(store, pairing, rule, retention, seed, resamples)
            continue
        results += _judge(store, rule, levels_by_rule.get(id(rule), rule.confidence), evidence, candidate_metrics)
    if any(r.verdict == "error" and r.metric in CONFIDENCE_METRICS for r in results):  # say why there is no value
        gap = confidence_gap(store, pairing.rows, (pairing.baseline.run_id, pairing.baseline.model),
                             (pairing.candidate.run_id, pairing.candidate.model))
        results = [replace(r, reason=gap) if gap and r.verdict == "error" and r.metric in CONFIDENCE_METRICS else r
                   for r in results]
    results = score_error_verdicts(results, store, pairing, max_score_errors)
    gates = [asdict(r) for r in results]
    levels = list(levels_by_rule.values())
    regressed = regressions(pairing)
    return {
        "format": GATE_FORMAT, "verdict": overall_verdict(gates),
        "baseline": str(pairing.baseline), "candidate": str(pairing.candidate),
        "n_pairs": int(len(pairing.rows)), "only_baseline": pairing.only_baseline,
        "only_candidate": pairing.only_candidate, "unpaired_repeats": pairing.unpaired_repeats,
        "gates": gates, "family": family_document(family, levels, correction, describe_rule),
        "deltas": {k: asdict(v) for k, v in evidence.deltas(None, 0.95).items()},
        "mcnemar": {k: asdict(v) for k, v in mcnemar_tests(pairing).items()},
        "n_regressions": len(regressed), "regressions": regressed[:MAX_LISTED_REGRESSIONS],
        "slices": slice_table(pairing),
    }
