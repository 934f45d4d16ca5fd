"""``run_suite_on_ray``: :func:`evalkit.engine.runner.run_suite`'s life of a run (new or resumed, finished
with metrics, interrupted cleanly) with the calls in Ray shards (:mod:`evalkit.engine.ray_run`)."""

from __future__ import annotations

import sys

from evalkit.analysis.score_errors import summarise as summarise_score_errors
from evalkit.backends.ray_cluster import Cluster, connect
from evalkit.config.ray_spec import RaySpec
from evalkit.config.suite import LoadedSuite
from evalkit.engine.lifecycle import finish, plan_resume
from evalkit.engine.progress import NullProgress, Progress
from evalkit.engine.ray_run import ShardedRun
from evalkit.engine.runner import RunSummary, retention_applies
from evalkit.errors import ConfigError, InterruptedRunError, RunFailedError
from evalkit.scoring.prepare import prepare
from evalkit.store.db import Store
from evalkit.store.rows import new_run_id, run_row, sample_rows


def check_ray_run(loaded: LoadedSuite, models: list[str]) -> None:
    """What a --ray run does not do (yet), refused before anything starts."""
    where = str(loaded.path)
    run = loaded.suite.run
    if run.load is not None:
        raise ConfigError("run.load (open-loop arrivals) is not supported with --ray; run it without --ray",
                          file=where, key="run.load")
    if run.sequential_models:
        raise ConfigError("run.sequential_models is not supported with --ray (each shard runs its models side "
                          "by side); run it without --ray", file=where, key="run.sequential_models")
    if retention_applies(loaded, models):
        raise ConfigError("the retention check (lm-eval) does not run under --ray; run it without --ray, or "
                          "leave its models out with --model", file=where, key="retention")


def run_suite_on_ray(loaded: LoadedSuite, db_path: str, models: list[str] | None = None, limit: int | None = None,
                     use_cache: bool = True, resume: str | None = None, progress: Progress | None = None,
                     argv: list[str] | None = None, address: str | None = "auto",
                     temp_dir: str | None = None) -> RunSummary:
    """Run (or resume) a suite with its calls in Ray shards; the same store, metrics and summary as a run."""
    progress = progress or NullProgress()
    store = Store(db_path)
    cluster: Cluster | None = None
    try:
        if resume:
            run_id = store.resolve_run_id(resume)
            stored_models = [m["model"] for m in store.run_models(run_id)]
            prepared = plan_resume(store, loaded, run_id, models or stored_models or None)
        else:
            prepared = prepare(loaded, models, limit)
            run_id = new_run_id()
        check_ray_run(loaded, prepared.models)
        cluster = connect(address, temp_dir)
        info = cluster.info()
        if resume:
            store.set_run_status(run_id, "running")
        else:
            with store.transaction():  # the run and its samples together, as lifecycle.create_run
                store.create_run(run_row(loaded, prepared.dataset, run_id, len(prepared.rendered), argv or sys.argv,
                                         config_extra={"ray_cluster": info}))
                store.insert_samples(sample_rows(run_id, prepared.rendered))
        sharded = ShardedRun(prepared, store, run_id, use_cache, progress)
        try:
            outcomes = sharded.execute_on_ray(cluster, loaded.suite.run.ray or RaySpec())
        except KeyboardInterrupt:
            sharded.writer.flush()
            store.mark_models_interrupted(run_id, prepared.models)
            store.set_run_status(run_id, "interrupted", error="stopped by the user (Ctrl-C)")
            raise InterruptedRunError(f"interrupted; {sharded.writer.written} results stored. Resume with: "
                                      f"evalkit run {loaded.path} --db {db_path} --ray --resume {run_id}") from None
        finally:
            progress.close()
        for outcome in outcomes:
            sharded._record_model(outcome.model, sharded.remote[outcome.model], outcome.status, outcome)
            if outcome.status == "complete":
                sharded._fill_measured_cost(outcome.model)
        status = "complete" if all(o.status == "complete" for o in outcomes) else "incomplete"
        try:
            metrics = finish(store, run_id, status, prepared)
        except RunFailedError as exc:  # say why the shards stored nothing
            why = "; ".join(f"{o.model}: {o.error}" for o in outcomes if o.error)
            raise exc.prefixed("") if not why else RunFailedError(f"{exc} ({why})") from None
        return RunSummary(run_id, str(db_path), status, outcomes, metrics, summarise_score_errors(store, run_id))
    finally:
        store.close()
        if cluster is not None:
            cluster.close()
