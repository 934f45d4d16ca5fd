"""Run a suite: every model over the same rendered samples, scored and stored as they finish.

Everything that can be wrong with the suite, the data or the templates fails in :func:`prepare`,
before any model is called. Models run concurrently, each with its own bounded pool of workers on
an event loop and thread of its own (:mod:`evalkit.engine.loops`), so one model's client work never
lands in another's latency; each model is first warmed up (``run.warmup`` requests, not results) and
timed after. Finished rows come back through a queue to this thread, which writes them to the store
in batches (by count or every second, :mod:`evalkit.engine.writer`), so a crash loses at most the
rows of the last second; ``--resume`` then redoes only what is missing, and the cache (same model
identity, same messages, same parameters) answers from stored responses without calling the model.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import queue
import random
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from evalkit.analysis.score_errors import ScoreErrorGroup
from evalkit.analysis.score_errors import summarise as summarise_score_errors
from evalkit.backends import Backend, create_backends, live_endpoints, release_servers
from evalkit.config.prompts import RenderedSample
from evalkit.config.provenance import redact
from evalkit.config.shards import Shard
from evalkit.config.suite import BASE_SUFFIX, LoadedSuite
from evalkit.engine.arrivals import OpenLoop, PacingStats
from evalkit.engine.judging import judge_answers
from evalkit.engine.lifecycle import create_run, finish, plan_resume
from evalkit.engine.load import chat_request, record_run_phase
from evalkit.engine.loops import LagMonitor, LockedProgress, run_on_threads
from evalkit.engine.pricing import call_cost, describe, measured_gpu_cost_per_row
from evalkit.engine.progress import NullProgress, Progress
from evalkit.engine.writer import ResultWriter
from evalkit.errors import BackendError, EvalkitError, InterruptedRunError, ModelAbortedError
from evalkit.interop.lm_eval import plan_retention, run_retention
from evalkit.records import ChatRequest, Completion
from evalkit.scoring.pipeline import Score
from evalkit.scoring.prepare import Prepared, prepare
from evalkit.store.db import Store, now
from evalkit.store.rows import new_run_id, result_row

BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0
RETRY_AFTER_MAX_S = 120.0


def cache_key(identity: dict[str, Any], request: ChatRequest, repeat: int) -> str:
    """Same model identity, messages, parameters and repeat index → same stored answer."""
    blob = json.dumps({"model": identity, "messages": request.messages, "params": request.params,
                       "logprobs": request.logprobs, "top_logprobs": request.top_logprobs,
                       "stream": request.stream, "repeat": repeat}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class ModelOutcome:
    model: str
    status: str = "complete"
    error: str | None = None
    calls: int = 0
    rows: int = 0
    wall_s: float = 0.0
    pacing: PacingStats | None = None  # run.load: the open-loop phase (request i is todo[i])
    paced: list[tuple[str, int]] = field(default_factory=list)
    warmup_latencies_ms: list[float | None] = field(default_factory=list)


@dataclass
class ModelPlan:
    """What one model's loop is given: its requests, their cache keys and the answers already stored."""

    todo: list[tuple[RenderedSample, int, ChatRequest]]
    keys: list[str]
    cached: dict[str, dict[str, Any]]


@dataclass
class RunSummary:
    run_id: str
    db_path: str
    status: str
    outcomes: list[ModelOutcome] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    score_errors: list[ScoreErrorGroup] = field(default_factory=list)  # said at the end of the run


class SuiteRun:
    """One invocation of a run (new or resumed) over prepared samples."""

    def __init__(self, prepared: Prepared, store: Store, run_id: str, use_cache: bool,
                 progress: Progress) -> None:
        self.p = prepared
        self.suite = prepared.loaded.suite
        self.store = store
        self.run_id = run_id
        self.use_cache = use_cache and self.suite.run.cache
        self.progress = LockedProgress(progress)
        self.writer = ResultWriter(store)
        # Rows finished on the models' threads, written by this one (DuckDB: one connection, one thread).
        self.rows: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.closed: set[str] = set()  # models whose client was closed on its own loop

    def request_for(self, rendered: RenderedSample, model: str) -> ChatRequest:
        return chat_request(self.p.loaded, model, rendered)  # the same request `evalkit load` sends

    async def call_with_retries(self, backend: Backend, request: ChatRequest) -> tuple[Completion, int]:
        """The answer and the number of attempts it took; BackendError after the last attempt."""
        attempts = self.suite.run.retries + 1
        monitor = LagMonitor.of_running_loop()
        for attempt in range(1, attempts + 1):
            try:
                mark = monitor.mark() if monitor else 0.0
                completion = await backend.complete(request)
                if monitor is not None:
                    completion.client_lag_ms = monitor.lag_ms_since(mark)
                return completion, attempt
            except BackendError as exc:
                exc.attempts = attempt
                if not exc.retryable or attempt == attempts:
                    raise
                if exc.retry_after is not None:
                    delay = min(exc.retry_after, RETRY_AFTER_MAX_S)
                else:
                    delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1)) * (0.5 + random.random())
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _row(self, model: str, rendered: RenderedSample, repeat: int, key: str, score: Score,
             completion: Completion | None, error: BackendError | None, attempts: int,
             cache_hit: bool, cost: float | None, request: ChatRequest) -> dict[str, Any]:
        sent = completion.sent_params if completion else {
            **request.params, **({"logprobs": True, "top_logprobs": request.top_logprobs}
                                 if request.logprobs else {}), **({"stream": True} if request.stream else {})}
        return result_row(self.run_id, model, rendered.sample.id, repeat, score, completion,
                          error=str(error) if error else None, error_kind=error.kind if error else None,
                          attempts=attempts, cache_hit=cache_hit, cache_key=key, cost_usd=cost, request_params=sent)

    def plan(self, model: str, backend: Backend, todo: list[tuple[RenderedSample, int]]) -> ModelPlan:
        """A model's requests, keyed by its identity (asked of the backend after :meth:`Backend.prepare`)."""
        identity = backend.identity()
        requests = [(r, rep, self.request_for(r, model)) for r, rep in todo]
        keys = [cache_key(identity, req, rep) for r, rep, req in requests]
        return ModelPlan(requests, keys, self.store.cached_responses(keys) if self.use_cache else {})

    async def warm_up(self, model: str, backend: Backend, outcome: ModelOutcome) -> None:
        """``run.warmup`` requests on the first samples, one at a time, before timing starts: not results,
        never from or into the cache; the first one's latency is the model's cold start. A failure ends
        the warm-up (the timed requests report it)."""
        for rendered in self.p.rendered[:self.suite.run.warmup]:
            try:
                completion = await backend.complete(self.request_for(rendered, model))
            except BackendError:
                outcome.warmup_latencies_ms.append(None)
                return
            outcome.warmup_latencies_ms.append(completion.latency_ms)

    async def run_model(self, model: str, backend: Backend, plan: ModelPlan) -> ModelOutcome:
        """One model's request loop, on its own event loop: warm-up, then its bounded pool of workers."""
        spec = self.suite.models[model]
        outcome = ModelOutcome(model)
        requests, keys, cached = plan.todo, plan.keys, plan.cached
        if any(k not in cached for k in keys):
            await self.warm_up(model, backend, outcome)
        self.progress.start(model, len(requests))
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(requests)):
            queue.put_nowait(i)
        state = {"successes": 0, "consecutive_failures": 0}
        concurrency = backend.resolved.concurrency  # the rule the connection pool was sized by, too
        abort_after = max(10, concurrency)
        started = time.perf_counter()

        async def work_one(i: int) -> None:
            rendered, repeat, request = requests[i]
            key = keys[i]
            hit = cached.get(key)
            error: BackendError | None = None
            completion: Completion | None = None
            attempts = 0
            if hit is not None:
                completion = Completion(text=hit["output"] or "", finish_reason=hit["finish_reason"],
                                        prompt_tokens=hit["prompt_tokens"],
                                        completion_tokens=hit["completion_tokens"],
                                        latency_ms=hit["latency_ms"] or 0.0, ttft_ms=hit["ttft_ms"],
                                        resolved_model=hit["resolved_model"], client_lag_ms=hit["client_lag_ms"],
                                        logprobs=json.loads(hit["logprobs"]) if hit["logprobs"] else None,
                                        sent_params=json.loads(hit["request_params"]) if hit["request_params"] else {})
                cost = hit["cost_usd"]
            else:
                try:
                    completion, attempts = await self.call_with_retries(backend, request)
                    state["successes"] += 1
                    state["consecutive_failures"] = 0
                except BackendError as exc:
                    error, attempts = exc, exc.attempts
                    state["consecutive_failures"] += 1
                outcome.calls += attempts
                cost = call_cost(spec, completion) if completion else None
            score = self.p.scorer.score(rendered, completion) if completion else self.p.scorer.error_score()
            self.rows.put(self._row(model, rendered, repeat, key, score, completion, error, attempts,
                                    hit is not None, cost, request))
            outcome.rows += 1
            self.progress.advance(model, score.correct, error is not None,
                                  completion.latency_ms if completion else None, hit is not None)
            if error is not None and state["successes"] == 0:
                # A model that cannot be reached or refuses our credentials fails every call the same way:
                # stop at once rather than burn the dataset on retries.
                fatal = error.kind == "connect" or error.status in (401, 403, 404)
                if fatal or state["consecutive_failures"] >= abort_after:
                    raise ModelAbortedError(f"model '{model}' stopped after {state['consecutive_failures']} "
                                            f"failed call(s) and no success: {error}")

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await work_one(i)

        async def paced() -> None:  # run.load: open-loop arrivals in place of the pool of workers
            assert self.suite.run.load is not None
            outcome.paced = [(r.sample.id, rep) for r, rep, _ in requests]
            outcome.pacing = await OpenLoop.from_spec(self.suite.run.load).run(len(requests), work_one)

        workers = ([asyncio.create_task(paced())] if self.suite.run.load is not None else
                   [asyncio.create_task(worker()) for _ in range(min(concurrency, max(1, len(requests))))])
        try:
            await asyncio.gather(*workers)
        except ModelAbortedError as exc:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            outcome.status, outcome.error = "aborted", str(exc)
        finally:
            outcome.wall_s = time.perf_counter() - started
        return outcome

    def _record_model(self, model: str, backend: Backend, status: str, outcome: ModelOutcome | None) -> None:
        spec = self.suite.models[model]
        previous = {m["model"]: m for m in self.store.run_models(self.run_id)}.get(model, {})
        warmups = json.loads(previous.get("warmup_latencies_ms") or "[]") + (
            outcome.warmup_latencies_ms if outcome else [])
        row = {
            "run_id": self.run_id, "model": model, "provider": spec.provider,
            "model_ref": backend.served_model,
            "identity": redact(backend.identity()),
            "config": redact({**spec.model_dump(mode="json"), "cost_model": describe(spec),
                              **({"engine": info} if (info := backend.engine_info()) else {})}),
            "adapter": backend.resolved.adapter, "status": status,
            "started_at": previous.get("started_at") or now(),
            "finished_at": now() if status != "running" else None,
            "wall_s": (previous.get("wall_s") or 0.0) + (outcome.wall_s if outcome else 0.0),
            "n_calls": (previous.get("n_calls") or 0) + (outcome.calls if outcome else 0),
            "error": outcome.error if outcome else None,
            "warmup_calls": len(warmups), "warmup_latencies_ms": warmups,
            "cold_start_ms": previous.get("cold_start_ms") if previous.get("cold_start_ms") is not None
            else (warmups[0] if warmups else None),
        }
        self.store.upsert_run_model(row)

    def _fill_measured_cost(self, model: str) -> None:
        spec = self.suite.models[model]
        info = {m["model"]: m for m in self.store.run_models(self.run_id)}[model]
        rows = self.store.count_results(self.run_id, model, called_only=True)
        per_row = measured_gpu_cost_per_row(spec, float(info["wall_s"] or 0.0), rows)
        if per_row is not None:
            self.store.fill_missing_cost(self.run_id, model, per_row)

    async def run_loop_group(self, models: list[str], backends: dict[str, Backend],
                             plans: dict[str, ModelPlan]) -> list[ModelOutcome]:
        """The models that share one event loop (usually one model), side by side or one after another;
        their clients are closed on this loop."""
        monitor = LagMonitor.start()
        try:
            if self.suite.run.sequential_models:
                return [await self.run_model(m, backends[m], plans[m]) for m in models]
            return list(await asyncio.gather(*(self.run_model(m, backends[m], plans[m]) for m in models)))
        finally:
            monitor.stop()
            for m in models:
                self.closed.add(m)
                await backends[m].aclose()

    def _run_threads(self, groups: list[list[str]], backends: dict[str, Backend],
                     plans: dict[str, ModelPlan]) -> list[ModelOutcome]:
        """Each loop group on its own thread (one group after another with ``sequential_models``), while
        this thread writes the rows they finish."""
        jobs: list[tuple[str, Callable[[], Coroutine[Any, Any, Any]]]] = [
            ("+".join(g), functools.partial(self.run_loop_group, g, backends, plans)) for g in groups]
        batches = [[job] for job in jobs] if self.suite.run.sequential_models else [jobs]
        try:
            results = run_on_threads(batches, lambda wait_s: self.writer.drain(self.rows, wait_s))
        finally:
            self.writer.drain(self.rows, 0)
            self.writer.flush()
        order = {m: i for i, m in enumerate(self.p.models)}
        return sorted((o for group in results for o in group), key=lambda o: order[o.model])

    def execute(self, backends: dict[str, Backend]) -> list[ModelOutcome]:
        todo_by_model: dict[str, list[tuple[RenderedSample, int]]] = {}
        plans: dict[str, ModelPlan] = {}
        groups: dict[str, list[str]] = {}
        try:
            for model in self.p.models:
                # Rows that failed are tried again on resume; a successful row is never re-requested.
                self.store.delete_failed_results(self.run_id, model)
                done = self.store.done_keys(self.run_id, model)
                todo_by_model[model] = [(r, rep) for r in self.p.rendered for rep in range(self.suite.run.repeats)
                                        if (r.sample.id, rep) not in done]
                backends[model].prepare()  # client set-up and the server's identity, before anything is timed
                plans[model] = self.plan(model, backends[model], todo_by_model[model])
                groups.setdefault(backends[model].loop_group or f"model:{model}", []).append(model)
                self._record_model(model, backends[model], "running", None)
            outcomes = self._run_threads(list(groups.values()), backends, plans)
        finally:
            rest = [b for m, b in backends.items() if m not in self.closed]
            if rest:
                asyncio.run(_close_all(rest))
        for outcome in outcomes:
            self._record_model(outcome.model, backends[outcome.model], outcome.status, outcome)
            if outcome.status == "complete":
                self._fill_measured_cost(outcome.model)
            if outcome.pacing is not None:
                record_run_phase(self.store, self.run_id, self.p.loaded, outcome.model, backends[outcome.model],
                                 outcome.pacing, outcome.paced)
        return list(outcomes)


def retention_applies(loaded: LoadedSuite, models: list[str]) -> bool:
    """Whether a run of these models includes the suite's retention check (both of its models are run)."""
    pair = loaded.suite.retention_pair()
    return pair is not None and all(m in models or m.endswith(BASE_SUFFIX) for m in pair)


def run_suite(loaded: LoadedSuite, db_path: str, models: list[str] | None = None, limit: int | None = None,
              use_cache: bool = True, resume: str | None = None, progress: Progress | None = None,
              argv: list[str] | None = None, shard: Shard | None = None) -> RunSummary:
    """Run (or resume) a suite and store everything; returns the run's summary with metrics.

    A resumed run keeps the samples it was started with (its ``--limit`` and ``--shard``).
    """
    progress = progress or NullProgress()
    store = Store(db_path)
    try:
        if resume:
            run_id = store.resolve_run_id(resume)
            stored_models = [m["model"] for m in store.run_models(run_id)]
            prepared = plan_resume(store, loaded, run_id, models or stored_models or None)
            store.set_run_status(run_id, "running")
        else:
            prepared = prepare(loaded, models, limit, shard)
            run_id = new_run_id()
        retention = plan_retention(loaded) if retention_applies(loaded, prepared.models) else None
        backends = create_backends(loaded, prepared.models)
        try:
            if not resume:
                create_run(store, prepared, run_id, argv or sys.argv)
            suite_run = SuiteRun(prepared, store, run_id, use_cache, progress)
            try:
                outcomes = suite_run.execute(backends)
                judge_answers(prepared, store, run_id, suite_run.use_cache, suite_run.call_with_retries)
            except KeyboardInterrupt:
                suite_run.writer.flush()
                store.mark_models_interrupted(run_id, prepared.models)
                store.set_run_status(run_id, "interrupted", error="stopped by the user (Ctrl-C)")
                raise InterruptedRunError(f"interrupted; {suite_run.writer.written} results stored. Resume with: "
                                          f"evalkit run {loaded.path} --db {db_path} --resume {run_id}") from None
            finally:
                progress.close()
            status = "complete" if all(o.status == "complete" for o in outcomes) else "incomplete"
            metrics = finish(store, run_id, status, prepared)
            if retention is not None and status == "complete":
                try:
                    run_retention(loaded, store, run_id, retention, live_endpoints(backends))
                except EvalkitError as exc:
                    raise exc.prefixed(f"run {run_id} is stored, but its retention check failed: ") from None
            return RunSummary(run_id, str(db_path), status, outcomes, metrics, summarise_score_errors(store, run_id))
        finally:
            release_servers(backends)  # launched vLLM servers stay up through the retention check
    finally:
        store.close()


async def _close_all(backends: list[Backend]) -> None:
    for backend in backends:
        await backend.aclose()
