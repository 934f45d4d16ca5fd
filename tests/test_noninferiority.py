"""Three-way verdicts (noninferiority / inconclusive / n_needed), `evalkit plan` against simulation, Holm,
slice rules and gate checks at validate time — on constructed paired runs in real DuckDB stores."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from evalkit.analysis.bootstrap import paired_bootstrap, row_mean
from evalkit.analysis.gates import judge_relative
from evalkit.analysis.metrics import compute_run_metrics
from evalkit.analysis.paired import Delta
from evalkit.cli import main
from evalkit.config.gate_specs import GateRule
from evalkit.store import Store
from evalkit.store.db import now

SUITE = """\
evalkit: 1
name: ni
dataset: {{path: data.jsonl, slice: kind}}
prompt: {{user: "{{{{ q }}}}"}}
output: {{type: label, labels: ["yes", "no"]}}
target: {{field: label}}
models:
  base: {{provider: vllm, api_base: "http://127.0.0.1:9/v1", base_model: b}}
  cand: {{provider: vllm, api_base: "http://127.0.0.1:9/v1", base_model: c}}
gates:
  baseline: base
  candidate: cand
{extra}  rules:
{rules}
"""
NI = "    - {metric: accuracy, max_drop: 0.02, significance: noninferiority}\n"


def paired(n: int, accuracy: float, lost: int, gained: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Baseline correctness at ``accuracy``, and a candidate that loses ``lost`` of the baseline's right
    answers and gains ``gained`` of its wrong ones (discordant pairs placed at random)."""
    rng = np.random.default_rng(seed)
    base = np.zeros(n, dtype=int)
    base[rng.choice(n, round(accuracy * n), replace=False)] = 1
    cand = base.copy()
    cand[rng.choice(np.flatnonzero(base == 1), lost, replace=False)] = 0
    cand[rng.choice(np.flatnonzero(base == 0), gained, replace=False)] = 1
    return base, cand


def slices_of(n: int) -> list[str]:
    return ["spam" if i % 3 == 0 else "ham" for i in range(n)]


def build(db: Path, base: np.ndarray, cand: np.ndarray, rules: str, run_id: str = "r1",
          slices: list[str] | None = None, quality: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """A stored, complete run of both models with the given per-sample correctness."""
    n = len(base)
    slices = slices or slices_of(n)
    config = {"gates": {"baseline": "base", "candidate": "cand",
                        "rules": [json.loads(json.dumps(r)) for r in _rules_as_dicts(rules)]}}
    with Store(db) as store:
        store.create_run({"run_id": run_id, "suite_name": "ni", "suite_hash": "h", "status": "complete",
                          "created_at": now(), "n_samples": n, "config": json.dumps(config)})
        store.insert_samples([{"run_id": run_id, "sample_id": f"s{i:05d}", "position": i, "slice": slices[i],
                               "target": '"yes"'} for i in range(n)])
        rows = []
        scores = quality or (base.astype(float), cand.astype(float))
        for model, correct, score in (("base", base, scores[0]), ("cand", cand, scores[1])):
            store.upsert_run_model({"run_id": run_id, "model": model, "provider": "vllm", "status": "complete"})
            rows += [{"run_id": run_id, "model": model, "sample_id": f"s{i:05d}", "repeat": 0, "status": "ok",
                      "output": "yes" if ok else "no", "schema_valid": True, "quality": float(score[i]),
                      "correct": bool(ok), "latency_ms": 50.0, "attempts": 1, "cache_hit": False,
                      "cache_key": f"{run_id}{model}{i}", "created_at": now()} for i, ok in enumerate(correct)]
        store.insert_results(rows)
        compute_run_metrics(store, run_id, resamples=100)


def _rules_as_dicts(rules: str) -> list[dict[str, object]]:
    import yaml

    return list(yaml.safe_load("rules:\n" + rules)["rules"])


@pytest.fixture
def suite(tmp_path: Path):
    def _make(rules: str, n: int, extra: str = "") -> Path:
        kinds = slices_of(n)
        (tmp_path / "data.jsonl").write_text("".join(json.dumps({"id": f"s{i:05d}", "q": "?", "label": "yes",
                                                                 "kind": kinds[i]}) + "\n" for i in range(n)))
        path = tmp_path / "suite.yaml"
        path.write_text(SUITE.format(rules=rules, extra=extra))
        return path
    return _make


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def gate_json(path: Path, db: Path, *extra: str) -> dict[str, object]:
    result = invoke("gate", str(path), "--db", str(db), "--json", *extra)
    assert result.exit_code in (0, 1), result.output
    return dict(json.loads(result.stdout))


@pytest.mark.slow  # several gate evaluations with 2,000 paired resamples
def test_a_true_3_point_drop_on_60_samples_is_inconclusive_not_pass(suite, tmp_path):
    base, cand = paired(60, 0.85, lost=3, gained=1)  # Δ = −2/60 ≈ −3.3 points, margin 2 points
    db = tmp_path / "s.duckdb"
    path = suite(NI, 60)
    build(db, base, cand, NI)
    md, junit = tmp_path / "s.md", tmp_path / "g.xml"
    result = invoke("gate", str(path), "--db", str(db), "--markdown", str(md), "--junit", str(junit))
    assert result.exit_code == 1, result.output
    assert "gate INCONCLUSIVE" in result.stdout and "INCONCLUSIVE: not enough evidence" in result.stdout
    report = gate_json(path, db)
    acc = report["gates"][0]
    assert report["verdict"] == "inconclusive" and acc["verdict"] == "inconclusive"
    assert acc["delta"] == pytest.approx(-2 / 60) and acc["ci_low"] < -0.02 < acc["ci_high"]
    assert acc["n_needed"] > 60 and f"n≈{acc['n_needed']}" in result.stdout
    assert md.read_text().startswith("## ❓ evalkit gate inconclusive") and f"n≈{acc['n_needed']}" in md.read_text()
    xml = ET.parse(junit).getroot()
    assert xml.get("failures") == "1" and xml.find("testcase/failure").get("type") == "inconclusive"
    # the old meaning, `ci`, only blocks proven regressions: the same evidence passes (with a warning)
    lenient = NI.replace("noninferiority", "ci")
    report_ci = gate_json(suite(lenient, 60), db)
    assert report_ci["verdict"] == "pass" and report_ci["gates"][0]["verdict"] == "warn"
    # --allow-inconclusive: exit 0, and every output still says INCONCLUSIVE
    path = suite(NI, 60)
    allowed = invoke("gate", str(path), "--db", str(db), "--allow-inconclusive", "--junit", str(junit),
                     "--markdown", str(md))
    assert allowed.exit_code == 0, allowed.output
    assert "gate INCONCLUSIVE" in allowed.stdout and "allowed by --allow-inconclusive" in allowed.stdout
    xml = ET.parse(junit).getroot()
    assert xml.get("failures") == "0" and xml.get("skipped") == "1" and xml.find("testcase/skipped") is not None
    assert md.read_text().count("❓ evalkit gate inconclusive") == 2  # appended, like $GITHUB_STEP_SUMMARY


def test_n_needed_follows_the_discordance_formula(suite, tmp_path):
    base, cand = paired(60, 0.85, lost=3, gained=1)
    db = tmp_path / "s.duckdb"
    build(db, base, cand, NI)
    acc = gate_json(suite(NI, 60), db)["gates"][0]
    b, c, margin = 3 / 60, 1 / 60, 0.02
    sd = np.sqrt(b + c - (c - b) ** 2)
    expected = ((1.959964 + 0.841621) * sd / abs((c - b) + margin)) ** 2
    assert acc["n_needed"] == int(np.ceil(expected))
    assert "discordance b=0.05, c=0.0167" in acc["reason"]


@pytest.mark.slow  # several gate evaluations with 2,000 paired resamples
def test_the_same_models_on_3000_samples_with_no_drop_pass(suite, tmp_path):
    base, cand = paired(3000, 0.85, lost=100, gained=100)  # the same 6.7% discordance as above, no net change
    db = tmp_path / "s.duckdb"
    path = suite(NI, 3000)
    build(db, base, cand, NI)
    result = invoke("gate", str(path), "--db", str(db))
    assert result.exit_code == 0, result.output
    report = gate_json(path, db)
    acc = report["gates"][0]
    assert report["verdict"] == "pass" and acc["verdict"] == "pass" and acc["n_needed"] is None
    assert acc["ci_low"] > -0.02 and "shown non-inferior" in acc["reason"]


@pytest.mark.slow  # several gate evaluations with 2,000 paired resamples
def test_a_clear_regression_on_3000_samples_fails(suite, tmp_path):
    base, cand = paired(3000, 0.85, lost=200, gained=50)  # −5 points
    db = tmp_path / "s.duckdb"
    path = suite(NI, 3000)
    build(db, base, cand, NI)
    result = invoke("gate", str(path), "--db", str(db), "--allow-inconclusive")
    assert result.exit_code == 1, result.output  # --allow-inconclusive never lets a failure through
    report = gate_json(path, db)
    assert report["verdict"] == "fail" and report["gates"][0]["verdict"] == "fail"
    assert report["gates"][0]["ci_high"] < -0.02


@pytest.mark.slow  # several gate evaluations with 2,000 paired resamples
def test_the_report_banner_and_gate_table_say_inconclusive(suite, tmp_path):
    base, cand = paired(60, 0.85, lost=3, gained=1)
    db = tmp_path / "s.duckdb"
    build(db, base, cand, NI)
    out = tmp_path / "r.html"
    result = invoke("report", "latest", "--db", str(db), "-o", str(out))
    assert result.exit_code == 0, result.output
    html = out.read_text()
    n_needed = gate_json(suite(NI, 60), db)["gates"][0]["n_needed"]
    assert 'data-verdict="inconclusive"' in html and '<div class="big">INCONCLUSIVE</div>' in html
    assert 'data-gate-verdict="inconclusive"' in html and f'data-n-needed="{n_needed}"' in html
    assert f"≈{n_needed:,} paired samples would resolve it" in html


@pytest.mark.slow
def test_n_needed_of_a_continuous_metric_comes_from_the_paired_bootstrap(suite, tmp_path):
    n, rng = 100, np.random.default_rng(11)
    q_base = rng.uniform(0.3, 0.9, n)
    q_cand = np.clip(q_base - 0.01 + rng.normal(0, 0.15, n), 0, 1)
    rules = "    - {metric: quality_mean, max_drop: 0.02, significance: noninferiority}\n"
    db = tmp_path / "s.duckdb"
    correct = (q_base > 0.5).astype(int)
    build(db, correct, correct, rules, quality=(q_base, q_cand))
    gate = gate_json(suite(rules, n), db)["gates"][0]
    assert gate["verdict"] == "inconclusive" and "paired bootstrap" in gate["reason"]
    diff = q_cand - q_base
    analytic = ((1.959964 + 0.841621) * diff.std() / abs(diff.mean() + 0.02)) ** 2
    assert gate["n_needed"] == pytest.approx(analytic, rel=0.15)  # bootstrap SE·√n ≈ the per-pair sd


def simulated_power(n: int, lost: float, gained: float, margin: float, sims: int, seed: int) -> float:
    """Share of simulated paired data sets of n samples on which the real gate decision passes."""
    rule = GateRule(metric="accuracy", max_drop=margin, significance="noninferiority")
    rng = np.random.default_rng(seed)
    passed = 0
    for _ in range(sims):
        u = rng.random(n)
        diff_kind = np.where(u < lost, -1, np.where(u < lost + gained, 1, 0))
        base = np.where(diff_kind == -1, 1.0, np.where(diff_kind == 1, 0.0, (rng.random(n) < 0.8).astype(float)))
        cand = base + diff_kind
        low, high = paired_bootstrap(base, cand, row_mean, 1000, rng, 0.95)
        d = Delta("accuracy", float(base.mean()), float(cand.mean()), float(cand.mean() - base.mean()), low, high, n)
        passed += judge_relative(rule, d).verdict == "pass"
    return passed / sims


@pytest.mark.slow
@pytest.mark.parametrize("discordance,delta", [(0.1, 0.0), (0.06, 0.005)])
def test_plans_n_reaches_the_target_power_in_simulation(suite, tmp_path, discordance, delta):
    path = suite(NI, 500)
    result = invoke("plan", str(path), "--discordance", str(discordance), "--delta", str(delta), "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["format"] == "evalkit.plan/1" and plan["source"] == "stated"
    row = plan["rules"][0]
    n = row["n_needed"]
    lost, gained = (discordance - delta) / 2, (discordance + delta) / 2
    power = simulated_power(n, lost, gained, 0.02, 300, seed=1)
    assert abs(power - 0.8) <= 0.15 * 0.8, (n, power)
    assert simulated_power(n // 2, lost, gained, 0.02, 200, seed=2) < 0.65  # the simulation can tell n from n/2
    # the 500-sample data set resolves a wider margin only: at that margin the same simulation passes ~80%
    wide = row["resolvable_margin"]
    assert wide > 0.02 and abs(simulated_power(500, lost, gained, wide, 300, seed=3) - 0.8) <= 0.12


@pytest.mark.slow  # several gate evaluations with 2,000 paired resamples
def test_plan_from_a_pilot_run_uses_its_discordance(suite, tmp_path):
    base, cand = paired(60, 0.85, lost=3, gained=3)
    db = tmp_path / "s.duckdb"
    build(db, base, cand, NI)
    path = suite(NI, 60)
    pilot = json.loads(invoke("plan", str(path), "--run", "latest", "--db", str(db), "--json").stdout)
    stated = json.loads(invoke("plan", str(path), "--discordance", str(6 / 60), "--json").stdout)
    assert pilot["source"].startswith("run r1") and pilot["rules"][0]["basis"].startswith("discordance b=0.05")
    assert pilot["rules"][0]["n_needed"] == stated["rules"][0]["n_needed"]  # same rates, same answer
    assert pilot["rules"][0]["available"] == 60 and pilot["rules"][0]["power_at_available"] < 0.8
    text = invoke("plan", str(path), "--run", "latest", "--db", str(db))
    assert text.exit_code == 0 and "n needed" in text.stdout and f"{pilot['rules'][0]['n_needed']:,}" in text.stdout
    no_rates = invoke("plan", str(path), "--json")
    assert json.loads(no_rates.stdout)["rules"][0]["n_needed"] is None  # says what it needs instead of guessing


HOLM_RULES = NI + "    - {metric: quality_mean, max_drop: 0.02, significance: noninferiority}\n"


@pytest.mark.slow  # several gate evaluations with 2,000 paired resamples
def test_holm_changes_a_borderline_verdict(suite, tmp_path):
    base, cand = paired(600, 0.8, lost=16, gained=16)  # lower bound ≈ −1.85 points at 95%, below −2 at 97.5%
    db = tmp_path / "s.duckdb"
    build(db, base, cand, HOLM_RULES)
    plain = gate_json(suite(HOLM_RULES, 600), db)
    assert [g["verdict"] for g in plain["gates"]] == ["pass", "pass"]
    assert plain["family"]["size"] == 2 and plain["family"]["correction"] == "none"
    text = invoke("gate", str(suite(HOLM_RULES, 600)), "--db", str(db)).stdout
    assert "family: 2 relative rules share the error rate" in text and "no correction" in text
    holm = gate_json(suite(HOLM_RULES, 600, extra="  correction: holm\n"), db)
    assert holm["verdict"] == "inconclusive" and [g["verdict"] for g in holm["gates"]] == ["inconclusive"] * 2
    assert holm["family"]["levels"] == [pytest.approx(0.975)] * 2 and holm["gates"][0]["level"] == pytest.approx(0.975)
    assert holm["gates"][0]["ci_low"] < plain["gates"][0]["ci_low"]


@pytest.mark.slow  # several gate evaluations with 2,000 paired resamples
def test_holm_steps_down_to_the_unadjusted_level(suite, tmp_path):
    base, cand = paired(600, 0.8, lost=16, gained=16)
    db = tmp_path / "s.duckdb"
    rules = NI + "    - {metric: error_rate, max_rise: 0.02, significance: noninferiority}\n"
    build(db, base, cand, rules)
    holm = gate_json(suite(rules, 600, extra="  correction: holm\n"), db)
    by_metric = {g["metric"]: g for g in holm["gates"]}
    # error_rate (no errors on either side) is the strongest evidence: step 1 at 97.5%, passes; accuracy is
    # then judged at the unadjusted 95% and passes as without correction
    assert by_metric["error_rate"]["level"] == pytest.approx(0.975) and by_metric["accuracy"]["level"] == 0.95
    assert holm["verdict"] == "pass"


@pytest.mark.slow  # several gate evaluations with 2,000 paired resamples
def test_slice_rules_judge_that_slices_pairs(suite, tmp_path):
    n = 600
    kinds = slices_of(n)
    spam = np.array([k == "spam" for k in kinds])
    rng = np.random.default_rng(3)
    base = (rng.random(n) < 0.8).astype(int)
    cand = base.copy()
    cand[np.flatnonzero(spam & (base == 1))[:40]] = 0  # the candidate loses 40 spam samples, nothing else
    db = tmp_path / "s.duckdb"
    rules = ("    - {metric: accuracy, max_drop: 0.02, slice: spam}\n"
             "    - {metric: accuracy, max_drop: 0.05, per_slice: true, significance: noninferiority}\n")
    build(db, base, cand, rules)
    report = gate_json(suite(rules, n), db)
    gates = [(g["slice"], g["verdict"]) for g in report["gates"]]
    assert gates == [("spam", "fail"), ("ham", "pass"), ("spam", "fail")]
    spam_gate = report["gates"][0]
    assert spam_gate["delta"] == pytest.approx(-40 / spam.sum()) and "slice spam (200 pairs)" in spam_gate["reason"]
    text = invoke("gate", str(suite(rules, n)), "--db", str(db)).stdout
    assert "accuracy [spam]" in text and "accuracy [ham]" in text
    out = tmp_path / "r.html"
    assert invoke("report", "latest", "--db", str(db), "-o", str(out)).exit_code == 0
    html = out.read_text()
    assert html.count('data-gate-slice="spam"') == 2 and html.count('data-gate-slice="ham"') == 1
    assert 'id="gate-family"' in html and "3 relative rules share the error rate" in html
    missing = gate_json(suite("    - {metric: accuracy, max_drop: 0.02, slice: eggs}\n", n), db)
    assert missing["gates"][0]["verdict"] == "error" and "no pairs in slice 'eggs'" in missing["gates"][0]["reason"]


@pytest.mark.parametrize("rule,key,words", [
    ("{metric: brierr, max_rise: 0.02}", "gates.rules.1.metric", "unknown metric 'brierr' (did you mean 'brier'?)"),
    ("{metric: brier, max_drop: 0.02}", "gates.rules.1.max_drop", "max_drop needs a higher-is-better metric"),
    ("{metric: accuracy, max_rise: 0.02}", "gates.rules.1.max_rise", "max_rise needs a lower-is-better metric"),
    ("{metric: n_errors, max_rise: 2}", "gates.rules.1.metric", "'n_errors' has no paired comparison"),
    ("{metric: accuracy, max_drop: 0.02, slice: spma}", "gates.rules.1.slice",
     "slice 'spma' is not in the dataset (did you mean 'spam'?)"),
])
def test_validate_checks_what_gate_checks_with_file_and_line(suite, tmp_path, rule, key, words):
    path = suite(NI + f"    - {rule}\n", 30)
    result = invoke("validate", str(path))
    assert result.exit_code == 2, result.output
    line = 1 + path.read_text().splitlines().index(f"    - {rule}")
    assert f"{path.resolve()}:{line}: {key}: {words}" in result.stderr
    ok = invoke("validate", str(suite(NI, 30)))
    assert ok.exit_code == 0, ok.output


def test_validate_rejects_a_slice_rule_when_the_dataset_has_no_slices(tmp_path):
    (tmp_path / "data.jsonl").write_text(json.dumps({"id": "a", "q": "?", "label": "yes"}) + "\n")
    text = SUITE.format(rules="    - {metric: accuracy, max_drop: 0.02, per_slice: true}\n", extra="")
    path = tmp_path / "suite.yaml"
    path.write_text(text.replace("dataset: {path: data.jsonl, slice: kind}", "dataset: {path: data.jsonl}"))
    result = invoke("validate", str(path))
    assert result.exit_code == 2 and re.search(r"suite\.yaml:\d+: gates\.rules\.0\.per_slice: the dataset has no "
                                               r"slices", result.stderr), result.output


def test_plan_says_what_is_wrong_with_its_input(suite, tmp_path):
    none = invoke("plan", str(suite("    - {metric: accuracy, max_drop: 0.02}\n", 30)), "--discordance", "0.1")
    assert none.exit_code == 2 and "no noninferiority rule" in none.stderr
    path = suite(NI, 30)
    bad = invoke("plan", str(path), "--discordance", "accuracy=zero")
    assert bad.exit_code == 2 and "expected a number or METRIC=NUMBER" in bad.stderr
    impossible = invoke("plan", str(path), "--discordance", "0.01", "--delta", "-0.05")
    assert impossible.exit_code == 2 and "needs at least that share of discordant pairs" in impossible.stderr
    beyond = json.loads(invoke("plan", str(path), "--discordance", "0.1", "--delta", "-0.03", "--json").stdout)
    assert "beyond the margin" in beyond["rules"][0]["note"] and beyond["rules"][0]["n_needed"] > 0
    holm = suite(NI + "    - {metric: error_rate, max_rise: 0.01, significance: noninferiority}\n", 30,
                 extra="  correction: holm\n")
    levels = [r["level"] for r in json.loads(invoke("plan", str(holm), "--discordance", "0.1", "--json").stdout)["rules"]]
    assert levels == [pytest.approx(0.975)] * 2  # Bonferroni: the strictest level Holm can apply
