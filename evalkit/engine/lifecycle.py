"""A run's life in the store: created together with its samples, resumed from what it was started with,
and finished — ``complete`` only with metrics for every model it ran.

- :func:`create_run`: the ``runs`` row and its ``samples`` in one transaction, so a run killed (or a disk
  that fills) at the very start leaves no run rather than one without samples;
- :func:`plan_resume`: the stored samples of the run, checked against the suite and dataset; a run
  without stored samples (written by an older evalkit that stored them separately) is planned again
  from the suite when suite and dataset are unchanged and give as many samples, else refused;
- :func:`finish`: metrics computed, then the final status; a run whose metrics cannot be computed is
  ``failed`` with the reason (``runs.error``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from evalkit.analysis.metrics import compute_run_metrics
from evalkit.config.shards import Shard, parse_shard
from evalkit.config.suite import LoadedSuite
from evalkit.engine.heldout import scan_pii
from evalkit.errors import ConfigError, EvalkitError, RunFailedError
from evalkit.scoring.prepare import Prepared, prepare
from evalkit.store.db import Store
from evalkit.store.rows import run_row, sample_rows


def create_run(store: Store, prepared: Prepared, run_id: str, argv: list[str],
               also: Callable[[], None] | None = None) -> None:
    """Store a new run and its rendered samples together: a run row is never stored without its samples
    (nor without what ``also`` writes in the same transaction: the held-out overlap checks)."""
    with store.transaction():
        store.create_run(run_row(prepared.loaded, prepared.dataset, run_id, len(prepared.rendered), argv))
        store.insert_samples(sample_rows(run_id, prepared.rendered))
        if also is not None:
            also()


def plan_resume(store: Store, loaded: LoadedSuite, run_id: str, models: list[str] | None) -> Prepared:
    """What a resumed run runs: the samples it was started with (raises when the suite no longer gives them)."""
    stored = store.sample_ids(run_id)
    if not stored:
        return _replan(store, loaded, run_id, models)
    prepared = prepare(loaded, models, sample_ids=stored)
    check_resume(store, prepared, run_id, stored)
    return prepared


def check_resume(store: Store, prepared: Prepared, run_id: str, stored: set[str] | None = None) -> None:
    run = store.get_run(run_id)
    if run["suite_hash"] != prepared.loaded.content_hash():
        raise ConfigError(f"the suite or a file it references changed since run {run_id} started; "
                          "start a new run instead of resuming", file=str(prepared.loaded.path))
    if run["dataset_hash"] != prepared.dataset.sha256:
        raise ConfigError(f"the dataset changed since run {run_id} started (sha256 differs); start a "
                          "new run", file=str(prepared.loaded.path), key="dataset.path")
    stored = store.sample_ids(run_id) if stored is None else stored
    wanted = {r.sample.id for r in prepared.rendered}
    if stored != wanted:
        raise ConfigError(f"run {run_id} was started with {len(stored)} samples but the suite now has "
                          f"{len(wanted)} of them", file=str(prepared.loaded.path))


def _started_with(argv: Any) -> tuple[int | None, Shard | None]:
    """The ``--limit`` and ``--shard`` a run was started with, from its stored command line."""
    args = [str(a) for a in (json.loads(argv) if isinstance(argv, str) else argv or [])]
    found: dict[str, str] = {}
    for i, arg in enumerate(args):
        for flag in ("--limit", "--shard"):
            if arg == flag and i + 1 < len(args):
                found[flag] = args[i + 1]
            elif arg.startswith(flag + "="):
                found[flag] = arg.split("=", 1)[1]
    limit = int(found["--limit"]) if found.get("--limit", "").isdigit() else None
    return limit, parse_shard(found["--shard"]) if "--shard" in found else None


def _replan(store: Store, loaded: LoadedSuite, run_id: str, models: list[str] | None) -> Prepared:
    """A run stopped before its samples were stored (by an evalkit that wrote them separately): its
    samples planned again from the suite, only when suite and dataset are unchanged and give as many."""
    run = store.get_run(run_id)
    where = str(loaded.path)
    if store.count_results(run_id):
        raise ConfigError(f"run {run_id} has results but no stored samples, so it cannot be resumed; start a new "
                          "run", file=where)
    limit, shard = _started_with(run["argv"])
    prepared = prepare(loaded, models, limit, shard)
    check_resume(store, prepared, run_id, stored={r.sample.id for r in prepared.rendered})
    if len(prepared.rendered) != run["n_samples"]:
        raise ConfigError(f"run {run_id} was stopped before its samples were stored, and the suite now plans "
                          f"{len(prepared.rendered)} samples where it was started with {run['n_samples']}; start a "
                          "new run", file=where)
    with store.transaction():
        store.insert_samples(sample_rows(run_id, prepared.rendered))
    return prepared


def finish(store: Store, run_id: str, status: str, prepared: Prepared) -> list[dict[str, Any]]:
    """Compute the metrics and set the final status; a run whose metrics cannot be computed (or that has no
    results for a model) is ``failed`` with the reason, never ``complete``."""
    try:
        run = prepared.loaded.suite.run
        metrics = compute_run_metrics(store, run_id, run.seed, run.bootstrap)
    except Exception as exc:
        reason = f"its metrics could not be computed: {type(exc).__name__}: {exc}"
        _mark_failed(store, run_id, reason)
        if isinstance(exc, EvalkitError):
            raise exc.prefixed(f"run {run_id} failed: its metrics could not be computed: ") from None
        raise
    empty = sorted(set(prepared.models) - {m["model"] for m in metrics})
    if empty:
        reason = f"no results were stored for {', '.join(empty)}, so there are no metrics"
        _mark_failed(store, run_id, reason)
        raise RunFailedError(f"run {run_id} failed: {reason}")
    scan_pii(store, run_id, prepared)  # training-data emails and phone numbers in the outputs
    store.set_run_status(run_id, status, finished=True)
    return metrics


def _mark_failed(store: Store, run_id: str, reason: str) -> None:
    try:
        store.set_run_status(run_id, "failed", finished=True, error=reason)
    except EvalkitError:
        pass  # the store cannot take it (e.g. a full disk): the run stays 'running', never 'complete'
