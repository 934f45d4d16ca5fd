"""Render the report with one Jinja environment: autoescape on, StrictUndefined, assets inlined."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from evalkit.analysis.sample_counts import count_label
from evalkit.report.data import collect
from evalkit.report.numbers import MINUS, interval, ms, number, usd
from evalkit.report.watch_text import count_notes, human, watch_detail, watch_name
from evalkit.store.db import Store

_TEMPLATES = Path(__file__).parent / "templates"


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "rate":
        return f"{value * 100:.1f}%"
    if kind == "ms":
        return f"{value:,.0f} ms"
    if kind == "usd":
        return usd(value)
    if kind == "per_s":
        return f"{value:,.2f}/s"
    return f"{value:.3f}"


def _delta(value: Any, kind: str) -> str:
    """A paired difference in the metric's own unit: points for rates, ms, dollars, else 4 decimals."""
    if value is None:
        return "—"
    if kind == "rate":
        return f"{value * 100:+.1f} pts".replace("-", MINUS)
    if kind == "ms":
        return ms(value, signed=True)
    if kind == "usd":
        return usd(value, signed=True)
    return f"{value:+.4f}".replace("-", MINUS)


def environment() -> jinja2.Environment:
    """The report's only Jinja environment."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(_TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    env.filters["signed"] = lambda v, d=3: "—" if v is None else f"{v:+.{d}f}".replace("-", MINUS)
    env.filters["dfmt"] = _delta
    env.filters["usd"] = lambda v: "—" if v is None else f"${v:,.2f}"
    env.globals["number"] = number
    env.globals["interval"] = interval
    env.globals["count_label"] = count_label
    env.globals["count_notes"] = count_notes
    env.globals["watch_detail"] = watch_detail
    env.globals["human"] = human
    env.globals["watch_name"] = watch_name
    env.globals["inline"] = lambda name: (_TEMPLATES / name).read_text(encoding="utf-8")
    return env


def render_report(store: Store, run_id: str, **options: Any) -> str:
    """The report of a run as one HTML string."""
    context = collect(store, run_id, **options)
    return environment().get_template("report.html.j2").render(**context)


def write_report(store: Store, run_id: str, output: str | Path, **options: Any) -> Path:
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(store, run_id, **options), encoding="utf-8")
    return path
