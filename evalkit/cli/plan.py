"""``evalkit plan``: before spending money, how many held-out samples each noninferiority rule needs."""

from __future__ import annotations

import io
import json
from typing import Any

import click

from evalkit.cli.options import db_option, default_db
from evalkit.errors import ConfigError


def _per_metric(values: tuple[str, ...], option: str) -> dict[str | None, float]:
    """``0.1`` (every metric) or ``METRIC=0.1`` (one metric), repeatable."""
    out: dict[str | None, float] = {}
    for text in values:
        metric, sep, number = text.rpartition("=")
        try:
            out[metric if sep else None] = float(number)
        except ValueError:
            raise ConfigError(f"{option} {text!r}: expected a number or METRIC=NUMBER") from None
    return out


@click.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option("--run", "run_ref", help="A pilot run to take the rates from (id, prefix or 'latest').")
@db_option(next_to_suite=True)
@click.option("--baseline", help="MODEL or RUN:MODEL of the pilot (default: gates.baseline).")
@click.option("--candidate", help="MODEL or RUN:MODEL of the pilot (default: gates.candidate).")
@click.option("--power", default=0.8, show_default=True, type=click.FloatRange(0.5, 0.999),
              help="Chance the rule resolves (passes, when the candidate is within the margin).")
@click.option("--alpha", type=click.FloatRange(0.0005, 0.5), help="1 − the CI level (default: each rule's "
              "1 − confidence; under gates.correction: holm, divided by the family size).")
@click.option("--discordance", multiple=True, metavar="[METRIC=]D", help="Share of pairs the two models disagree on "
              "(b + c of the paired 2×2), for binary metrics (accuracy, schema_valid_rate, ...).")
@click.option("--accuracy", type=click.FloatRange(0, 1), help="Baseline accuracy; without --discordance the "
              "models are assumed to err independently: discordance 2p(1 − p).")
@click.option("--rate", multiple=True, metavar="[METRIC=]P", help="Baseline rate of a binary metric, as --accuracy.")
@click.option("--sd", multiple=True, metavar="[METRIC=]S", help="Per-sample standard deviation of the paired "
              "difference, for non-binary metrics (quality_mean, brier, ...).")
@click.option("--delta", multiple=True, metavar="[METRIC=]D", help="Assumed true change candidate − baseline "
              "(default: the pilot's observed change, or 0 with stated rates).")
@click.option("--samples", type=click.IntRange(min=1), help="Data set size to judge (default: the suite's dataset).")
@click.option("--resamples", default=2000, show_default=True, type=click.IntRange(min=0))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (format evalkit.plan/1).")
def plan(suite: str, run_ref: str | None, db: str | None, baseline: str | None, candidate: str | None, power: float,
         alpha: float | None, discordance: tuple[str, ...], accuracy: float | None, rate: tuple[str, ...],
         sd: tuple[str, ...], delta: tuple[str, ...], samples: int | None, resamples: int, as_json: bool) -> None:
    """Samples each noninferiority rule of SUITE needs, from a pilot run or stated rates."""
    from evalkit.analysis.gates import check_rules
    from evalkit.analysis.power import PLAN_FORMAT, Stated
    from evalkit.config.dataset import load_dataset
    from evalkit.config.loader import line_of_key, load_suite

    loaded = load_suite(suite)
    spec = loaded.suite.gates
    check_rules(spec.rules, str(loaded.path), lambda path: line_of_key(loaded, path))
    rules = [r for r in spec.rules if r.significance == "noninferiority" and r.metric is not None
             and (r.max_drop is not None or r.max_rise is not None)]
    if not rules:
        raise ConfigError("the suite has no noninferiority rule (gates.rules[].significance: noninferiority) to plan",
                          file=str(loaded.path), key="gates.rules")
    rates = _per_metric(rate, "--rate")
    if accuracy is not None:
        rates["accuracy"] = accuracy
    stated = Stated(_per_metric(discordance, "--discordance"), rates, _per_metric(sd, "--sd"),
                    _per_metric(delta, "--delta"))
    dataset = load_dataset(loaded.resolve(loaded.suite.dataset.path), loaded.suite.dataset)
    counts: dict[str | None, int] = {None: samples or len(dataset.samples)}
    for s in dataset.samples:
        if s.slice is not None:
            counts[s.slice] = counts.get(s.slice, 0) + 1
    pilot = None
    if run_ref is not None:
        pilot = _pilot(loaded, run_ref, db or default_db(suite), baseline or spec.baseline,
                       candidate or spec.candidate, resamples)
    rows = _rows(rules, pilot, stated, counts, power, alpha, spec.correction, len([
        r for r in spec.rules if r.metric is not None and r.significance != "point"
        and (r.max_drop is not None or r.max_rise is not None)]))
    document = {"format": PLAN_FORMAT, "suite": loaded.suite.name, "source": pilot["source"] if pilot else "stated",
                "power": power, "correction": spec.correction, "dataset_samples": counts[None], "rules": rows}
    click.echo(json.dumps(document, indent=2) if as_json else render_plan(document))


def _pilot(loaded: Any, run_ref: str, db: str, baseline: str | None, candidate: str | None,
           resamples: int) -> dict[str, Any]:
    from evalkit.analysis.gate_family import Evidence
    from evalkit.analysis.paired import pair, parse_side
    from evalkit.store import Store

    if not baseline or not candidate:
        raise ConfigError("name the pilot's models: gates.baseline and gates.candidate, or --baseline/--candidate",
                          file=str(loaded.path), key="gates")
    with Store(db, read_only=True) as store:
        run_id = store.resolve_run_id(run_ref)
        pairing = pair(store, parse_side(baseline, run_id, store), parse_side(candidate, run_id, store))
    return {"source": f"run {run_id} ({pairing.candidate} vs {pairing.baseline}, {len(pairing.rows)} pairs)",
            "evidence": Evidence(pairing, loaded.suite.run.seed, resamples)}


def _rows(rules: list[Any], pilot: dict[str, Any] | None, stated: Any, counts: dict[str | None, int], power: float,
          alpha: float | None, correction: str, family: int) -> list[dict[str, Any]]:
    from evalkit.analysis.gate_family import expand_targets
    from evalkit.analysis.gates import describe_rule
    from evalkit.analysis.metrics import METRICS
    from evalkit.analysis.power import plan_row, stated_spread

    if pilot is not None:
        targets = expand_targets(rules, pilot["evidence"])
    else:
        slices = sorted(k for k in counts if k is not None)
        targets = [t for r in rules for t in ([r.model_copy(update={"slice": s, "per_slice": False}) for s in slices]
                                             if r.per_slice else [r])]
    out = []
    for rule in targets:
        metric, margin = str(rule.metric), rule.max_drop if rule.max_drop is not None else rule.max_rise
        assert margin is not None  # only relative rules are planned
        higher = METRICS[metric].higher_is_better is True
        level = 1 - (alpha if alpha is not None else 1 - rule.confidence) / (family if correction == "holm" else 1)
        given = any(stated.get(k, metric) is not None for k in ("discordance", "rate", "sd"))
        assumed = stated.get("delta", metric)
        if given or pilot is None:
            try:
                spread = stated_spread(metric, stated.get("discordance", metric), stated.get("rate", metric),
                                       stated.get("sd", metric), assumed or 0.0, higher)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        else:
            spread = pilot["evidence"].spread(rule, level)
            if spread is not None and assumed is not None:
                spread = type(spread)(assumed if higher else -assumed, spread.sd, spread.n, spread.basis)
        out.append(plan_row(metric, rule.slice, describe_rule(rule), float(margin), level, spread,
                            counts.get(rule.slice, 0), power))
    return out


def render_plan(document: dict[str, Any]) -> str:
    """The plan as a terminal table, with a line per note."""
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=160, color_system=None, markup=False, highlight=False)
    table = Table(title=f"plan for {document['suite']}: samples each noninferiority rule needs at "
                        f"{document['power']:.0%} power (from {document['source']})")
    for col in ("metric", "rule", "CI level", "assumed change", "sd", "n needed", "have", "power now",
                "margin resolvable now"):
        table.add_column(col)

    def num(v: float | None, spec: str = ".4g") -> str:
        return "—" if v is None else format(v, spec)

    for r in document["rules"]:
        table.add_row(r["metric"] + (f" [{r['slice']}]" if r["slice"] else ""), r["rule"], f"{r['level']:.4g}",
                      num(r["effect"], "+.4g"), num(r["sd"]), "—" if r["n_needed"] is None else f"{r['n_needed']:,}",
                      f"{r['available']:,}", num(r["power_at_available"], ".0%"), num(r["resolvable_margin"]))
    console.print(table)
    console.print("assumed change: candidate − baseline in the metric's good direction (negative: worse); "
                  "sd: per-sample sd of the paired difference.")
    for r in document["rules"]:
        if r["note"]:
            console.print(f"{r['metric']}{' [' + r['slice'] + ']' if r['slice'] else ''}: {r['note']}")
    return buffer.getvalue().rstrip()


COMMANDS = [plan]
