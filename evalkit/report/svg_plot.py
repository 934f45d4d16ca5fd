"""matplotlib (Agg) figures as inline ``<svg>`` markup: the report's one way to draw a chart.

Why matplotlib: it renders to SVG with no JavaScript runtime, so the report stays one offline file whose
Content-Security-Policy forbids every fetch; text stays text (``svg.fonttype: none``: selectable, searchable,
small); a fixed ``svg.hashsalt`` and no date metadata make the output byte-for-byte deterministic; and every
id inside a chart carries a per-chart prefix, so many charts in one page never share a clip-path id.

Usage::

    with figure(width_px=560, height_px=380) as (fig, ax):
        ax.plot(...)
    svg = to_svg(fig, "accessible title")

Every string reaching matplotlib is plain text; matplotlib escapes it in the SVG it writes. ``to_svg``
returns :class:`markupsafe.Markup` (already safe to insert into an autoescaped Jinja page).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib
from cycler import cycler

matplotlib.use("Agg")

from markupsafe import Markup, escape  # noqa: E402
from matplotlib.artist import Artist  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import Formatter  # noqa: E402

# Okabe–Ito: distinguishable with any common colour-vision deficiency (black dropped: used for text).
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442"]
MUTED = "#6b7280"
GRID = "#e5e7eb"
DPI = 100  # 1 inch = 100 px of viewBox; the page scales the SVG to its column

# matplotlib writes SVG in points: a 560 × 380 px figure has a 403 × 274 viewBox and a 9 pt label is 9 units high.
# The report shows charts two a row (report.css .charts: columns ≥ 520 px; ~558 px at a 1,400 px window), a ×1.38
# scale: 9 pt ticks are ~12.5 px on screen (≥ 11 px). Draw wider figures with proportionally larger fonts.
STYLE: Any = {  # typed Any: matplotlib types rc keys as a Literal of every rcParam
    "svg.fonttype": "none", "svg.hashsalt": "evalkit", "svg.image_inline": True,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"],
    "font.size": 9.5, "axes.titlesize": 10.5, "axes.labelsize": 9.5, "xtick.labelsize": 9, "ytick.labelsize": 9,
    "legend.fontsize": 9, "legend.frameon": False,
    "axes.prop_cycle": cycler(color=PALETTE), "axes.edgecolor": "#9ca3af", "axes.labelcolor": "#1f2937",
    "axes.grid": True, "grid.color": GRID, "grid.linewidth": 0.8, "axes.axisbelow": True,
    "axes.spines.top": False, "axes.spines.right": False,
    "xtick.color": "#374151", "ytick.color": "#374151", "text.color": "#111827",
    "figure.facecolor": "white", "axes.facecolor": "white", "savefig.facecolor": "white",
    "lines.linewidth": 2.0, "lines.markersize": 6,
}

_TAG = "evalkit-data-"
_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)
_ID = re.compile(r'\bid="([^"]+)"')


@contextmanager
def figure(width_px: int = 560, height_px: int = 380, rows: int = 1, cols: int = 1,
           **subplot_kw: Any) -> Iterator[tuple[Figure, Any]]:
    """A figure in the shared style; ``ax`` is one Axes (or an array of them for rows × cols)."""
    with matplotlib.rc_context(STYLE):  # a bare Figure: no pyplot registry, nothing to close, no global state
        fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")
        ax = fig.subplots(rows, cols, **subplot_kw)
        yield fig, ax


def to_svg(fig: Figure, title: str, chart_id: str | None = None) -> Markup:
    """``fig`` as inline SVG: no XML prolog or doctype, deterministic, ids prefixed per chart, with a
    ``<title>`` and ``aria-label`` of ``title``. ``chart_id`` (default: a hash of the SVG) makes the prefix."""
    buffer = io.StringIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = _PROLOG.sub("", buffer.getvalue(), count=1).strip()
    svg = re.sub(r'id="' + _TAG + r'([A-Za-z0-9_-]+)"', _untag, svg)
    prefix = "c" + (chart_id or hashlib.sha1((title + "\0" + svg).encode()).hexdigest()[:10])
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", prefix)
    ids = set(_ID.findall(svg))
    if ids:
        pattern = re.compile(r'(id="|#|xlink:href="#)(' + "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True))
                             + r')(?=["\)])')
        svg = pattern.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", svg)
    label = escape(title)
    svg = re.sub(r"<svg\b([^>]*?)\s(width|height)=\"[^\"]*\"", r"<svg\1", svg, count=1)
    svg = re.sub(r"<svg\b([^>]*?)\s(width|height)=\"[^\"]*\"", r"<svg\1", svg, count=1)
    svg = svg.replace("<svg ", f'<svg class="chart" role="img" aria-label="{label}" data-chart="{prefix}" ', 1)
    svg = re.sub(r"(<svg\b[^>]*>)", lambda m: m.group(1) + f"<title>{label}</title>", svg, count=1)
    return Markup(svg)


def tag(artist: Artist, **attrs: Any) -> Artist:
    """Give ``artist``'s SVG group ``data-*`` attributes (``tag(line, series="p50")`` → ``data-series="p50"``), for
    tests and scripts that read numbers off the page; values are written with ``str`` and escaped."""
    payload = base64.urlsafe_b64encode(json.dumps({k: str(v) for k, v in attrs.items()}).encode()).decode()
    artist.set_gid(_TAG + payload.rstrip("="))
    return artist


def _untag(match: re.Match[str]) -> str:
    payload = match.group(1)
    attrs = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return " ".join(f'data-{re.sub(r"[^a-z0-9-]", "-", k.lower())}="{escape(v)}"' for k, v in attrs.items())


def empty(ax: Axes, message: str) -> None:
    """An axes with nothing to plot: the reason in its middle, no ticks."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color=MUTED)


def _decimals(values: list[float], least: int = 0) -> int:
    """The fewest decimals (≥ ``least``) that write every value exactly (ticks: 0.0125 needs 4, 0.25 needs 2)."""
    for d in range(least, 9):
        if all(abs(round(v, d) - v) <= 1e-9 * max(1.0, abs(v)) for v in values):
            return d
    return 9


def _number(v: float, decimals: int) -> str:
    text = f"{abs(v):,.{decimals}f}"
    return ("−" if v < 0 and float(text.replace(",", "")) != 0 else "") + text


def _one(kind: str, v: float, decimals: int) -> str:
    if v == 0:
        return {"usd": "$0", "ms": "0 ms", "percent": "0%"}.get(kind, "0")
    if kind == "usd":
        return _number(v, decimals).replace("−", "−$") if v < 0 else "$" + _number(v, decimals)
    if kind == "ms":
        return _number(v, decimals) + " ms"
    if kind == "percent":
        return _number(v * 100, decimals) + "%"
    text = _number(v, decimals)
    return text.rstrip("0").rstrip(".") if "." in text else text  # ratios: 0, 0.25, 0.5, 0.75, 1


def _least(kind: str, values: list[float]) -> int:
    if kind == "usd" and any(v != int(v) for v in values):
        return 2  # dollars and cents: $0.50, not $0.5
    return 0


class TickFormat(Formatter):
    """Ticks that all carry the same, fewest decimals that write each of them exactly, with a real minus."""

    def __init__(self, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown tick kind {kind!r}; use one of {KINDS}")
        self.kind = kind
        self.decimals = 0

    def set_locs(self, locs: Any) -> None:
        super().set_locs(locs)
        values = [float(v) * (100 if self.kind == "percent" else 1) for v in locs]
        self.decimals = _decimals(values, _least(self.kind, [float(v) for v in locs])) if values else 0

    def __call__(self, x: float, pos: int | None = None) -> str:
        return _one(self.kind, float(x), self.decimals)


KINDS = ("usd", "ms", "ratio", "percent")


def tick_format(kind: str) -> TickFormat:
    """A tick formatter: ``usd`` ($0, $0.01, $0.0125), ``ms`` (1,250 ms), ``ratio`` (0, 0.25, 0.5, 0.75, 1) or
    ``percent`` (fractions shown as 25%)."""
    return TickFormat(kind)


def fmt(kind: str, value: float, significant: int = 3) -> str:
    """One number for a label next to a point: ``significant`` digits, at least cents for dollars."""
    if value == 0:
        return _one(kind, 0.0, 2 if kind == "usd" else 0)
    scale = value * 100 if kind == "percent" else value
    magnitude = math.floor(math.log10(abs(scale)))
    least = 2 if kind == "usd" else 0
    decimals = max(significant - 1 - magnitude, least)
    return _one(kind, value, _decimals([round(scale, decimals)], least))
