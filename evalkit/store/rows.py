"""The rows of evalkit's tables, built in one place: a run (``runs``), its rendered samples
(``samples``) and its per-sample results (``results``). The runner, the inspect-ai import and the
Parquet import all build their rows here, so a column means the same wherever a row came from.
Secrets are redacted on the way in (:mod:`evalkit.redact`): every text column — answers, errors, score
messages, request parameters, the suite, sample fields — so no key reaches the store.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from evalkit.config.dataset import Dataset
from evalkit.config.prompts import RenderedSample
from evalkit.config.provenance import git_state, host_info, package_versions
from evalkit.config.suite import LoadedSuite
from evalkit.records import Completion
from evalkit.redact import redact, redact_logprobs, redact_optional, redact_text
from evalkit.scoring.pipeline import Score
from evalkit.store.base import now, to_json
from evalkit.version import __version__


def new_run_id() -> str:
    """A sortable, unique run id: UTC start time and six random hex digits."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def run_row(loaded: LoadedSuite, dataset: Dataset, run_id: str, n_samples: int, argv: list[str], *,
            status: str = "running", repeats: int | None = None,
            git: tuple[str | None, bool | None] | None = None,
            config_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``runs`` row: the suite (text, hash, validated config), its dataset, and where it ran.

    ``git`` defaults to the state of the suite's folder; ``config_extra`` joins the stored config
    (e.g. where an imported log came from).
    """
    commit, dirty = git if git is not None else git_state(loaded.base_dir)
    config = loaded.suite.model_dump(mode="json", by_alias=True)
    return {
        "run_id": run_id, "suite_name": loaded.suite.name, "suite_version": loaded.suite.version,
        "suite_path": str(loaded.path), "suite_hash": loaded.content_hash(), "suite_text": redact_text(loaded.text),
        "dataset_path": str(dataset.path), "dataset_hash": dataset.sha256, "n_samples": n_samples,
        "repeats": loaded.suite.run.repeats if repeats is None else repeats, "status": status,
        "created_at": now(), "git_commit": commit, "git_dirty": dirty, "evalkit_version": __version__,
        "packages": package_versions(), "config": redact({**config, **(config_extra or {})}),
        "argv": redact(argv), "host": host_info(),
    }


def sample_rows(run_id: str, rendered: list[RenderedSample]) -> list[dict[str, Any]]:
    """``samples`` rows: each sample's dataset position, slice, fields, rendered messages, target and (label
    outputs) the target's class."""
    return [{"run_id": run_id, "sample_id": r.sample.id, "position": r.sample.index, "slice": r.sample.slice,
             "fields": to_json(redact(r.sample.fields)), "messages": to_json(redact(r.messages)),
             "target": to_json(redact(r.target)), "target_label": to_json(redact(r.target_label))}
            for r in rendered]


def result_row(run_id: str, model: str, sample_id: str, repeat: int, score: Score, completion: Completion | None, *,
               error: str | None, error_kind: str | None, attempts: int, cache_hit: bool, cache_key: str,
               cost_usd: float | None, request_params: dict[str, Any] | None) -> dict[str, Any]:
    """A ``results`` row: the answer, how it scored, what the call measured and cost, and what was sent.

    A row with an ``error`` is an error row; it keeps the answer's text only when there is some.
    """
    c = completion
    return {
        "run_id": run_id, "model": model, "sample_id": sample_id, "repeat": repeat,
        "status": "error" if error is not None else "ok",
        "output": redact_optional(c.text if c.text or error is None else None) if c else None,
        "parsed": to_json(redact(score.parsed)), "parse_error": redact_optional(score.parse_error),
        "schema_valid": score.schema_valid, "schema_errors": to_json(redact(score.schema_errors or None)),
        "feasible": score.feasible,
        "violations": to_json(redact(score.violations) if score.feasible is not None else None),
        "quality": score.quality, "correct": score.correct, "confidence": score.confidence,
        "score_error": redact_optional(score.score_error),
        "latency_ms": c.latency_ms if c else None, "ttft_ms": c.ttft_ms if c else None,
        "prompt_tokens": c.prompt_tokens if c else None, "completion_tokens": c.completion_tokens if c else None,
        "cost_usd": cost_usd, "finish_reason": c.finish_reason if c else None,
        "resolved_model": c.resolved_model if c else None,
        "request_params": to_json(redact(request_params)) if request_params is not None else None,
        "logprobs": to_json(redact_logprobs(c.logprobs)) if c else None,
        "error": redact_optional(error), "error_kind": error_kind, "attempts": attempts, "cache_hit": cache_hit,
        "cache_key": cache_key, "created_at": now(), "client_lag_ms": c.client_lag_ms if c else None,
        "text_scores": to_json(score.text_scores) if score.text_scores is not None else None,
    }
