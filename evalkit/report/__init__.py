"""Stage 8 — what people read: the self-contained HTML report (read entirely from the DuckDB store), the CI
renderers of a verdict (text, Markdown, JUnit) and terminal tables."""

from evalkit.report.render import render_report, write_report

__all__ = ["render_report", "write_report"]
