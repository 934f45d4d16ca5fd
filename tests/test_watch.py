"""The watch list (``gates.watch``) and the n of every number, on constructed paired runs in real DuckDB files.

Each run is stored as evalkit would store it (tests/test_compare.py's ``build_run``: slices hard / easy / easy
by sample index mod 3) and read back through the CLI a user runs: ``gate`` (text, --json, --markdown,
--junit), ``compare`` (text, --json) and ``report`` (HTML).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from test_compare import SUITE, build_run

from evalkit.analysis.watch import margin_kind
from evalkit.cli import main

N = 120
HARD = np.arange(N) % 3 == 0  # build_run's "hard" slice: 40 samples
ACCURACY_ONLY = "    - {metric: accuracy, max_drop: 0.2, significance: point}\n"


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def suite(tmp_path: Path):
    (tmp_path / "data.jsonl").write_text("".join(json.dumps({"id": f"s{i:03d}", "q": "?", "label": "yes", "slice": "x"}) + "\n"
                                                 for i in range(N)))

    def _make(rules: str = ACCURACY_ONLY, watch: str | None = None) -> str:
        path = tmp_path / "suite.yaml"
        path.write_text(SUITE.format(rules=rules) + (f"  watch: {watch}\n" if watch else ""))
        return str(path)
    return _make


def _gate(suite_path: str, db: Path, *extra: str) -> tuple[Any, dict[str, Any]]:
    text = invoke("gate", suite_path, "--db", str(db), "--resamples", "500", *extra)
    doc = json.loads(invoke("gate", suite_path, "--db", str(db), "--resamples", "500", "--json").stdout)
    return text, doc


def _slice_drop_run(db: Path) -> None:
    """The candidate loses 12 of the 40 hard samples (hard: 1.00 → 0.70) and nothing else; both miss the
    same 10 easy samples (so the worst 5% is 0 on both sides and tail5 does not move)."""
    base = np.ones(N, dtype=int)
    base[np.flatnonzero(~HARD)[:10]] = 0
    cand = base.copy()
    cand[np.flatnonzero(HARD)[:12]] = 0
    build_run(db, "r1", {"base": {"correct": base}, "cand": {"correct": cand}}, n=N)


def test_a_slice_drop_the_gate_passes_is_on_the_watch_list_everywhere(suite, tmp_path):
    db = tmp_path / "w.duckdb"
    _slice_drop_run(db)
    md, junit = tmp_path / "summary.md", tmp_path / "gate.xml"
    result, doc = _gate(suite(), db, "--markdown", str(md), "--junit", str(junit))
    assert result.exit_code == 0, result.output  # overall −0.10 is within max_drop 0.2: the gate passes…
    assert doc["verdict"] == "pass"
    items = doc["watch"]["items"]
    assert [(i["kind"], i["slice"], i["metric"]) for i in items] == [("slice", "hard", "accuracy")]  # …but says this
    hard = items[0]
    assert hard["baseline"] == 1.0 and hard["candidate"] == pytest.approx(28 / 40)
    assert hard["delta"] == pytest.approx(-12 / 40) and hard["ci_high"] < -hard["margin"] == -0.02
    assert hard["n"] == 40 and hard["worse_pairs"] == 12 and hard["better_pairs"] == 0
    assert doc["watch"]["checked"]["slices"] == ["easy", "hard"] and doc["watch"]["changes_exit_code"] is False
    assert "watch list (significantly worse" in result.stdout
    assert "slice hard accuracy: 1 → 0.7 (Δ -0.3" in result.stdout and "on 40 pairs, 12 worse / 0 better" in result.stdout
    assert "### ⚠️ Watch list (1;" in md.read_text() and "| slice hard accuracy |" in md.read_text()
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "0" and root.get("tests") == "1" and len(root.findall("testcase")) == 1
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["evalkit.watch.n_items"] == "1" and props["evalkit.watch.0"].startswith("slice hard accuracy:")
    assert "slice hard accuracy" in root.findtext("system-out")  # the suite's own output, not a failing case
    cmp = invoke("compare", "r1", "--baseline", "base", "--candidate", "cand", "--db", str(db))
    assert cmp.exit_code == 0 and "slice hard accuracy" in cmp.stdout
    cmp_doc = json.loads(invoke("compare", "r1", "--baseline", "base", "--candidate", "cand", "--db", str(db),
                                "--json").stdout)
    assert cmp_doc["format"] == "evalkit.compare/1"
    # compare has no rules: the whole-run accuracy drop (−0.10, CI within the bad side of −0.02) is listed too
    assert {(i["kind"], i["slice"], i["metric"]) for i in cmp_doc["watch"]["items"]} == {
        ("metric", None, "accuracy"), ("slice", "hard", "accuracy")}
    out = tmp_path / "r.html"
    assert invoke("report", "r1", "--db", str(db), "-o", str(out)).exit_code == 0
    html = out.read_text()
    assert 'data-watch-item="slice hard accuracy"' in html and 'data-watch-slice="hard"' in html


def test_a_failing_gate_keeps_its_exit_code_and_its_watch_list(suite, tmp_path):
    db = tmp_path / "w.duckdb"
    _slice_drop_run(db)
    result, doc = _gate(suite("    - {metric: accuracy, max_drop: 0.01, significance: point}\n"), db)
    assert result.exit_code == 1 and doc["verdict"] == "fail" and doc["watch"]["n_items"] == 1


@pytest.mark.slow  # five configurations, each gated twice
def test_an_ungated_latency_regression_is_listed_with_its_ratio(suite, tmp_path):
    rng = np.random.default_rng(3)
    lat_b = rng.gamma(8, 2200 / 8, N)
    lat_c = lat_b * 4.8 + rng.normal(0, 50, N)
    correct = np.ones(N, dtype=int)
    db = tmp_path / "w.duckdb"
    build_run(db, "r1", {"base": {"correct": correct, "latency": lat_b}, "cand": {"correct": correct, "latency": lat_c}})
    result, doc = _gate(suite(), db)
    assert result.exit_code == 0 and doc["verdict"] == "pass"
    by_metric = {i["metric"]: i for i in doc["watch"]["items"]}
    assert set(by_metric) == {"latency_ms_p50", "latency_ms_p90", "latency_ms_p95", "latency_ms_p99"}
    p50 = by_metric["latency_ms_p50"]
    expected = np.quantile(lat_c, 0.5) / np.quantile(lat_b, 0.5)
    assert p50["margin_kind"] == "relative" and p50["margin"] == 0.2
    assert p50["ratio"] == pytest.approx(expected) and p50["ratio_ci_low"] > 1.2 and p50["n"] == N
    assert p50["ratio_ci_low"] <= p50["ratio"] <= p50["ratio_ci_high"]
    assert f"×{expected:.2f}" in result.stdout and "latency_ms_p50:" in result.stdout
    # latencies as people read them, in the terminal and in the report's watch table: "10,723 ms", no e-notation
    shown = f"{p50['candidate']:,.0f} ms"
    assert p50["candidate"] > 10_000 and shown in result.stdout and "e+0" not in result.stdout
    report = tmp_path / "r.html"
    assert invoke("report", "r1", "--db", str(db), "-o", str(report), "--baseline", "base",
                  "--candidate", "cand").exit_code == 0
    html = report.read_text()
    row = html[html.index('data-watch-metric="latency_ms_p50"'):][:1500]
    assert shown in row and "e+0" not in row, row
    # a rule on a metric takes it off the watch list; a stated margin and a switch change what is listed
    _, covered = _gate(suite(ACCURACY_ONLY + "    - {metric: latency_ms_p50, max: 1000000}\n"), db)
    assert "latency_ms_p50" not in {i["metric"] for i in covered["watch"]["items"]}
    _, wide = _gate(suite(watch="{relative: 5.0}"), db)
    assert wide["watch"]["items"] == [] and wide["watch"]["relative"] == 5.0
    _, one = _gate(suite(watch="{margin: {latency_ms_p50: 5.0}}"), db)
    assert "latency_ms_p50" not in {i["metric"] for i in one["watch"]["items"]} and one["watch"]["n_items"] == 3
    _, strict = _gate(suite(watch="{min_pairs: 1000}"), db)  # too few pairs everywhere: said, not judged
    assert strict["watch"]["items"] == [] and "latency_ms_p50 (n=120)" in strict["watch"]["not_judged"]
    assert "slice hard (n=40)" in strict["watch"]["not_judged"]
    off, _ = _gate(suite(watch="{enabled: false}"), db)
    assert off.exit_code == 0 and "watch list: off" in off.stdout


def test_an_empty_watch_list_is_said(suite, tmp_path):
    correct = (np.arange(N) % 5 != 0).astype(int)
    db = tmp_path / "w.duckdb"
    build_run(db, "r1", {"base": {"correct": correct}, "cand": {"correct": correct}})
    md = tmp_path / "summary.md"
    result, doc = _gate(suite(), db, "--markdown", str(md))
    assert result.exit_code == 0 and doc["watch"]["items"] == [] and doc["watch"]["n_items"] == 0
    assert "watch list: empty" in result.stdout and "**Watch list: empty**" in md.read_text()
    cmp = invoke("compare", "r1", "--baseline", "base", "--candidate", "cand", "--db", str(db))
    assert "watch list: empty" in cmp.stdout
    out = tmp_path / "r.html"
    assert invoke("report", "r1", "--db", str(db), "-o", str(out)).exit_code == 0
    assert 'data-watch="0"' in out.read_text() and "Watch list: empty" in out.read_text()


def test_an_unknown_watch_margin_is_a_user_error_naming_the_key(suite, tmp_path):
    db = tmp_path / "w.duckdb"
    _slice_drop_run(db)
    result = invoke("gate", suite(watch="{margin: {latency_p50: 0.5}}"), "--db", str(db))
    assert result.exit_code == 2
    assert "gates.watch.margin.latency_p50" in result.output and "latency_ms_p50" in result.output
    validated = invoke("validate", suite(watch="{margin: {latency_p50: 0.5}}"))
    assert validated.exit_code == 2 and "gates.watch.margin.latency_p50" in validated.output
    assert invoke("validate", suite(watch="{margin: {latency_ms_p50: 0.5}}")).exit_code == 0
    assert invoke("validate", suite(watch="{margin: {latency_ms_p50: -1}}")).exit_code == 2


def _confidence_run(db: Path, with_confidence: int) -> None:
    """Both models right on 80% of samples; the baseline gives a confidence on the first ``with_confidence``."""
    correct = (np.arange(N) % 5 != 0).astype(int)
    conf_b = np.array([0.9 if i < with_confidence else np.nan for i in range(N)])
    conf_c = np.linspace(0.55, 0.95, N)
    build_run(db, "r1", {"base": {"correct": correct, "confidence": conf_b},
                         "cand": {"correct": correct, "confidence": conf_c}})


def test_a_paired_value_on_fewer_pairs_says_so_and_shows_the_scorecard_value(suite, tmp_path):
    db = tmp_path / "w.duckdb"
    _confidence_run(db, 9)
    rules = ACCURACY_ONLY + "    - {metric: brier, max_rise: 0.5}\n"
    result, doc = _gate(suite(rules), db)
    brier = next(g for g in doc["gates"] if g["metric"] == "brier")
    assert brier["n"] == 9 and brier["n_of"] == N and brier["basis"] == "paired" and brier["partial"] is True
    conf_c, correct = np.linspace(0.55, 0.95, N), (np.arange(N) % 5 != 0)
    full = float(np.mean((conf_c - correct) ** 2))  # the candidate's scorecard Brier: all its rows
    assert brier["unpaired"]["candidate"] == {"value": pytest.approx(full), "n": N}
    assert brier["candidate"] == pytest.approx(float(np.mean((conf_c[:9] - correct[:9]) ** 2)))
    accuracy = next(g for g in doc["gates"] if g["metric"] == "accuracy")
    assert accuracy["n"] == N and accuracy["partial"] is False and accuracy["unpaired"] is None
    assert doc["n_rows"] == {"baseline": N, "candidate": N} and doc["deltas"]["brier"]["n_of"] == N
    assert f"brier (paired, n=9 of {N})" in result.stdout
    assert f"candidate {full:.4g} on {N} rows" in result.stdout and "on 9 pairs" in result.stdout
    assert "accuracy (paired" not in result.stdout
    cmp = invoke("compare", "r1", "--baseline", "base", "--candidate", "cand", "--db", str(db))
    assert f"brier (paired, n=9 of {N})" in cmp.stdout and "accuracy (paired" not in cmp.stdout
    cmp_doc = json.loads(invoke("compare", "r1", "--baseline", "base", "--candidate", "cand", "--db", str(db),
                                "--json").stdout)
    assert cmp_doc["deltas"]["brier"]["partial"] is True and cmp_doc["deltas"]["accuracy"]["partial"] is False
    assert cmp_doc["deltas"]["brier"]["unpaired"]["candidate"]["n"] == N
    out = tmp_path / "r.html"
    assert invoke("report", "r1", "--db", str(db), "-o", str(out)).exit_code == 0
    html = out.read_text()
    assert f'data-n-label="delta-brier">(paired, n=9 of {N})' in html
    assert f'data-n-label="brier">n=9 of {N}' in html  # the baseline's scorecard Brier rests on 9 rows
    assert 'data-n-label="accuracy"' not in html and 'data-n-label="delta-accuracy"' not in html


def test_no_n_label_when_every_row_is_paired(suite, tmp_path):
    db = tmp_path / "w.duckdb"
    _confidence_run(db, N)
    rules = ACCURACY_ONLY + "    - {metric: brier, max_rise: 0.5}\n"
    result, doc = _gate(suite(rules), db)
    assert all(g["partial"] is False and g["unpaired"] is None for g in doc["gates"])
    assert "(paired, n=" not in result.stdout and "scorecard (each model" not in result.stdout
    cmp = invoke("compare", "r1", "--baseline", "base", "--candidate", "cand", "--db", str(db))
    assert "(paired, n=" not in cmp.stdout
    out = tmp_path / "r.html"
    assert invoke("report", "r1", "--db", str(db), "-o", str(out)).exit_code == 0
    assert "data-n-label" not in out.read_text() and "data-count-note" not in out.read_text()


def test_margin_kinds():
    assert {margin_kind(m) for m in ("accuracy", "error_rate", "brier", "ece", "tail5")} == {"absolute"}
    assert {margin_kind(m) for m in ("latency_ms_p50", "ttft_ms_p95", "cost_per_1k", "completion_tokens_mean",
                                     "cold_start_ms")} == {"relative"}


@pytest.mark.parametrize(("value", "metric", "signed", "text"), [
    (10723.4, "latency_ms_p50", False, "10,723 ms"), (1.0723e4, "cost_per_1k", True, "+10,723"),
    (12.3456, "ttft_ms_p95", False, "12.35 ms"), (0.0000123, "cost_per_1k", False, "0.0000123"),
    (-0.25, "accuracy", True, "-0.25"), (0.0, "accuracy", True, "+0"), (None, "accuracy", False, "—")])
def test_watch_numbers_are_human(value, metric, signed, text):
    from evalkit.report.watch_text import human
    assert human(value, metric, signed) == text
