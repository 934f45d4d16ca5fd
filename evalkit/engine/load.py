"""Open-loop load: a sweep of arrival rates per model (``evalkit load``) and the paced phase of a run.

A sweep sends each asked rate's requests open loop (:class:`~evalkit.engine.arrivals.OpenLoop`) over the
suite's rendered samples — cycling them when a rate needs more requests than there are samples — and
stores, per rate, latency and TTFT percentiles, error rate, achieved throughput, queueing delay and the
in-flight cap's hits (``load_points``, one row per request in ``load_requests``). Answers are timed, not
scored or stored: quality is what ``evalkit run`` measures; a load sweep measures how fast the server
answers at a rate. Calls are never retried (a retry would add arrivals the schedule did not ask for);
a failed call is an error of its rate. The **goodput** is the highest asked rate whose p99 from scheduled
arrival (queueing included) is within the SLO and whose error rate is at most ``max_error_rate``, every
lower rate meeting it too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalkit.backends import Backend, create_backends, release_servers
from evalkit.config.fewshot import with_turns
from evalkit.config.prompts import RenderedSample
from evalkit.config.provenance import host_info, redact
from evalkit.config.resolve import resolve_model
from evalkit.config.run_spec import DEFAULT_MAX_IN_FLIGHT
from evalkit.config.suite import LoadedSuite
from evalkit.engine.arrivals import OpenLoop, PacingStats, phase_point
from evalkit.errors import BackendError, InterruptedRunError
from evalkit.records import ChatRequest
from evalkit.scoring.prepare import Prepared, prepare
from evalkit.store.db import Store
from evalkit.store.rows import new_run_id

FORMAT = "evalkit.load/1"
FATAL_STATUS = (401, 403, 404)


@dataclass(frozen=True)
class SweepOptions:
    """How ``evalkit load`` sweeps: the asked rates, the SLO, and how long each rate runs."""

    rates: tuple[float, ...]
    slo_p99_ms: float
    max_error_rate: float = 0.01
    duration_s: float | None = None     # per rate; default when neither is given: DEFAULT_DURATION_S
    requests: int | None = None         # per rate, instead of a duration
    arrival: str = "poisson"
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    seed: int = 0
    warmup: int = 4                     # unmeasured requests, one at a time, before the first rate
    limit: int | None = None            # samples to cycle through (default: all)
    all_rates: bool = False             # keep sweeping after the first rate that misses the SLO

    def n_requests(self, rate: float) -> int:
        if self.requests is not None:
            return self.requests
        return max(1, math.ceil(rate * (self.duration_s if self.duration_s is not None else DEFAULT_DURATION_S)))


DEFAULT_DURATION_S = 30.0


def chat_request(loaded: LoadedSuite, model: str, rendered: RenderedSample,
                 prepared: Prepared | None = None) -> ChatRequest:
    """The request a run sends for this sample (the same messages with the model's few-shot turns,
    parameters, logprobs, streaming and constrained decoding)."""
    suite = loaded.suite
    spec = suite.models[model]
    logprobs = suite.confidence.source == "logprobs"
    constraint = (prepared.constraints or {}).get(model) if prepared else None
    messages = with_turns(rendered.messages, (prepared.shots or {}).get(model, []) if prepared else [])
    return ChatRequest(messages=messages, params=dict(spec.params), logprobs=logprobs,
                       top_logprobs=suite.confidence.top_logprobs if logprobs else 0, stream=spec.stream,
                       timeout_s=suite.run.timeout_s, constraint=constraint)


def goodput(points: list[dict[str, Any]]) -> float | None:
    """The highest asked rate meeting the SLO with every lower rate meeting it too; None when the lowest fails."""
    best = None
    for p in sorted(points, key=lambda p: p["rate_per_s"]):
        if not p.get("meets_slo"):
            break
        best = p["rate_per_s"]
    return best


def _request_rows(stats: PacingStats, keys: list[tuple[str, int]], latency: np.ndarray, ttft: np.ndarray,
                  status: list[str | None], kinds: list[str | None]) -> list[dict[str, Any]]:
    queue = stats.queue_ms
    return [{"seq": i, "sample_id": keys[i][0], "repeat": keys[i][1], "scheduled_ms": float(stats.scheduled_s[i] * 1000),
             "queue_ms": None if math.isnan(queue[i]) else float(queue[i]), "capped": bool(stats.capped[i]),
             "latency_ms": None if math.isnan(latency[i]) else float(latency[i]),
             "ttft_ms": None if math.isnan(ttft[i]) else float(ttft[i]), "status": status[i], "error_kind": kinds[i]}
            for i in range(len(keys))]


def record_run_phase(store: Store, run_id: str, loaded: LoadedSuite, model: str, backend: Backend,
                     stats: PacingStats, keys: list[tuple[str, int]]) -> dict[str, Any]:
    """Store the paced phase of an ``evalkit run`` with ``run.load`` (its rows already in ``results``).

    Figures count the requests that called the model; answers reused from the cache are counted apart
    (``n_cached``) and left out, as they put no load on the server.
    """
    rows = {(r["sample_id"], r["repeat"]): r for r in store.model_results(run_id, model)}
    n = len(keys)
    latency, ttft = np.full(n, math.nan), np.full(n, math.nan)
    ok, called = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    status: list[str | None] = [None] * n
    kinds: list[str | None] = [None] * n
    for i, key in enumerate(keys):
        row = rows.get(key)
        if row is None or math.isnan(stats.sent_s[i]):
            continue
        called[i] = not row["cache_hit"]
        status[i] = "cached" if row["cache_hit"] else row["status"]
        kinds[i] = row["error_kind"]
        ok[i] = row["status"] == "ok" and called[i]
        latency[i] = row["latency_ms"] if row["latency_ms"] is not None else math.nan
        ttft[i] = row["ttft_ms"] if row["ttft_ms"] is not None else math.nan
    point = phase_point(stats, latency, ttft, ok, counted=called)
    point["n_cached"] = int(np.count_nonzero(~called & ~np.isnan(stats.sent_s)))
    load_id = f"{run_id}-{model}-{new_run_id()[-6:]}"
    store.create_load_run({"load_id": load_id, "kind": "run", "run_id": run_id, "suite_name": loaded.suite.name,
                           "suite_hash": loaded.content_hash(), "model": model, "model_ref": backend.served_model,
                           "identity": redact(backend.identity()), "arrival": stats.arrival,
                           "seed": loaded.suite.run.load.seed if loaded.suite.run.load else None,
                           "max_in_flight": stats.max_in_flight, "config": {"rate_per_s": stats.rate_per_s}})
    store.add_load_point(load_id, point, _request_rows(stats, keys, latency, ttft, status, kinds))
    store.finish_load_run(load_id, "complete")
    return point


async def _warm(backend: Backend, requests: list[ChatRequest], model: str) -> None:
    """Unmeasured calls, one at a time; a model that cannot be reached stops the sweep here."""
    for request in requests:
        try:
            await backend.complete(request)
        except BackendError as exc:
            if exc.kind == "connect" or exc.status in FATAL_STATUS:
                raise BackendError(f"model '{model}' cannot be load-tested: {exc}", kind=exc.kind,
                                   status=exc.status) from None


async def _phase(backend: Backend, requests: list[ChatRequest], pacer: OpenLoop,
                 options: SweepOptions) -> tuple[PacingStats, np.ndarray, np.ndarray, np.ndarray,
                                                 list[str | None], list[str | None]]:
    n = len(requests)
    latency, ttft = np.full(n, math.nan), np.full(n, math.nan)
    ok = np.zeros(n, dtype=bool)
    status: list[str | None] = [None] * n
    kinds: list[str | None] = [None] * n

    async def send(i: int) -> None:
        try:
            completion = await backend.complete(requests[i])
        except BackendError as exc:
            status[i], kinds[i] = "error", exc.kind
            return
        ok[i], status[i] = True, "ok"
        latency[i] = completion.latency_ms if completion.latency_ms is not None else math.nan
        ttft[i] = completion.ttft_ms if completion.ttft_ms is not None else math.nan

    stats = await pacer.run(n, send)
    return stats, latency, ttft, ok, status, kinds


async def _sweep_model(store: Store, load_id: str, loaded: LoadedSuite, model: str, backend: Backend,
                       rendered: list[RenderedSample], options: SweepOptions,
                       on_point: Callable[[str, dict[str, Any]], None],
                       prepared: Prepared | None = None) -> list[dict[str, Any]]:
    try:
        base = [chat_request(loaded, model, r, prepared) for r in rendered]
        await _warm(backend, [base[i % len(base)] for i in range(options.warmup)], model)
        points: list[dict[str, Any]] = []
        for k, rate in enumerate(sorted(set(options.rates))):
            n = options.n_requests(rate)
            keys = [(rendered[i % len(rendered)].sample.id, i // len(rendered)) for i in range(n)]
            pacer = OpenLoop(rate, options.arrival, options.max_in_flight, options.seed + k)
            stats, latency, ttft, ok, status, kinds = await _phase(
                backend, [base[i % len(base)] for i in range(n)], pacer, options)
            point = phase_point(stats, latency, ttft, ok, options.slo_p99_ms, options.max_error_rate)
            point["n_cached"] = 0
            store.add_load_point(load_id, point, _request_rows(stats, keys, latency, ttft, status, kinds))
            points.append(point)
            on_point(model, point)
            if not point["meets_slo"] and not options.all_rates:
                break
        return points
    finally:
        await backend.aclose()


def sweep_payload(store: Store, load_id: str) -> dict[str, Any]:
    """One stored sweep as ``evalkit load --json`` prints it (format ``evalkit.load/1``)."""
    run = store.load_run(load_id) or {}
    points = [{k: v for k, v in p.items() if k not in ("load_id", "created_at")} for p in store.load_points(load_id)]
    return {"load_id": load_id, "suite": run.get("suite_name"), "model": run.get("model"),
            "model_ref": run.get("model_ref"), "status": run.get("status"), "arrival": run.get("arrival"),
            "max_in_flight": run.get("max_in_flight"), "slo_p99_ms": run.get("slo_p99_ms"),
            "max_error_rate": run.get("max_error_rate"), "goodput_rps": run.get("goodput_rps"), "points": points}


def run_sweep(loaded: LoadedSuite, db_path: str, models: list[str], options: SweepOptions,
              argv: list[str] | None = None,
              on_point: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Sweep the rates for each model in turn (never two models at once) and store everything; returns
    the ``evalkit.load/1`` document."""
    prepared = prepare(loaded, models, options.limit)
    sweeps = []
    with Store(db_path) as store:
        for model in prepared.models:
            resolved = dataclasses.replace(resolve_model(loaded, model), concurrency=options.max_in_flight)
            backends = create_backends(loaded, {model: resolved})
            backend = backends[model]
            load_id = f"{new_run_id()}-{model}"
            store.create_load_run({
                "load_id": load_id, "kind": "sweep", "suite_name": loaded.suite.name,
                "suite_hash": loaded.content_hash(), "model": model, "model_ref": backend.served_model,
                "identity": redact(backend.identity()), "arrival": options.arrival, "seed": options.seed,
                "max_in_flight": options.max_in_flight, "slo_p99_ms": options.slo_p99_ms,
                "max_error_rate": options.max_error_rate,
                "config": redact({**dataclasses.asdict(options), "n_samples": len(prepared.rendered),
                                  "argv": argv or [], "host": host_info()})})
            try:
                points = asyncio.run(_sweep_model(store, load_id, loaded, model, backend, prepared.rendered,
                                                  options, on_point or (lambda m, p: None),
                                                  prepared))
            except KeyboardInterrupt:
                store.finish_load_run(load_id, "interrupted")
                raise InterruptedRunError(f"interrupted; the rates finished so far are stored under load "
                                          f"{load_id}") from None
            except BaseException:
                store.finish_load_run(load_id, "failed")
                raise
            finally:
                release_servers(backends)
            store.finish_load_run(load_id, "complete", goodput(points))
            sweeps.append(sweep_payload(store, load_id))
    return {"format": FORMAT, "suite": loaded.suite.name, "sweeps": sweeps}
