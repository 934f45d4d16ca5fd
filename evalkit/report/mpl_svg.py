"""A matplotlib figure as an inline SVG string (text kept as text, no external reference), one shared style.

A minimal local helper for the routing and history charts: x16a's ``evalkit/report/svg_plot.py`` does the same
for the other charts; when both are on main, one of them goes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from markupsafe import Markup

STYLE: Any = {  # matplotlib rcParams (typed by matplotlib as a dict of Literal keys)
    "svg.fonttype": "none",        # text stays <text>, selectable, in the page's font
    "svg.hashsalt": "evalkit",     # stable ids: the same data gives the same file
    "text.parse_math": False,      # a "$" in a model name is a dollar, never mathtext
    "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "xtick.labelsize": 10, "ytick.labelsize": 10,
    "legend.fontsize": 9.5, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.color": "#e4e4e7", "grid.linewidth": 0.8, "font.family": "sans-serif",
}


@contextmanager
def figure(width: float = 6.4, height: float = 4.2) -> Iterator[tuple[Any, Any]]:
    """A fresh Agg figure and axes under the shared style; closed afterwards."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
        try:
            yield fig, ax
        finally:
            plt.close(fig)


def to_svg(fig: Any, label: str) -> Markup:
    """The figure as ``<svg>`` markup for the page: no XML prolog or DOCTYPE, scalable, labelled for readers."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)
    aria = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("<svg", f'<svg class="chart mpl" role="img" aria-label="{aria}"', 1)
    return Markup(text)
