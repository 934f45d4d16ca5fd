"""Feasibility and quality of a job-shop schedule — the constraints a JSON Schema cannot express.

A schedule is feasible when every operation of the instance appears exactly once on its own machine,
each job's operations run in order (op k+1 starts after op k ends), no machine runs two operations
at once, and the stated makespan is the real completion time. Quality = optimum / makespan.
"""

from __future__ import annotations

from typing import Any

_MAX_MESSAGES = 20


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def feasibility(output: dict, sample: dict) -> list[str]:
    """Violated constraints of the answer's schedule (empty list: feasible). Never raises."""
    jobs = sample["jobs"]
    problems: list[str] = []
    entries = output.get("schedule") if isinstance(output, dict) else None
    if not isinstance(entries, list):
        return ["no schedule list in the answer"]
    placed: dict[tuple[int, int], int] = {}
    by_machine: dict[int, list[tuple[int, int, int, int]]] = {}
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"entry {n} is not an object")
            continue
        j, k, m, s = (_int(entry.get(key)) for key in ("job", "op", "machine", "start"))
        if None in (j, k, m, s):
            problems.append(f"entry {n} has a missing or non-integer job/op/machine/start")
            continue
        if not (0 <= j < len(jobs)) or not (0 <= k < len(jobs[j])):
            problems.append(f"entry {n}: job {j} op {k} does not exist")
            continue
        if (j, k) in placed:
            problems.append(f"job {j} op {k} is scheduled more than once")
            continue
        if s < 0:
            problems.append(f"job {j} op {k} starts at a negative time {s}")
        expected = jobs[j][k]["machine"]
        if m != expected:
            problems.append(f"job {j} op {k} runs on machine {m}, but it needs machine {expected}")
        placed[(j, k)] = s
        by_machine.setdefault(expected, []).append((s, s + jobs[j][k]["duration"], j, k))
    for j, job in enumerate(jobs):
        for k in range(len(job)):
            if (j, k) not in placed:
                problems.append(f"job {j} op {k} is missing")
            elif k > 0 and (j, k - 1) in placed and placed[(j, k)] < placed[(j, k - 1)] + job[k - 1]["duration"]:
                problems.append(f"job {j} op {k} starts at {placed[(j, k)]} before op {k - 1} ends at "
                                f"{placed[(j, k - 1)] + job[k - 1]['duration']}")
    for m, intervals in sorted(by_machine.items()):
        intervals.sort()
        for a, b in zip(intervals, intervals[1:]):
            if b[0] < a[1]:
                problems.append(f"machine {m} runs job {a[2]} op {a[3]} and job {b[2]} op {b[3]} at once "
                                f"({a[0]}-{a[1]} and {b[0]}-{b[1]})")
    if not problems:
        real = max(end for intervals in by_machine.values() for _, end, _, _ in intervals)
        stated = _int(output.get("makespan"))
        if stated != real:
            problems.append(f"stated makespan {output.get('makespan')!r} but the schedule ends at {real}")
    if len(problems) > _MAX_MESSAGES:
        problems = problems[:_MAX_MESSAGES] + [f"... and {len(problems) - _MAX_MESSAGES} more"]
    return problems


def quality(output: dict, target: Any, sample: dict) -> float:
    """optimum (or best known lower bound) / makespan for a feasible schedule, else 0. Never raises."""
    if feasibility(output, sample):
        return 0.0
    best = sample.get("optimum") or sample.get("lower_bound")
    makespan = _int(output.get("makespan"))
    if not best or not makespan:
        return 0.0
    return min(1.0, best / makespan)
