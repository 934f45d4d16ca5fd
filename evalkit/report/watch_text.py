"""The watch list and the n labels as text: terminal lines, Markdown, JUnit.

Rendered from the ``watch`` section (:mod:`evalkit.analysis.watch`) and the counts
(:mod:`evalkit.analysis.sample_counts`) of a gate or compare document; a document without them (an
older one) renders as before.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any

from evalkit.analysis.sample_counts import count_label

WATCH_TITLE = "watch list (significantly worse than its margin, no rule covers it; does not change the exit code)"


MS_PREFIXES = ("latency_", "ttft_", "cold_start", "client_lag", "e2e_", "queue_")


def human(v: float | None, metric: str = "", signed: bool = False) -> str:
    """A number as people read it: thousands separated, about 4 significant digits, never e-notation
    ("10,723 ms", "0.0123", "+1,204"); milliseconds say so."""
    if v is None:
        return "—"
    sign = "+" if signed else ""
    size = abs(v)
    if size >= 100 or size == 0:
        text = f"{v:{sign},.0f}"
    else:
        decimals = 3 - math.floor(math.log10(size))
        text = f"{v:{sign},.{decimals}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    return f"{text} ms" if metric.startswith(MS_PREFIXES) else text


def _value(v: float | None, metric: str) -> str:
    return human(v, metric)


def _signed(v: float, metric: str) -> str:
    return human(v, metric, signed=True)


def watch_name(item: dict[str, Any]) -> str:
    return f"slice {item['slice']} {item['metric']}" if item["kind"] == "slice" else str(item["metric"])


def watch_margin(item: dict[str, Any]) -> str:
    worse = "higher" if not item["higher_is_better"] else "lower"
    if item["margin_kind"] == "relative":
        return f"margin {item['margin'] * 100:g}% {worse} than the baseline"
    return f"margin {item['margin']:g} {worse}"


def watch_detail(item: dict[str, Any]) -> str:
    """One entry's numbers: baseline → candidate, Δ with CI, ratio, n pairs, margin."""
    kind = str(item["metric"])
    text = (f"{_value(item['baseline'], kind)} → {_value(item['candidate'], kind)} "
            f"(Δ {_signed(item['delta'], kind)}, CI [{_signed(item['ci_low'], kind)}, {_signed(item['ci_high'], kind)}]")
    if item.get("ratio") is not None:
        text += f"; ×{item['ratio']:.2f}, CI ×{item['ratio_ci_low']:.2f}–×{item['ratio_ci_high']:.2f}"
    text += f") on {item['n']} pairs"
    if item.get("worse_pairs") is not None:
        text += f", {item['worse_pairs']} worse / {item['better_pairs']} better"
    return f"{text}; {watch_margin(item)}"


def watch_lines(report: dict[str, Any]) -> list[str]:
    """The watch list for a terminal: always a line, "watch list: empty" when nothing is on it."""
    watch = report.get("watch")
    if watch is None:
        return []
    if not watch.get("enabled", True):
        return ["watch list: off (gates.watch.enabled: false)"]
    items = watch["items"]
    if not items:
        checked = watch.get("checked") or {}
        what = f"{len(checked.get('metrics') or [])} ungated metrics, {len(checked.get('slices') or [])} slices"
        lines = [f"watch list: empty ({what} checked; nothing significantly worse than its margin)"]
    else:
        lines = [f"{WATCH_TITLE}: {len(items)}"]
        lines += [f"  ⚠ {watch_name(i)}: {watch_detail(i)}" for i in items]
    if watch.get("not_judged"):
        lines.append(f"  not judged (fewer than {watch['min_pairs']} pairs, or no CI): {', '.join(watch['not_judged'])}")
    return lines


def watch_markdown(report: dict[str, Any]) -> list[str]:
    watch = report.get("watch")
    if watch is None:
        return []
    if not watch.get("enabled", True):
        return ["", "Watch list: off (`gates.watch.enabled: false`)."]
    if not watch["items"]:
        return ["", "**Watch list: empty** — no ungated metric or slice is significantly worse than its margin."]
    lines = ["", f"### ⚠️ Watch list ({len(watch['items'])}; not gated, does not change the exit code)", "",
             "| metric | baseline → candidate, Δ, CI, n | margin |", "|---|---|---|"]
    for i in watch["items"]:
        detail = watch_detail(i).rsplit("; margin", 1)[0]
        lines.append(f"| {watch_name(i)} | {detail} | {watch_margin(i).removeprefix('margin ')} |")
    return lines


def watch_junit(root: ET.Element, report: dict[str, Any]) -> None:
    """The watch list as suite properties and the suite's own ``system-out``: JUnit keeps one test case
    per gate (a watch entry is not a test that can fail)."""
    watch = report.get("watch")
    if watch is None:
        return
    props = ET.Element("properties")
    ET.SubElement(props, "property", name="evalkit.watch.n_items", value=str(len(watch["items"])))
    for k, i in enumerate(watch["items"]):
        ET.SubElement(props, "property", name=f"evalkit.watch.{k}", value=f"{watch_name(i)}: {watch_detail(i)}")
    root.insert(0, props)
    ET.SubElement(root, "system-out").text = "\n".join(watch_lines(report))


def metric_label(g: dict[str, Any]) -> str:
    """A gate row's metric with what it rests on when that is fewer rows than the run has."""
    label = count_label(g.get("n"), g.get("n_of"), g.get("basis"))
    name = str(g["metric"]) + (f" [{g['slice']}]" if g.get("slice") else "")
    return f"{name} {label}" if label else name


def delta_label(name: str, d: dict[str, Any]) -> str:
    """A compare row's metric with its pairs when fewer than the run has (no label on a row without a value)."""
    label = count_label(d.get("n"), d.get("n_of")) if d.get("delta") is not None else ""
    return f"{name} {label}" if label else name


def count_notes(report: dict[str, Any]) -> list[str]:
    """Where a scorecard (unpaired) value differs from the paired one shown: both, each with its n."""
    out = []
    rows = [(g["metric"], g) for g in report.get("gates") or []] or list((report.get("deltas") or {}).items())
    seen = set()
    for name, row in rows:
        unpaired = row.get("unpaired")
        if not unpaired or name in seen:
            continue
        seen.add(name)
        sides = ", ".join(f"{role} {v['value']:.4g} on {v['n']} row{'' if v['n'] == 1 else 's'}"
                          for role, v in unpaired.items())
        paired = ", ".join(f"{role} {row[role]:.4g}" for role in unpaired if row.get(role) is not None)
        n = row.get("n")
        out.append(f"{name}: scorecard (each model on its own rows) {sides}; paired {paired} on {n} "
                   f"pair{'' if n == 1 else 's'}")
    for g in report.get("gates") or []:
        p = g.get("paired")
        if p and g.get("candidate") is not None and p.get("candidate") is not None:
            out.append(f"{g['metric']}: candidate {g['candidate']:.4g} on {g['n']} rows (judged); paired "
                       f"baseline {p['baseline']:.4g} vs candidate {p['candidate']:.4g} on {p['n']} pairs")
    return out


__all__ = ["count_notes", "delta_label", "metric_label", "watch_detail", "watch_junit", "watch_lines",
           "watch_margin", "watch_markdown", "watch_name"]
