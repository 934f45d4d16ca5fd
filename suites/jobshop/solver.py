"""Exact optimum of tiny job-shop instances by enumerating machine orders (≤ 4 jobs × 4 machines).

Every semi-active schedule is fixed by the order of operations on each machine; an optimal schedule
is among them. Enumerating (jobs!)^machines orders and decoding each is exact and fast at this size.
"""

from __future__ import annotations

import itertools
from typing import Any


def decode(jobs: list[list[dict[str, int]]], orders: tuple[tuple[int, ...], ...]) -> int | None:
    """Makespan of the semi-active schedule with these machine orders, or None if they deadlock."""
    n_jobs = len(jobs)
    next_op = [0] * n_jobs
    job_ready = [0] * n_jobs
    machine_ready = [0] * len(orders)
    machine_pos = [0] * len(orders)
    remaining = sum(len(j) for j in jobs)
    while remaining:
        progressed = False
        for m, order in enumerate(orders):
            while machine_pos[m] < len(order):
                j = order[machine_pos[m]]
                k = next_op[j]
                if k >= len(jobs[j]) or jobs[j][k]["machine"] != m:
                    break
                start = max(job_ready[j], machine_ready[m])
                end = start + jobs[j][k]["duration"]
                job_ready[j] = machine_ready[m] = end
                next_op[j] += 1
                machine_pos[m] += 1
                remaining -= 1
                progressed = True
        if not progressed:
            return None
    return max(job_ready)


def optimum(jobs: list[list[dict[str, int]]]) -> int:
    """The smallest makespan over all machine orders."""
    n_machines = 1 + max(op["machine"] for job in jobs for op in job)
    per_machine = [[j for j, job in enumerate(jobs) if any(op["machine"] == m for op in job)]
                   for m in range(n_machines)]
    best: int | None = None
    for orders in itertools.product(*(itertools.permutations(ms) for ms in per_machine)):
        value = decode(jobs, orders)
        if value is not None and (best is None or value < best):
            best = value
    assert best is not None
    return best


def brute_force(jobs: list[list[dict[str, int]]], horizon: int) -> int:
    """Independent check for very small instances: try every start-time vector up to a horizon."""
    ops = [(j, k, op) for j, job in enumerate(jobs) for k, op in enumerate(job)]
    best = horizon + 1
    for starts in itertools.product(range(horizon + 1), repeat=len(ops)):
        when: dict[tuple[int, int], int] = {(j, k): s for (j, k, _), s in zip(ops, starts)}
        ok = all(when[(j, k)] >= when[(j, k - 1)] + jobs[j][k - 1]["duration"] for j, k, _ in ops if k > 0)
        if not ok:
            continue
        intervals: dict[int, list[tuple[int, int]]] = {}
        for (j, k, op), s in zip(ops, starts):
            intervals.setdefault(op["machine"], []).append((s, s + op["duration"]))
        if any(a[1] > b[0] for iv in intervals.values() for a, b in zip(sorted(iv), sorted(iv)[1:])):
            continue
        best = min(best, max(s + op["duration"] for (_, _, op), s in zip(ops, starts)))
    return best


def describe(jobs: list[list[dict[str, Any]]]) -> str:
    """Compact text of an instance for prompts: one line per job, M<machine>(<duration>) in order."""
    return "\n".join(f"J{j}: " + " ".join(f"M{op['machine']}({op['duration']})" for op in job)
                     for j, job in enumerate(jobs))
