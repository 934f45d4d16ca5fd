"""svg_plot: inline SVG that is deterministic, keeps text as text, has ids unique per chart, and ticks that say
what they mean."""

from __future__ import annotations

import re

from evalkit.report import svg_plot


def _chart(label: str, title: str) -> str:
    with svg_plot.figure() as (fig, ax):
        ax.plot([0, 1], [0, 1], label=label)
        ax.legend()
        return str(svg_plot.to_svg(fig, title))


def test_svg_is_inline_deterministic_and_keeps_text_as_text():
    a, b = _chart("tuned <b>", "one"), _chart("tuned <b>", "one")
    assert a == b
    assert a.startswith("<svg ") and "<?xml" not in a and "<!DOCTYPE" not in a
    assert "tuned &lt;b&gt;" in a and "<b>" not in a  # text element, escaped, not glyph paths
    assert "<title>one</title>" in a and 'role="img"' in a
    assert not re.search(r"<svg[^>]*\swidth=", a)  # scales with its column


def test_ids_never_collide_between_charts_and_references_follow_them():
    a, b = _chart("x", "first"), _chart("x", "second")
    ids_a, ids_b = set(re.findall(r'\bid="([^"]+)"', a)), set(re.findall(r'\bid="([^"]+)"', b))
    assert ids_a and not ids_a & ids_b
    for svg, ids in ((a, ids_a), (b, ids_b)):
        refs = set(re.findall(r'(?:href="#|url\(#)([^")]+)', svg))
        assert refs and refs <= ids


def test_tick_formats():
    def ticks(kind: str, locs: list[float]) -> list[str]:
        f = svg_plot.tick_format(kind)
        f.set_locs(locs)
        return [f(v) for v in locs]

    assert ticks("ratio", [0, .25, .5, .75, 1]) == ["0", "0.25", "0.5", "0.75", "1"]
    assert ticks("usd", [0, 0.0125, 0.025]) == ["$0", "$0.0125", "$0.0250"]
    assert ticks("usd", [0, 0.5, 1.0]) == ["$0", "$0.50", "$1.00"]
    assert ticks("usd", [-0.02, 0, 0.02]) == ["−$0.02", "$0", "$0.02"]
    assert ticks("ms", [0, 5000, 10000]) == ["0 ms", "5,000 ms", "10,000 ms"]
    assert ticks("percent", [0, 0.25, 0.5]) == ["0%", "25%", "50%"]
    assert svg_plot.fmt("usd", 0.00863) == "$0.00863" and svg_plot.fmt("usd", -0.012) == "−$0.012"
    assert svg_plot.fmt("ms", 10723) == "10,723 ms"


def test_tag_puts_escaped_data_attributes_on_the_artist_group():
    with svg_plot.figure() as (fig, ax):
        [line] = ax.plot([0, 1], [0, 1])
        svg_plot.tag(line, series="p50", note='a"<b>')
        svg = str(svg_plot.to_svg(fig, "tagged"))
    assert 'data-series="p50"' in svg and 'data-note="a&#34;&lt;b&gt;"' in svg and "evalkit-data-" not in svg
