"""APGR and CPT (RouteLLM's definitions) on a case computed by hand, the oracle curve, and the CLI's defaults."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from evalkit.analysis.routing import analyse
from evalkit.analysis.routing_curve import apgr, cpt, oracle_curve
from evalkit.cli import main
from evalkit.store import Store
from evalkit.store.db import now

# Four samples. small is right on s0 and s3, large on s0, s1 and s2. The small model's confidence orders the
# escalations s1 (0.2), s2 (0.4), s3 (0.6), s0 (0.9), so the curve of accuracy against the share of calls to the
# large model is (0, .50) (.25, .75) (.50, 1.0) (.75, .75) (1, .75): weak .50, strong .75, gap .25.
# AUC (trapezoids of width .25): .15625 + .21875 + .21875 + .1875 = .78125; AUC_weak = .5, AUC_strong = .75:
# APGR = (.78125 - .5) / (.75 - .5) = 1.125. CPT(x) on the first segment: .25 * x * .25 / .25 = x / 4:
# CPT(50%) = .125, CPT(80%) = .2, CPT(95%) = .2375.
# Oracle: gain (small wrong, large right) = .5, loss (small right, large wrong) = .25:
# accuracy(s) = .5 + min(s, .5) - max(0, s - .75); AUC = .375 + .25 + .21875 = .84375 → APGR 1.375.
SMALL = [True, False, False, True]
LARGE = [True, True, True, False]
CONF = [0.9, 0.2, 0.4, 0.6]
GATES = {"gates": {"baseline": "frontier", "candidate": "tuned", "rules": []}}


def build(db: Path, config: dict | None = None) -> None:
    with Store(db) as store:
        store.create_run({"run_id": "r4", "suite_name": "s", "suite_hash": "h", "status": "complete",
                          "created_at": now(), "config": json.dumps(config) if config is not None else None})
        store.insert_samples([{"run_id": "r4", "sample_id": f"s{i}", "position": i} for i in range(4)])
        rows = []
        for model, correct, cost in (("tuned", SMALL, 0.0001), ("frontier", LARGE, 0.005)):
            store.upsert_run_model({"run_id": "r4", "model": model, "provider": "vllm", "status": "complete"})
            for i in range(4):
                rows.append({"run_id": "r4", "model": model, "sample_id": f"s{i}", "repeat": 0, "status": "ok",
                             "quality": float(correct[i]), "correct": correct[i],
                             "confidence": CONF[i] if model == "tuned" else 0.9, "latency_ms": 10.0,
                             "cost_usd": cost, "attempts": 1, "cache_hit": False, "cache_key": f"{model}{i}",
                             "created_at": now()})
        store.insert_results(rows)


def test_apgr_and_cpt_equal_the_hand_computed_case():
    share = np.array([0, .25, .5, .75, 1])
    acc = np.array([.5, .75, 1.0, .75, .75])
    assert apgr(share, acc, .5, .75) == pytest.approx(1.125)
    assert [cpt(share, acc, .5, .75, x) for x in (.5, .8, .95)] == pytest.approx([.125, .2, .2375])
    assert apgr(share, .5 + share * .25, .5, .75) == pytest.approx(0.5)  # the random router's line
    assert cpt(share, .5 + share * .25, .5, .75, .8) == pytest.approx(0.8)
    assert apgr(share, acc, .75, .75) is None and cpt(share, acc, .8, .75, .5) is None  # no gap to recover
    orc = oracle_curve(np.array(SMALL, float), np.array(LARGE, float))
    assert apgr(np.array(orc["share"]), np.array(orc["accuracy"]), .5, .75) == pytest.approx(1.375)
    assert orc["accuracy"][0] == pytest.approx(.5) and orc["accuracy"][-1] == pytest.approx(.75)


def test_route_stores_apgr_and_cpt_of_the_sweep(tmp_path):
    db = tmp_path / "r.duckdb"
    build(db)
    with Store(db) as store:
        result = analyse(store, "r4", "tuned", "frontier", resamples=50)
    gap = result["gap_recovery"]
    assert gap["weak_accuracy"] == pytest.approx(.5) and gap["strong_accuracy"] == pytest.approx(.75)
    assert gap["apgr"] == pytest.approx(1.125)
    assert gap["cpt"] == {"50%": pytest.approx(.125), "80%": pytest.approx(.2), "95%": pytest.approx(.2375)}
    assert gap["apgr_random"] == 0.5 and gap["apgr_oracle"] == pytest.approx(1.375)
    assert result["halves"]["A"] + result["halves"]["B"] == 4


def test_route_and_compare_default_their_sides_from_the_suite_gates(tmp_path):
    db = tmp_path / "r.duckdb"
    build(db, GATES)
    routed = CliRunner().invoke(main, ["route", "r4", "--db", str(db), "--json"])
    assert routed.exit_code == 0, routed.output
    doc = json.loads(routed.stdout)
    assert (doc["small"], doc["large"]) == ("tuned", "frontier")  # candidate answers, baseline takes escalations
    text = " ".join(CliRunner().invoke(main, ["route", "r4", "--db", str(db)]).stdout.split())
    assert "APGR 1.125" in text and "CPT(50%) 12.5%" in text
    assert "-inf" not in text and "never escalate" in text and "half A holds" in text
    swapped = json.loads(CliRunner().invoke(main, ["route", "r4", "--db", str(db), "--json", "--small", "frontier",
                                                   "--large", "tuned"]).stdout)
    assert (swapped["small"], swapped["large"]) == ("frontier", "tuned")  # a flag still wins
    table = CliRunner().invoke(main, ["compare", "r4", "--db", str(db)])
    assert table.exit_code == 0 and "10 ms" in table.stdout and "e+" not in table.stdout, table.output
    compared = CliRunner().invoke(main, ["compare", "r4", "--db", str(db), "--json"])
    assert compared.exit_code == 0, compared.output
    assert (json.loads(compared.stdout)["baseline"], json.loads(compared.stdout)["candidate"]) == ("r4:frontier",
                                                                                           "r4:tuned")


def test_a_suite_without_a_pair_gets_a_clear_error(tmp_path):
    db = tmp_path / "r.duckdb"
    build(db, {"gates": {"rules": []}})
    for args in (["route", "r4"], ["compare", "r4"]):
        result = CliRunner().invoke(main, [*args, "--db", str(db)])
        assert result.exit_code == 2 and "gates.baseline" in result.stderr, result.output


def test_help_lists_every_command_without_cutting_its_description():
    result = CliRunner().invoke(main, ["--help"], terminal_width=80)
    commands = result.output.split("Commands:", 1)[1]
    assert result.exit_code == 0 and "..." not in commands
    assert "latency of every policy" in result.output  # route's first sentence, whole
