"""The verdict where CI and people read it: terminal tables, a Markdown summary for the job page and
pull requests, and JUnit XML — all rendered from the ``evalkit.gate/1`` / ``evalkit.compare/1``
documents that :mod:`evalkit.analysis.gates` and :mod:`evalkit.analysis.paired` build.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from evalkit.report.heldout_text import heldout_lines
from evalkit.report.numbers import interval, number
from evalkit.report.watch_text import count_notes, delta_label, metric_label, watch_junit, watch_lines, watch_markdown

if TYPE_CHECKING:
    from rich.console import Console


def _num(v: float | None, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}g}"


def _ci(g: dict[str, Any]) -> str:
    if g["ci_low"] is None:
        return "—"
    level = g.get("level", 0.95)
    return f"[{g['ci_low']:.4g}, {g['ci_high']:.4g}]" + ("" if abs(level - 0.95) < 1e-9 else f" @{level:.4g}")


def _ci_human(g: dict[str, Any]) -> str:
    """The terminal's CI: in the metric's unit (evalkit.report.numbers), the level when it is not 95%."""
    if g["ci_low"] is None:
        return "—"
    level = g.get("level", 0.95)
    return (interval(g["metric"], g["ci_low"], g["ci_high"], signed=True)
            + ("" if abs(level - 0.95) < 1e-9 else f" @{level * 100:.4g}%"))


_ICON = {"pass": "✅", "warn": "⚠️", "inconclusive": "❓", "fail": "❌", "error": "❌"}


def gate_label(g: dict[str, Any]) -> str:
    """A gate row's metric, with the slice it was checked on."""
    return str(g["metric"]) + (f" [{g['slice']}]" if g.get("slice") else "")


def verdict_cell(g: dict[str, Any]) -> str:
    """A gate's verdict, with the samples an inconclusive one needs."""
    return str(g["verdict"]) + (f" (n≈{g['n_needed']})" if g.get("n_needed") else "")


def verdict_headline(report: dict[str, Any]) -> str:
    """One sentence on the suite's verdict: PASS, FAIL, or INCONCLUSIVE with what would resolve it."""
    verdict = report["verdict"]
    if verdict == "pass":
        return "every gate passed"
    if verdict == "fail":
        bad = [gate_label(g) for g in report["gates"] if g["verdict"] in ("fail", "error")]
        return f"{len(bad)} gate(s) failed or could not be checked: {', '.join(bad)}"
    open_ = [g for g in report["gates"] if g["verdict"] == "inconclusive"]
    needs = [f"{gate_label(g)} (≈{g['n_needed']} paired samples)" if g.get("n_needed") else gate_label(g)
             for g in open_]
    allowed = " — allowed by --allow-inconclusive" if report.get("allow_inconclusive") else ""
    return (f"not enough evidence: {len(open_)} gate(s) neither shown within the margin nor beyond it: "
            f"{', '.join(needs)}{allowed}")


def family_line(report: dict[str, Any]) -> str | None:
    """How many relative rules share the error rate, and how their levels are set."""
    family = report.get("family") or {}
    k = family.get("size", 0)
    if k < 2:
        return None
    if family["correction"] == "holm":
        levels = ", ".join(f"{lv:.4g}" for lv in family["levels"])
        how = f"Holm-adjusted CI levels {levels}; familywise error ≤ {family['familywise_error_bound']:.3g}"
    else:
        how = (f"no correction (gates.correction: none): each at its own level; familywise error up to "
               f"{family['familywise_error_bound']:.3g}")
    return f"family: {k} relative rules share the error rate — {how}"


def render_text(report: dict[str, Any]) -> str:
    """Terminal tables: gates, then what broke."""
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=160, color_system=None, markup=False, highlight=False)
    title = (f"gate {report['verdict'].upper()}: {report['candidate']} vs {report['baseline']} "
             f"({report['n_pairs']} pairs)")
    table = Table(title=title)
    for col in ("metric", "rule", "baseline", "candidate", "delta", "CI (95% unless @)", "verdict", "why"):
        table.add_column(col)
    for g in report["gates"]:
        table.add_row(metric_label(g), f"{g['rule']} ({g['significance']})", number(g["metric"], g["baseline"]),
                      number(g["metric"], g["candidate"]), number(g["metric"], g["delta"], signed=True),
                      _ci_human(g), verdict_cell(g), g["reason"])
    console.print(table)
    console.print(f"{report['verdict'].upper()}: {verdict_headline(report)}")
    for line in heldout_lines(report):
        console.print(line)
    family = family_line(report)
    if family:
        console.print(family)
    if calls := calls_line(report):
        console.print(calls.replace("`", ""))
    print_counts_and_watch(console, report)
    print_evidence(console, report)
    return buffer.getvalue().rstrip()


def print_counts_and_watch(console: Console, report: dict[str, Any]) -> None:
    """Both values where scorecard and paired differ, then the watch list (always a line)."""
    for line in count_notes(report) + watch_lines(report):
        console.print(line)


def print_evidence(console: Console, report: dict[str, Any]) -> None:
    for name, t in report["mcnemar"].items():
        console.print(f"McNemar {name}: lost {t['b']}, gained {t['c']}, p = {t['p_value']:.4g} ({t['method']})")
    if report["only_baseline"] or report["only_candidate"]:
        console.print(f"samples on one side only — baseline: {len(report['only_baseline'])} "
                      f"{report['only_baseline'][:10]}, candidate: {len(report['only_candidate'])} "
                      f"{report['only_candidate'][:10]}")
    surplus = report.get("unpaired_repeats") or {}
    if any(surplus.values()):
        console.print(f"repeats without a partner (not compared) — baseline: {surplus['baseline']}, "
                      f"candidate: {surplus['candidate']}")
    if report["regressions"]:
        console.print(f"{report['n_regressions']} regressions (candidate lost what the baseline had), first 10:")
        for r in report["regressions"][:10]:
            console.print(f"  {r['sample_id']} [{', '.join(r['lost'])}] baseline: {str(r['baseline_output'])[:60]!r} "
                          f"candidate: {str(r['candidate_output'] or r['candidate_error'])[:60]!r}")
    for s in report["slices"]:
        console.print(f"  slice {s['slice']}: n={s['n']} baseline {s['baseline_accuracy']:.3f} "
                      f"candidate {s['candidate_accuracy']:.3f} ({s['delta']:+.3f})")


def _md_cell(value: Any, limit: int = 120) -> str:
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")
    return text if len(text) <= limit else text[:limit] + "…"


def calls_line(report: dict[str, Any]) -> str:
    """What the gated run asked each model and what its stored answers covered (a stored baseline: 0 calls)."""
    calls = report.get("model_calls") or {}
    parts = []
    for model, c in calls.items():
        text = f"`{_md_cell(model)}` {c['called']:,} call{'s' if c['called'] != 1 else ''}"
        if c["from_cache"]:
            text += f" ({c['from_cache']:,} answer{'s' if c['from_cache'] != 1 else ''} from the cache)"
        if c["called"] and c.get("cost_usd"):
            text += f", ${c['cost_usd']:,.4f}"
        parts.append(text)
    return f"Model calls in run `{report.get('run_id', '?')}`: " + "; ".join(parts) + "." if parts else ""


def render_markdown(report: dict[str, Any]) -> str:
    """A summary for $GITHUB_STEP_SUMMARY: verdict, gate table, top regressions, slices."""
    heading = {"pass": "✅ evalkit gate passed", "fail": "❌ evalkit gate failed",
               "inconclusive": "❓ evalkit gate inconclusive"}[report["verdict"]]
    lines = [f"## {heading}", "", f"**{report['verdict'].upper()}**: {_md_cell(verdict_headline(report), 600)}.", "",
             f"Candidate `{report['candidate']}` vs baseline `{report['baseline']}` on {report['n_pairs']} paired "
             "samples.", "", *[f"> {_md_cell(line, 800)}\n" for line in heldout_lines(report)],
             "| | metric | rule | baseline | candidate | Δ | CI (95% unless @) | verdict | why |",
             "|---|---|---|---|---|---|---|---|---|"]
    for g in report["gates"]:
        lines.append(f"| {_ICON[g['verdict']]} | {_md_cell(metric_label(g))} | {_md_cell(g['rule'])} "
                     f"({g['significance']}) | {_num(g['baseline'])} | {_num(g['candidate'])} | {_num(g['delta'])} | "
                     f"{_ci(g)} | {verdict_cell(g)} | {_md_cell(g['reason'], 240)} |")
    calls = calls_line(report)
    if calls:
        lines += ["", calls]
    family = family_line(report)
    if family:
        lines += ["", _md_cell(family, 600)]
    notes = count_notes(report)
    lines += ([""] + [f"- {_md_cell(note, 400)}" for note in notes]) if notes else []
    lines += watch_markdown(report)
    if report["only_baseline"] or report["only_candidate"]:
        lines += ["", f"Samples on one side only: baseline {len(report['only_baseline'])}, candidate "
                      f"{len(report['only_candidate'])}."]
    if report["regressions"]:
        lines += ["", f"### Regressions ({report['n_regressions']}; first 20)", "",
                  "| sample | lost | expected | baseline said | candidate said |", "|---|---|---|---|---|"]
        for r in report["regressions"][:20]:
            lines.append(f"| {_md_cell(r['sample_id'])} | {', '.join(r['lost'])} | {_md_cell(r['target'], 60)} | "
                         f"{_md_cell(r['baseline_output'], 80)} | "
                         f"{_md_cell(r['candidate_output'] or r['candidate_error'], 80)} |")
    if report["slices"]:
        lines += ["", "### By slice", "", "| slice | n | baseline acc | candidate acc | Δ |", "|---|---|---|---|---|"]
        for s in report["slices"]:
            lines.append(f"| {_md_cell(s['slice'])} | {s['n']} | {s['baseline_accuracy']:.3f} | "
                         f"{s['candidate_accuracy']:.3f} | {s['delta']:+.3f} |")
    return "\n".join(lines) + "\n"


def render_junit(report: dict[str, Any], suite_name: str) -> str:
    """JUnit XML: one test case per gate, a failure for each failed, unverifiable or inconclusive gate
    (an inconclusive one is *skipped* instead when the gate ran with ``--allow-inconclusive``)."""
    allowed = bool(report.get("allow_inconclusive"))
    failing = ("fail", "error") if allowed else ("fail", "error", "inconclusive")
    failures = sum(g["verdict"] in failing for g in report["gates"])
    skipped = sum(g["verdict"] == "inconclusive" for g in report["gates"]) if allowed else 0
    root = ET.Element("testsuite", name=f"evalkit gate {suite_name}", tests=str(len(report["gates"])),
                      failures=str(failures), errors="0", skipped=str(skipped))
    for g in report["gates"]:
        case = ET.SubElement(root, "testcase", classname=f"evalkit.{suite_name}", name=f"{gate_label(g)} {g['rule']}")
        if g["verdict"] in failing:
            failure = ET.SubElement(case, "failure", message=g["reason"], type=g["verdict"])
            failure.text = json.dumps(g, default=str)
        elif g["verdict"] == "inconclusive":
            ET.SubElement(case, "skipped", message=f"inconclusive (allowed): {g['reason']}")
        else:
            ET.SubElement(case, "system-out").text = f"{g['verdict']}: {g['reason']}"
    watch_junit(root, report)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def render_compare(report: dict[str, Any]) -> str:
    """Terminal table of an ``evalkit.compare/1`` document: every paired delta, then what broke."""
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=160, color_system=None, markup=False, highlight=False)
    table = Table(title=f"{report['candidate']} vs {report['baseline']} ({report['n_pairs']} pairs)")
    for col in ("metric", "baseline", "candidate", "delta", "95% CI"):
        table.add_column(col)
    for name, d in report["deltas"].items():
        table.add_row(delta_label(name, d), number(name, d["baseline"]), number(name, d["candidate"]),
                      number(name, d["delta"], signed=True), interval(name, d["ci_low"], d["ci_high"], signed=True))
    console.print(table)
    print_counts_and_watch(console, report)
    print_evidence(console, report)
    return buffer.getvalue().rstrip()
