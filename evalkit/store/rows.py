"""The rows of evalkit's tables, built in one place: a run (``runs``), its rendered samples
(``samples``) and its per-sample results (``results``). The runner, the inspect-ai import and the
Parquet import all build their rows here, so a column means the same wherever a row came from.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from evalkit import __version__
from evalkit.config.provenance import git_state, host_info, package_versions, redact
from evalkit.scoring.prepare import Prepared
from evalkit.store.db import Store, now


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def _run_row(prepared: Prepared, run_id: str, argv: list[str]) -> dict[str, Any]:
    loaded = prepared.loaded
    commit, dirty = git_state(loaded.base_dir)
    return {
        "run_id": run_id, "suite_name": loaded.suite.name, "suite_version": loaded.suite.version,
        "suite_path": str(loaded.path), "suite_hash": loaded.content_hash(), "suite_text": loaded.text,
        "dataset_path": str(prepared.dataset.path), "dataset_hash": prepared.dataset.sha256,
        "n_samples": len(prepared.rendered), "repeats": loaded.suite.run.repeats, "status": "running",
        "created_at": now(), "git_commit": commit, "git_dirty": dirty, "evalkit_version": __version__,
        "packages": package_versions(), "config": redact(loaded.suite.model_dump(mode="json", by_alias=True)),
        "argv": redact(argv), "host": host_info(),
    }


def stored_sample_ids(store: Store, run_id: str) -> set[str]:
    return {r[0] for r in store.sql("SELECT sample_id FROM samples WHERE run_id = ?", [run_id])}
