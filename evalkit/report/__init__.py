"""The stakeholder report: one self-contained HTML file read entirely from the DuckDB store."""

from evalkit.report.render import render_report, write_report

__all__ = ["render_report", "write_report"]
