"""What a loopback server serves, as a cache identity that survives a new port.

A server on this machine (``127.0.0.1``, ``localhost``, ``::1``) usually has an ephemeral port — the
demo picks a random one — so ``host:port`` says nothing about the answers. Instead the identity is
what the server says it serves, from ``GET {api_base}/models``:

- each listed entry for the model asked for and for its ``parent`` (a LoRA's base): ``id``, ``root``
  (vLLM: the model path or hub id it loaded; for a LoRA module, the adapter's path) and ``parent``;
- where a ``root`` is a folder on this machine, a fingerprint of its files (names, sizes, the full
  sha256 of every file up to 4 MiB and of the first and last MiB of larger ones), so new weights in
  the same folder are a new identity;
- the dev server's ``evalkit_content``: a hash of its scripted replies (or, for replies it cannot
  describe, a token unique to that server instance), so two dev servers with different replies never
  share answers.

A remote endpoint keeps its URL in the identity; the adapter's weight sha256 and the base model are
added by the backend. When the probe fails the URL is used, as before.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})
SMALL_FILE_BYTES = 4 * 1024 * 1024
SAMPLE_BYTES = 1024 * 1024
MAX_FILES = 2000
PROBE_TIMEOUT_S = 10.0
_fingerprints: dict[str, str | None] = {}


def is_loopback(api_base: str | None) -> bool:
    """Whether the endpoint is a server on this machine (its port then says nothing about its answers)."""
    if not api_base:
        return False
    host = urlparse(api_base).hostname or ""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def folder_fingerprint(path: Path) -> str | None:
    """A content fingerprint of a model or adapter folder (None: not a readable folder)."""
    key = str(path.resolve())
    if key in _fingerprints:
        return _fingerprints[key]
    digest: str | None = None
    try:
        if path.is_dir():
            h = hashlib.sha256()
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))[:MAX_FILES]
            for f in files:
                size = f.stat().st_size
                h.update(f"{f.relative_to(path).as_posix()}\0{size}\0".encode())
                with f.open("rb") as fh:
                    if size <= SMALL_FILE_BYTES:
                        h.update(fh.read())
                    else:
                        h.update(fh.read(SAMPLE_BYTES))
                        fh.seek(size - SAMPLE_BYTES)
                        h.update(fh.read(SAMPLE_BYTES))
            digest = h.hexdigest()
    except OSError:
        digest = None
    _fingerprints[key] = digest
    return digest


def _entry(entry: dict[str, Any]) -> dict[str, Any]:
    root = entry.get("root")
    out = {"id": entry.get("id"), "root": root, "parent": entry.get("parent")}
    if isinstance(root, str) and root and "://" not in root:
        fingerprint = folder_fingerprint(Path(root))
        if fingerprint is not None:
            out["root_fingerprint"] = fingerprint
    return out


def served_identity(api_base: str, model: str, api_key: str | None = None,
                    timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, Any] | None:
    """What the server at ``api_base`` serves for ``model`` (see the module docstring); None if it cannot say."""
    request = urllib.request.Request(api_base.rstrip("/") + "/models",
                                     headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            data = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    entries = [e for e in data.get("data") or [] if isinstance(e, dict)]
    by_id = {e.get("id"): e for e in entries}
    mine = by_id.get(model)
    chosen = entries
    if mine is not None:
        chosen = [mine] + ([by_id[mine["parent"]]] if mine.get("parent") in by_id else [])
    content = data.get("evalkit_content")
    if not chosen and content is None:
        return None  # nothing that tells this server's answers apart from another's
    identity: dict[str, Any] = {"served": sorted((_entry(e) for e in chosen), key=lambda e: str(e["id"]))}
    if content is not None:
        identity["evalkit_content"] = content
    return identity
