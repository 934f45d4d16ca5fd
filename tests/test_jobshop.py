"""The job-shop example: exact optima, and feasibility checks that catch schema-valid nonsense."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "suites" / "jobshop"))
from checks import feasibility, quality  # noqa: E402
from solver import brute_force, decode, optimum  # noqa: E402

SCHEMA = json.loads((ROOT / "datasets" / "jobshop" / "schedule.schema.json").read_text())
# J0: M0(3) M1(2); J1: M1(2) M0(1). Optimal: J0 op0 0-3 on M0, J1 op0 0-2 on M1, J0 op1 3-5, J1 op1 3-4.
JOBS = [[{"machine": 0, "duration": 3}, {"machine": 1, "duration": 2}],
        [{"machine": 1, "duration": 2}, {"machine": 0, "duration": 1}]]
SAMPLE = {"jobs": JOBS, "optimum": 5}
OPTIMAL = {"schedule": [{"job": 0, "op": 0, "machine": 0, "start": 0}, {"job": 1, "op": 0, "machine": 1, "start": 0},
                        {"job": 0, "op": 1, "machine": 1, "start": 3}, {"job": 1, "op": 1, "machine": 0, "start": 3}],
           "makespan": 5}


def variant(**changes):
    out = json.loads(json.dumps(OPTIMAL))
    for index, entry in changes.get("entries", {}).items():
        out["schedule"][index].update(entry)
    if "drop" in changes:
        del out["schedule"][changes["drop"]]
    if "dup" in changes:
        out["schedule"].append(dict(out["schedule"][changes["dup"]]))
    if "makespan" in changes:
        out["makespan"] = changes["makespan"]
    return out


def test_optimal_schedule_is_feasible_with_quality_one():
    jsonschema.validate(OPTIMAL, SCHEMA)
    assert feasibility(OPTIMAL, SAMPLE) == []
    assert quality(OPTIMAL, None, SAMPLE) == 1.0
    slower = variant(entries={2: {"start": 4}, 3: {"start": 4}}, makespan=6)
    assert feasibility(slower, SAMPLE) == [] and quality(slower, None, SAMPLE) == pytest.approx(5 / 6)


@pytest.mark.parametrize("changes, words", [
    ({"entries": {2: {"start": 1}}}, "job 0 op 1 starts at 1 before op 0 ends at 3"),
    ({"entries": {3: {"start": 2}}}, "machine 0 runs job 0 op 0 and job 1 op 1 at once"),
    ({"drop": 3}, "job 1 op 1 is missing"),
    ({"dup": 0}, "job 0 op 0 is scheduled more than once"),
    ({"entries": {0: {"machine": 1}}}, "job 0 op 0 runs on machine 1, but it needs machine 0"),
    ({"makespan": 4}, "stated makespan 4 but the schedule ends at 5"),
    ({"entries": {0: {"job": 7}}}, "job 7 op 0 does not exist"),
])
def test_schema_valid_but_infeasible_schedules_are_caught(changes, words):
    answer = variant(**changes)
    jsonschema.validate(answer, SCHEMA)  # looks right...
    problems = feasibility(answer, SAMPLE)
    assert any(words in p for p in problems), problems  # ...isn't
    assert quality(answer, None, SAMPLE) == 0.0


@pytest.mark.parametrize("answer", [{}, {"schedule": "x"}, {"schedule": [1, None, {"job": "0"}]},
                                    {"schedule": [{"job": True, "op": 0, "machine": 0, "start": -1}], "makespan": "5"}])
def test_garbage_never_raises(answer):
    assert feasibility(answer, SAMPLE)
    assert quality(answer, None, SAMPLE) == 0.0


def test_exact_solver_agrees_with_brute_force():
    rng = random.Random(3)
    for _ in range(4):
        jobs = []
        for _ in range(2):
            order = [0, 1]
            rng.shuffle(order)
            jobs.append([{"machine": m, "duration": rng.randint(1, 3)} for m in order])
        assert optimum(jobs) == brute_force(jobs, horizon=12)
    assert decode(JOBS, ((0, 1), (1, 0))) == 5


def test_shipped_instances_hold_their_optimum():
    rows = [json.loads(line) for line in (ROOT / "datasets" / "jobshop" / "tiny.jsonl").read_text().splitlines()]
    assert len(rows) == 60
    for row in rows[:5]:
        assert optimum(row["jobs"]) == row["optimum"]
    classic = [json.loads(line) for line in (ROOT / "datasets" / "jobshop" / "classic.jsonl").read_text().splitlines()]
    ft06 = next(r for r in classic if r["id"] == "ft06")
    assert ft06["optimum"] == 55 and ft06["num_jobs"] == 6
