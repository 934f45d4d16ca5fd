"""Paired comparison and gates, checked against independent computations on constructed runs.

tests/test_gate.py covers the headline cases (clear regression, clear improvement, noise, missing
samples, bad gate metrics). This file checks every paired delta against plain numpy, McNemar on
validity and feasibility against statsmodels, the absolute and lower-is-better gates, the output
formats (strict JSON, Markdown escaping, appended summaries, JUnit) and real process exit codes.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from test_gate import GATE_SUITE

from evalkit.analysis.bootstrap import paired_bootstrap, row_tail
from evalkit.analysis.metrics import compute_run_metrics
from evalkit.analysis.paired import Side, mcnemar_tests, pair, paired_deltas
from evalkit.cli import main
from evalkit.store import Store
from evalkit.store.db import now

N = 120
SUITE = GATE_SUITE.replace("name: gated", "name: cmp")  # the same constructed suite as test_gate.py


def _at(values: Any, i: int, default: Any = None) -> Any:
    if values is None:
        return default
    v = values[i]
    return None if isinstance(v, float) and math.isnan(v) else (v.item() if hasattr(v, "item") else v)


def build_run(db: Path, run_id: str, models: dict[str, dict[str, Any]], n: int = N, repeats: int = 1,
              suite: str = "cmp") -> None:
    """Store a complete run as evalkit would: per-model arrays over samples (NaN/None: no value).

    Keys per model: correct (required), quality (default: correct), confidence, latency, cost, ttft,
    schema_valid, feasible, error (bool array: the call failed), output, missing (sample indices left out).
    """
    with Store(db) as store:
        store.create_run({"run_id": run_id, "suite_name": suite, "suite_hash": "h", "status": "complete",
                          "created_at": now(), "n_samples": n, "repeats": repeats})
        store.insert_samples([{"run_id": run_id, "sample_id": f"s{i:03d}", "position": i,
                               "slice": ("hard", "easy", "easy")[i % 3], "target": '"yes"'} for i in range(n)])
        rows = []
        for model, spec in models.items():
            store.upsert_run_model({"run_id": run_id, "model": model, "provider": "vllm", "status": "complete"})
            for i in range(n):
                if i in spec.get("missing", ()):
                    continue
                failed = bool(_at(spec.get("error"), i, False))
                ok = bool(spec["correct"][i]) and not failed
                output = _at(spec.get("output"), i, "yes" if ok else "no")
                feasible = _at(spec.get("feasible"), i)
                for rep in range(repeats):
                    rows.append({
                        "run_id": run_id, "model": model, "sample_id": f"s{i:03d}", "repeat": rep,
                        "status": "error" if failed else "ok", "output": None if failed else output,
                        "schema_valid": False if failed else _at(spec.get("schema_valid"), i, True),
                        "feasible": feasible, "violations": None if feasible in (None, True) else
                        json.dumps([f"constraint broken on s{i:03d}"]),
                        "quality": 0.0 if failed else float(_at(spec.get("quality"), i, float(ok))),
                        "correct": ok, "confidence": None if failed else _at(spec.get("confidence"), i),
                        "latency_ms": None if failed else float(_at(spec.get("latency"), i, 100.0)),
                        "ttft_ms": None if failed else _at(spec.get("ttft"), i),
                        "cost_usd": _at(spec.get("cost"), i), "error": "HTTP 500: upstream down" if failed else None,
                        "error_kind": "server" if failed else None, "attempts": 1, "cache_hit": False,
                        "cache_key": f"{run_id}/{model}/{i}/{rep}", "created_at": now()})
        store.insert_results(rows)
        compute_run_metrics(store, run_id, resamples=200)


def flips(base: np.ndarray, lose: int, gain: int) -> np.ndarray:
    """The baseline's correctness with the first ``lose`` right answers lost and ``gain`` wrong ones gained."""
    cand = base.copy()
    cand[np.flatnonzero(base)[:lose]] = 0
    cand[np.flatnonzero(1 - base)[:gain]] = 1
    return cand


def bernoulli(rate: float, seed: int, n: int = N) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < rate).astype(int)


@pytest.fixture
def suite(tmp_path: Path):
    (tmp_path / "data.jsonl").write_text("".join(json.dumps({"id": f"s{i:03d}", "q": "?", "label": "yes"}) + "\n"
                                                 for i in range(N)))

    def _make(*rules: str) -> str:
        path = tmp_path / "suite.yaml"
        path.write_text(SUITE.format(rules="".join(f"    - {r}\n" for r in rules)))
        return str(path)
    return _make


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def gate_json(*args: str) -> dict[str, Any]:
    result = invoke("gate", *args, "--json")
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def by_metric(report: dict[str, Any], metric: str) -> dict[str, Any]:
    return next(g for g in report["gates"] if g["metric"] == metric)


# -- statistics against independent computations ----------------------------------------------------

def test_every_paired_delta_matches_plain_numpy(tmp_path):
    rng = np.random.default_rng(11)
    qb, qc = rng.random(N), np.clip(rng.random(N) + 0.1, 0, 1)
    cb, cc = rng.random(N), rng.random(N)
    cc[:10] = np.nan  # the candidate has no confidence on 10 samples: Brier only on pairs where both have one
    lb, lc = rng.gamma(4, 25, N), rng.gamma(4, 40, N)
    err = np.zeros(N, bool)
    err[[5, 50, 95]] = True  # three failed candidate calls
    sv_b, sv_c = rng.random(N) < 0.9, rng.random(N) < 0.8
    fe_b, fe_c = rng.random(N) < 0.85, rng.random(N) < 0.7
    base = {"correct": qb >= 0.5, "quality": qb, "confidence": cb, "latency": lb, "cost": np.full(N, 2e-3),
            "schema_valid": sv_b, "feasible": fe_b}
    cand = {"correct": qc >= 0.5, "quality": qc, "confidence": cc, "latency": lc, "cost": np.full(N, 5e-4),
            "schema_valid": sv_c, "feasible": fe_c, "error": err}
    db = tmp_path / "d.duckdb"
    build_run(db, "r1", {"base": base, "cand": cand})
    with Store(db, read_only=True) as store:
        deltas = paired_deltas(pair(store, Side("r1", "base"), Side("r1", "cand")), seed=1, resamples=400)
        stored = {(m["model"], m["metric"]): m["value"] for m in store.metrics("r1")}

    ok = ~err  # what the store holds for failed calls: wrong, quality 0, invalid, no latency
    yb, yc = (qb >= 0.5).astype(float), ((qc >= 0.5) & ok).astype(float)
    qc_stored = np.where(ok, qc, 0.0)
    sv_c_stored = sv_c & ok
    k = math.ceil(0.05 * N)
    both_conf = ~np.isnan(cc) & ok
    expected = {
        "accuracy": (yb.mean(), yc.mean()),
        "quality_mean": (qb.mean(), qc_stored.mean()),
        "tail5": (np.sort(qb)[:k].mean(), np.sort(qc_stored)[:k].mean()),
        "error_rate": (0.0, err.mean()),
        "schema_valid_rate": (sv_b.mean(), sv_c_stored.mean()),
        "feasible_rate": (fe_b.mean(), fe_c.mean()),
        "valid_but_infeasible_rate": ((sv_b & ~fe_b).mean(), (sv_c_stored & ~fe_c).mean()),
        "brier": (((cb - yb)[both_conf] ** 2).mean(), ((cc - yc)[both_conf] ** 2).mean()),
        "cost_per_1k": (2.0, 0.5),
        **{f"latency_ms_p{q}": (np.percentile(lb[ok], q), np.percentile(lc[ok], q)) for q in (50, 95, 99)},
    }
    for metric, (vb, vc) in expected.items():
        d = deltas[metric]
        assert (d.baseline, d.candidate, d.delta) == pytest.approx((vb, vc, vc - vb), abs=1e-12), metric
        assert d.ci_low <= d.delta <= d.ci_high, metric
    assert deltas["brier"].n == int(both_conf.sum()) and deltas["latency_ms_p95"].n == int(ok.sum())
    assert deltas["ece"].ci_low <= deltas["ece"].delta <= deltas["ece"].ci_high
    # Where the pairing keeps every row, the paired values are the stored per-model metrics.
    for metric in ("accuracy", "quality_mean", "tail5", "error_rate", "schema_valid_rate", "feasible_rate",
                   "valid_but_infeasible_rate", "cost_per_1k"):
        assert deltas[metric].baseline == pytest.approx(stored[("base", metric)]), metric
        assert deltas[metric].candidate == pytest.approx(stored[("cand", metric)]), metric


def test_latency_shift_has_an_exact_interval_and_the_bootstrap_is_seeded(tmp_path):
    lat = np.random.default_rng(3).gamma(3, 50, N)
    db = tmp_path / "d.duckdb"
    correct = bernoulli(0.8, 1)
    build_run(db, "r1", {"base": {"correct": correct, "latency": lat},
                         "cand": {"correct": flips(correct, 6, 1), "latency": lat + 30.0}})
    with Store(db, read_only=True) as store:
        p = pair(store, Side("r1", "base"), Side("r1", "cand"))
        first, again, other = (paired_deltas(p, seed=s, resamples=300) for s in (5, 5, 6))
    for q in (50, 95, 99):  # every resample shifts by exactly 30 ms, so the interval collapses onto it
        d = first[f"latency_ms_p{q}"]
        assert (d.delta, d.ci_low, d.ci_high) == pytest.approx((30.0, 30.0, 30.0))
    assert first == again and first["accuracy"] != other["accuracy"]
    assert first["accuracy"].delta == pytest.approx(-5 / N)


@pytest.mark.parametrize("lose, gain", [(4, 2), (40, 15)])  # exact binomial, then chi-square
def test_mcnemar_on_validity_and_feasibility_matches_statsmodels(tmp_path, lose, gain):
    correct = bernoulli(0.7, 2)
    valid = np.ones(N, bool)
    feasible = bernoulli(0.75, 4).astype(bool)
    db = tmp_path / "d.duckdb"
    build_run(db, "r1", {"base": {"correct": correct, "schema_valid": valid, "feasible": feasible},
                         "cand": {"correct": flips(correct, lose, gain),
                                  "schema_valid": flips(valid.astype(int), lose // 2, 0).astype(bool),
                                  "feasible": flips(feasible.astype(int), lose, gain).astype(bool)}})
    with Store(db, read_only=True) as store:
        p = pair(store, Side("r1", "base"), Side("r1", "cand"))
        tests = mcnemar_tests(p)
    assert set(tests) == {"correct", "schema_valid", "feasible"}
    for name, t in tests.items():
        b_yes, c_yes = p.rows[f"{name}_b"].astype(bool).to_numpy(), p.rows[f"{name}_c"].astype(bool).to_numpy()
        table = [[int(np.sum(b_yes & c_yes)), int(np.sum(b_yes & ~c_yes))],
                 [int(np.sum(~b_yes & c_yes)), int(np.sum(~b_yes & ~c_yes))]]
        reference = sm_mcnemar(table, exact=(t.b + t.c) < 25, correction=True)
        assert (t.b, t.c) == (table[0][1], table[1][0]), name
        assert t.p_value == pytest.approx(reference.pvalue, rel=1e-9), name


# -- gates on constructed runs --------------------------------------------------------------------

def test_absolute_bounds_on_latency_errors_and_cost(suite, tmp_path):
    correct = bernoulli(0.9, 1)
    err = np.zeros(N, bool)
    err[:9] = True  # 7.5% of calls fail
    db = tmp_path / "d.duckdb"
    build_run(db, "r1", {"base": {"correct": correct, "latency": np.full(N, 200.0), "cost": np.full(N, 1e-3)},
                         "cand": {"correct": correct, "latency": np.linspace(100, 900, N), "error": err,
                                  "cost": np.full(N, 4e-4)}})
    path = suite("{metric: latency_ms_p95, max: 500}", "{metric: error_rate, max: 0.05}",
                 "{metric: cost_per_1k, max: 0.5}", "{metric: accuracy, min: 0.5}")
    report = gate_json(path, "--db", str(db))
    with Store(db, read_only=True) as store:
        stored = {m["metric"]: m for m in store.metrics("r1") if m["model"] == "cand"}
    verdicts = {g["metric"]: g["verdict"] for g in report["gates"]}
    assert verdicts == {"latency_ms_p95": "fail", "error_rate": "fail", "cost_per_1k": "pass", "accuracy": "pass"}
    for g in report["gates"]:  # absolute rules judge the candidate's own stored value
        assert g["candidate"] == pytest.approx(stored[g["metric"]]["value"]) and g["significance"] == "point"
    assert by_metric(report, "error_rate")["candidate"] == pytest.approx(9 / N)
    assert report["verdict"] == "fail" and invoke("gate", path, "--db", str(db)).exit_code == 1


def test_lower_is_better_rules_brier_rise_and_tail_drop(suite, tmp_path):
    correct = bernoulli(0.8, 7)
    q = np.where(correct == 1, 1.0, 0.4)
    db = tmp_path / "d.duckdb"
    cand_q = q.copy()
    cand_q[np.flatnonzero(correct == 0)[:12]] = 0.0  # the worst answers get much worse
    build_run(db, "r1", {
        "base": {"correct": correct, "quality": q, "confidence": np.where(correct == 1, 0.9, 0.2)},
        # same answers, but the candidate is confidently wrong: Brier rises by ~0.13
        "cand": {"correct": correct, "quality": cand_q, "confidence": np.full(N, 0.95)}})
    report = gate_json(suite("{metric: brier, max_rise: 0.02}", "{metric: tail5, max_drop: 0.05}",
                             "{metric: accuracy, max_drop: 0.0}"), "--db", str(db))
    brier, tail = by_metric(report, "brier"), by_metric(report, "tail5")
    assert brier["verdict"] == "fail" and brier["ci_low"] > 0.02 and brier["delta"] > 0.1
    assert tail["verdict"] == "fail" and tail["delta"] == pytest.approx(-0.4) and tail["ci_high"] < -0.05
    assert by_metric(report, "accuracy")["verdict"] == "pass" and report["n_regressions"] == 0


def test_newly_infeasible_samples_are_listed_with_violations(suite, tmp_path):
    correct = np.ones(N, int)
    feasible = np.ones(N, bool)
    cand_feasible = feasible.copy()
    cand_feasible[[3, 30]] = False
    db = tmp_path / "d.duckdb"
    build_run(db, "r1", {"base": {"correct": correct, "feasible": feasible},
                         "cand": {"correct": correct, "feasible": cand_feasible}})
    path = suite("{metric: feasible_rate, max_drop: 0.0, significance: point}")
    report = gate_json(path, "--db", str(db))
    assert report["verdict"] == "fail" and by_metric(report, "feasible_rate")["delta"] == pytest.approx(-2 / N)
    assert [(r["sample_id"], r["lost"]) for r in report["regressions"]] == [("s003", ["infeasible"]),
                                                                          ("s030", ["infeasible"])]
    assert json.loads(report["regressions"][0]["candidate_violations"]) == ["constraint broken on s003"]
    assert report["mcnemar"]["feasible"]["b"] == 2
    # the same drop judged on its CI is noise: a warning, not a failure
    lenient = gate_json(suite("{metric: feasible_rate, max_drop: 0.0}"), "--db", str(db))
    assert by_metric(lenient, "feasible_rate")["verdict"] == "warn" and lenient["verdict"] == "pass"


def test_slices_show_where_it_broke(suite, tmp_path):
    correct = np.ones(N, int)
    cand = correct.copy()
    cand[0::3] = 0  # every 'hard' sample (i % 3 == 0) breaks, 'easy' ones are untouched
    db = tmp_path / "d.duckdb"
    build_run(db, "r1", {"base": {"correct": correct}, "cand": {"correct": cand}})
    report = gate_json(suite("{metric: accuracy, max_drop: 0.01}"), "--db", str(db))
    assert report["slices"] == [
        {"slice": "hard", "n": 40, "baseline_accuracy": 1.0, "candidate_accuracy": 0.0, "delta": -1.0},
        {"slice": "easy", "n": 80, "baseline_accuracy": 1.0, "candidate_accuracy": 1.0, "delta": 0.0}]
    assert report["n_regressions"] == 40 and {r["slice"] for r in report["regressions"]} == {"hard"}


# -- the command line and its output formats --------------------------------------------------------

def test_compare_two_models_of_the_latest_run_as_text(tmp_path):
    correct = bernoulli(0.85, 9)
    db = tmp_path / "d.duckdb"
    build_run(db, "run-1234abcd", {"base": {"correct": correct}, "cand": {"correct": flips(correct, 12, 3)}})
    result = invoke("compare", "--baseline", "base", "--candidate", "cand", "--db", str(db))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "run-1234abcd:cand vs run-1234abcd:base (120 pairs)" in out
    assert "McNemar correct: lost 12, gained 3" in out and "12 regressions" in out and "slice hard" in out
    same = invoke("compare", "run-12", "--baseline", "base", "--candidate", "cand", "--db", str(db), "--json")
    report = json.loads(same.stdout)
    assert report["format"] == "evalkit.compare/1" and report["n_regressions"] == 12
    assert report["deltas"]["accuracy"]["delta"] == pytest.approx(-9 / N)
    bad = invoke("compare", "--baseline", "base", "--candidate", "nope", "--db", str(db))
    assert bad.exit_code == 2 and "has no model 'nope'" in bad.stderr and len(bad.stderr.splitlines()) == 1
    missing = invoke("compare", "zzz", "--baseline", "base", "--candidate", "cand", "--db", str(db))
    assert missing.exit_code == 2 and "no run 'zzz'" in missing.stderr


def test_samples_missing_on_either_side_are_listed(tmp_path):
    correct = bernoulli(0.8, 5)
    db = tmp_path / "d.duckdb"
    build_run(db, "old", {"tuned": {"correct": correct, "missing": {0, 1}}})
    build_run(db, "new", {"tuned": {"correct": correct, "missing": {2}}})
    report = json.loads(invoke("compare", "--baseline", "old:tuned", "--candidate", "new:tuned", "--db", str(db),
                               "--json").stdout)
    assert (report["only_baseline"], report["only_candidate"], report["n_pairs"]) == (["s002"], ["s000", "s001"],
                                                                                      N - 3)


def test_markdown_escapes_outputs_and_appends(suite, tmp_path):
    correct = np.ones(N, int)
    outputs = np.array(["yes"] * N, dtype=object)
    outputs[0] = "no | <script>alert(1)</script>\nsecond line"
    db = tmp_path / "d.duckdb"
    build_run(db, "r1", {"base": {"correct": correct}, "cand": {"correct": flips(correct, 1, 0), "output": outputs}})
    md = tmp_path / "summary.md"
    md.write_text("previous step\n")
    path = suite("{metric: accuracy, max_drop: 0.02}")
    for _ in range(2):
        assert invoke("gate", path, "--db", str(db), "--markdown", str(md)).exit_code == 0
    text = md.read_text()
    assert text.startswith("previous step\n") and text.count("## ✅ evalkit gate passed") == 2
    row = next(line for line in text.splitlines() if line.startswith("| s000 |"))
    assert "<script>" not in text and "no \\| &lt;script&gt;" in row and row.count(" | ") == 4


def test_junit_has_one_case_per_gate(suite, tmp_path):
    correct = bernoulli(0.9, 1)
    db = tmp_path / "d.duckdb"
    build_run(db, "r1", {"base": {"correct": correct}, "cand": {"correct": flips(correct, 30, 0)}})
    junit = tmp_path / "gate.xml"
    rules = ("{metric: accuracy, max_drop: 0.01}", "{metric: error_rate, max: 0.1}", "{metric: brier, max: 0.2}")
    assert invoke("gate", suite(*rules), "--db", str(db), "--junit", str(junit)).exit_code == 1
    root = ET.parse(junit).getroot()
    cases = root.findall("testcase")
    assert (root.tag, root.get("tests"), root.get("failures"), len(cases)) == ("testsuite", "3", "2", 3)
    failures = {c.get("name"): c.find("failure") for c in cases}
    assert failures["accuracy drop ≤ 0.01"].get("type") == "fail"
    assert failures["brier ≤ 0.2"].get("type") == "error"  # no confidences: cannot be checked, so not a pass
    assert failures["error_rate ≤ 0.1"] is None and "whole CI" in failures["accuracy drop ≤ 0.01"].get("message")


def test_exit_codes_of_the_real_process(suite, tmp_path):
    correct = bernoulli(0.9, 1)
    db = tmp_path / "d.duckdb"
    build_run(db, "r1", {"base": {"correct": correct}, "cand": {"correct": flips(correct, 30, 0)}})
    env = {k: v for k, v in os.environ.items() if k != "EVALKIT_DB"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "evalkit.cli", "gate", *args, "--db", str(db)],
                              capture_output=True, text=True, env=env, timeout=60)

    assert run(suite("{metric: accuracy, max_drop: 0.01}")).returncode == 1
    assert run(suite("{metric: accuracy, max_drop: 0.5}")).returncode == 0
    bad = run(suite("{metric: accuracy, max_drop: 0.01}"), "--baseline", "r9:base")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


# -- failed calls, repeats and relative rules -------------------------------------------------------

def test_a_failed_candidate_call_is_listed_with_its_error_in_strict_json(suite, tmp_path):
    correct = np.ones(N, int)
    err = np.zeros(N, bool)
    err[7] = True
    db = tmp_path / "d.duckdb"
    build_run(db, "r1", {"base": {"correct": correct}, "cand": {"correct": correct, "error": err}})
    md = tmp_path / "summary.md"
    result = invoke("gate", suite("{metric: accuracy, max_drop: 0.05}"), "--db", str(db), "--json",
                    "--markdown", str(md))

    def no_nan(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    report = json.loads(result.stdout, parse_constant=no_nan)
    (r,) = report["regressions"]
    assert r["candidate_output"] is None and r["candidate_error"] == "HTTP 500: upstream down"
    assert "HTTP 500: upstream down" in md.read_text() and "| nan |" not in md.read_text()


def test_extra_repeats_are_not_samples_on_one_side(tmp_path):
    correct = bernoulli(0.8, 5, n=20)
    db = tmp_path / "d.duckdb"
    build_run(db, "one", {"m": {"correct": correct}}, n=20, repeats=1)
    build_run(db, "three", {"m": {"correct": correct}}, n=20, repeats=3)
    report = json.loads(invoke("compare", "--baseline", "one:m", "--candidate", "three:m", "--db", str(db),
                               "--json").stdout)
    assert report["only_baseline"] == [] and report["only_candidate"] == [] and report["n_pairs"] == 20
    assert report["unpaired_repeats"] == {"baseline": 0, "candidate": 40}


@pytest.mark.slow
def test_repeats_of_a_deterministic_model_do_not_narrow_the_interval(tmp_path):
    base, cand = bernoulli(0.8, 1), bernoulli(0.75, 2)
    widths = {}
    for repeats in (1, 5):
        db = tmp_path / f"r{repeats}.duckdb"
        build_run(db, "r", {"base": {"correct": base}, "cand": {"correct": cand}}, repeats=repeats)
        with Store(db, read_only=True) as store:
            d = paired_deltas(pair(store, Side("r", "base"), Side("r", "cand")), seed=0, resamples=2000)["accuracy"]
        widths[repeats] = d.ci_high - d.ci_low
    # five identical answers per sample carry the evidence of one: the interval must not shrink by √5
    assert widths[5] == pytest.approx(widths[1], rel=0.15)


def test_cluster_bootstrap_on_repeats_balanced_or_not():
    rng = np.random.default_rng(4)
    a = np.repeat(rng.normal(0, 1, 150), 3)  # three identical repeats per sample
    b = a + 0.3
    groups = np.repeat(np.arange(150), 3)
    single = paired_bootstrap(a[::3], b[::3], row_tail, 1000, np.random.default_rng(0))
    balanced = paired_bootstrap(a, b, row_tail, 1000, np.random.default_rng(0), groups=groups)
    assert balanced == pytest.approx((0.3, 0.3))  # a constant shift survives every resample
    keep = np.ones(450, bool)
    keep[[5, 100, 101]] = False  # repeats missing here and there: resamples of varying length
    q95 = lambda m: np.quantile(m, 0.95, axis=-1)  # noqa: E731
    b2 = a + rng.normal(0.3, 0.2, 450)
    unbalanced = paired_bootstrap(a[keep], b2[keep], q95, 300, np.random.default_rng(0), groups=groups[keep])
    rowwise = paired_bootstrap(a[keep], b2[keep], q95, 300, np.random.default_rng(0))
    assert unbalanced[0] < rowwise[0] and unbalanced[1] > rowwise[1]  # wider than treating rows as samples
    assert single[0] <= 0.3 + 1e-9 and single[1] >= 0.3 - 1e-9


def test_relative_rules_need_a_paired_metric(suite, tmp_path):
    correct = bernoulli(0.9, 1)
    db = tmp_path / "d.duckdb"
    build_run(db, "r1", {"base": {"correct": correct, "ttft": np.full(N, 50.0)},
                         "cand": {"correct": correct, "ttft": np.full(N, 80.0)}})
    report = gate_json(suite("{metric: ttft_ms_p95, max_rise: 10, significance: point}"), "--db", str(db))
    assert by_metric(report, "ttft_ms_p95")["verdict"] == "fail"
    assert by_metric(report, "ttft_ms_p95")["delta"] == pytest.approx(30.0)
    bad = invoke("gate", suite("{metric: accuracy, min: 0.5}", "{metric: n_score_errors, max_rise: 0}"),
                 "--db", str(db))
    assert bad.exit_code == 2 and "gates.rules.1.metric" in bad.stderr and "no paired" in bad.stderr
