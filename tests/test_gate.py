"""Compare and gate on constructed runs whose answers are known in advance."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

from evalkit.analysis.bootstrap import paired_bootstrap
from evalkit.analysis.metrics import compute_run_metrics
from evalkit.analysis.paired import Side, mcnemar, pair, paired_deltas
from evalkit.cli import main
from evalkit.store import Store
from evalkit.store.db import now

N = 200
GATE_SUITE = """\
evalkit: 1
name: gated
dataset: {{path: data.jsonl, slice: slice}}
prompt: {{user: "{{{{ q }}}}"}}
output: {{type: label, labels: ["yes", "no"]}}
target: {{field: label}}
models:
  base: {{provider: vllm, api_base: "http://127.0.0.1:9/v1", base_model: b}}
  cand: {{provider: vllm, api_base: "http://127.0.0.1:9/v1", base_model: c}}
gates:
  baseline: base
  candidate: cand
  rules:
{rules}
"""


def build_run(db: Path, run_id: str, per_model: dict[str, np.ndarray], suite: str = "gated",
              missing: dict[str, set[int]] | None = None, latency: dict[str, float] | None = None) -> None:
    """A stored run whose correctness per sample is given (1/0 arrays), as if evalkit had produced it."""
    missing = missing or {}
    with Store(db) as store:
        store.create_run({"run_id": run_id, "suite_name": suite, "suite_hash": "h", "status": "complete",
                          "created_at": now(), "n_samples": N})
        store.insert_samples([{"run_id": run_id, "sample_id": f"s{i:03d}", "position": i,
                               "slice": "hard" if i % 4 == 0 else "easy", "target": '"yes"'} for i in range(N)])
        rows = []
        rng = np.random.default_rng(7)
        for model, correct in per_model.items():
            store.upsert_run_model({"run_id": run_id, "model": model, "provider": "vllm", "status": "complete"})
            for i, ok in enumerate(correct):
                if i in missing.get(model, set()):
                    continue
                rows.append({"run_id": run_id, "model": model, "sample_id": f"s{i:03d}", "repeat": 0, "status": "ok",
                             "output": "yes" if ok else "no", "schema_valid": True, "quality": float(ok),
                             "correct": bool(ok), "confidence": 0.8,
                             "latency_ms": float(rng.gamma(4, (latency or {}).get(model, 50.0) / 4)),
                             "attempts": 1, "cache_hit": False, "cache_key": f"{run_id}{model}{i}",
                             "created_at": now()})
        store.insert_results(rows)
        compute_run_metrics(store, run_id, resamples=200)


def correctness(rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(N) < rate).astype(int)


@pytest.fixture
def gated(tmp_path: Path):
    def _make(rules: str) -> Path:
        (tmp_path / "data.jsonl").write_text("".join(json.dumps({"id": f"s{i:03d}", "q": "?", "label": "yes",
                                                                 "slice": "x"}) + "\n" for i in range(N)))
        path = tmp_path / "suite.yaml"
        path.write_text(GATE_SUITE.format(rules=rules))
        return path
    return _make


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


ACC_RULES = "    - {metric: accuracy, max_drop: 0.01}\n    - {metric: latency_ms_p95, max: 400}"


def test_clear_regression_fails_with_the_regressed_samples(gated, tmp_path):
    base = correctness(0.9, 1)
    cand = base.copy()
    cand[np.flatnonzero(base)[:50]] = 0  # the candidate loses 50 samples the baseline had
    db = tmp_path / "g.duckdb"
    build_run(db, "r1", {"base": base, "cand": cand})
    md, junit = tmp_path / "summary.md", tmp_path / "gate.xml"
    result = invoke("gate", str(gated(ACC_RULES)), "--db", str(db), "--markdown", str(md), "--junit", str(junit))
    assert result.exit_code == 1, result.output
    assert "gate FAIL" in result.stdout and "50 regressions" in result.stdout
    report = json.loads(invoke("gate", str(gated(ACC_RULES)), "--db", str(db), "--json").stdout)
    acc = next(g for g in report["gates"] if g["metric"] == "accuracy")
    assert acc["verdict"] == "fail" and acc["delta"] == pytest.approx(-50 / N) and acc["ci_high"] < -0.01
    assert report["n_regressions"] == 50 and report["regressions"][0]["lost"] == ["wrong"]
    assert report["regressions"][0]["baseline_output"] == "yes" and report["regressions"][0]["candidate_output"] == "no"
    assert {s["slice"] for s in report["slices"]} == {"easy", "hard"}
    assert report["mcnemar"]["correct"]["b"] == 50 and report["mcnemar"]["correct"]["c"] == 0
    text = md.read_text()
    assert text.startswith("## ❌ evalkit gate failed") and "| ❌ | accuracy |" in text
    assert "### Regressions (50" in text
    suite_xml = ET.parse(junit).getroot()
    assert suite_xml.tag == "testsuite" and suite_xml.get("tests") == "2" and suite_xml.get("failures") == "1"
    cases = suite_xml.findall("testcase")
    assert len(cases) == 2 and cases[0].find("failure") is not None and cases[1].find("failure") is None


def test_clear_improvement_passes(gated, tmp_path):
    base = correctness(0.7, 2)
    cand = np.maximum(base, correctness(0.5, 3))
    db = tmp_path / "g.duckdb"
    build_run(db, "r1", {"base": base, "cand": cand})
    result = invoke("gate", str(gated(ACC_RULES)), "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "gate PASS" in result.stdout


def test_noise_within_the_margin_passes(gated, tmp_path):
    base = correctness(0.85, 4)
    cand = base.copy()
    flip_down, flip_up = np.flatnonzero(base)[:4], np.flatnonzero(1 - base)[:2]
    cand[flip_down], cand[flip_up] = 0, 1  # a net drop of 1 point: over the margin, but within noise
    db = tmp_path / "g.duckdb"
    build_run(db, "r1", {"base": base, "cand": cand})
    report = json.loads(invoke("gate", str(gated(ACC_RULES)), "--db", str(db), "--json").stdout)
    acc = next(g for g in report["gates"] if g["metric"] == "accuracy")
    assert acc["delta"] == pytest.approx(-0.01)
    assert acc["verdict"] in ("pass", "warn") and report["verdict"] == "pass"
    strict = "    - {metric: accuracy, max_drop: 0.005, significance: point}"
    assert invoke("gate", str(gated(strict)), "--db", str(db)).exit_code == 1  # on the point estimate it fails


def test_two_runs_and_missing_samples_are_reported(gated, tmp_path):
    db = tmp_path / "g.duckdb"
    same = correctness(0.8, 5)
    build_run(db, "r-old", {"cand": same})
    build_run(db, "r-new", {"cand": same}, missing={"cand": {3, 7, 11}})
    result = invoke("compare", "--baseline", "r-old:cand", "--candidate", "r-new:cand", "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["only_baseline"] == ["s003", "s007", "s011"] and report["only_candidate"] == []
    assert report["n_pairs"] == N - 3 and report["deltas"]["accuracy"]["delta"] == 0.0
    gate = invoke("gate", str(gated(ACC_RULES)), "--db", str(db), "--baseline", "r-old:cand",
                  "--candidate", "r-new:cand")
    assert "samples on one side only — baseline: 3" in gate.stdout


@pytest.mark.parametrize("rules, words", [
    ("    - {metric: acuracy, max_drop: 0.01}",
     "gates.rules.0.metric: unknown metric 'acuracy' (did you mean 'accuracy'?)"),
    ("    - {metric: brier, max_drop: 0.01}", "max_drop needs a higher-is-better metric"),
    ("    - {metric: accuracy, max_rise: 0.01}", "max_rise needs a lower-is-better metric"),
])
def test_bad_gates_exit_2_with_one_line(gated, tmp_path, rules, words):
    db = tmp_path / "g.duckdb"
    build_run(db, "r1", {"base": correctness(0.9, 1), "cand": correctness(0.9, 1)})
    result = invoke("gate", str(gated(rules)), "--db", str(db))
    assert result.exit_code == 2 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_gate_without_a_run_or_with_an_undefined_metric(gated, tmp_path):
    db = tmp_path / "g.duckdb"
    Store(db).close()
    result = invoke("gate", str(gated(ACC_RULES)), "--db", str(db))
    assert result.exit_code == 2 and "no complete run of suite 'gated'" in result.stderr
    build_run(db, "r1", {"base": correctness(0.9, 1), "cand": correctness(0.9, 1)})
    undefined = "    - {metric: feasible_rate, max_drop: 0.0}"  # the suite has no feasibility checks
    report = json.loads(invoke("gate", str(gated(undefined)), "--db", str(db), "--json").stdout)
    assert report["gates"][0]["verdict"] == "error" and report["verdict"] == "fail"


@pytest.mark.parametrize("b, c", [(3, 9), (0, 5), (40, 22), (100, 100)])
def test_mcnemar_matches_statsmodels(b, c):
    base = np.array([1] * b + [0] * c + [1] * 30 + [0] * 20, dtype=bool)
    cand = np.array([0] * b + [1] * c + [1] * 30 + [0] * 20, dtype=bool)
    ours = mcnemar(base, cand)
    table = [[30, b], [c, 20]]
    reference = sm_mcnemar(table, exact=(b + c) < 25, correction=True)
    assert (ours.b, ours.c) == (b, c)
    assert ours.p_value == pytest.approx(reference.pvalue, rel=1e-9)


def test_paired_bootstrap_covers_the_truth_and_is_seeded(tmp_path):
    rng = np.random.default_rng(0)
    hits = 0
    for trial in range(40):
        a = rng.normal(0, 1, 300)
        b = a + 0.2 + rng.normal(0, 0.5, 300)  # true mean difference 0.2, strongly paired
        low, high = paired_bootstrap(a, b, lambda m: m.mean(axis=-1), 500, np.random.default_rng(trial))
        hits += low <= 0.2 <= high
    assert hits >= 34
    db = tmp_path / "g.duckdb"
    build_run(db, "r1", {"base": correctness(0.8, 1), "cand": correctness(0.7, 2)})
    with Store(db, read_only=True) as store:
        p = pair(store, Side("r1", "base"), Side("r1", "cand"))
        first, second = paired_deltas(p, seed=3, resamples=300), paired_deltas(p, seed=3, resamples=300)
    assert first == second
    assert first["accuracy"].ci_low <= first["accuracy"].delta <= first["accuracy"].ci_high
