"""The LLM judge's calls: after the models answered, each usable answer is judged, and (``pairwise``) the
candidate's answer against the baseline's in both orders.

Judge calls go through the same backends as model calls (:mod:`evalkit.backends`), with the runner's
retries (Retry-After honoured), its price rules (:func:`evalkit.engine.pricing.call_cost`) and a cache
of its own (the judge's identity, messages and parameters → a stored readable verdict), but are kept
apart from the judged models: they run after the models' timed phase, their latency, tokens and cost
live in ``judgements`` and never in ``results``; only the judged quality (and correctness) is written
into the judged rows. A verdict that cannot be read, or a call that fails after its retries, is a score
error on the row (quality 0, ``results.score_error``), never a silent 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from evalkit.backends import Backend, create_backends, release_servers
from evalkit.config.judge_spec import JudgeSpec
from evalkit.config.model_specs import LiteLLMModel
from evalkit.config.prompts import RenderedSample
from evalkit.config.resolve import ResolvedModel, resolve_model
from evalkit.config.suite import LoadedSuite
from evalkit.engine.pricing import call_cost
from evalkit.errors import BackendError
from evalkit.records import ChatRequest, Completion
from evalkit.scoring.judge import (
    ReferenceRenderer,
    Verdict,
    pairwise_messages,
    pointwise_messages,
    read_pairwise,
    read_pointwise,
)
from evalkit.scoring.prepare import Prepared
from evalkit.store.base import now, to_json
from evalkit.store.db import Store

Call = Callable[[Backend, ChatRequest], Awaitable[tuple[Completion, int]]]
BATCH = 256


@dataclass
class JudgeJob:
    model: str
    sample_id: str
    repeat: int
    kind: str            # pointwise | pairwise
    pair_order: str      # '-' | AB (candidate in slot A) | BA
    other_model: str | None
    messages: list[dict[str, str]]
    key: str = ""


@dataclass
class JudgeOutcome:
    calls: int = 0       # judge requests made (attempts included); 0 on an unchanged rerun
    judged: int = 0      # verdicts stored this time
    cached: int = 0
    errors: int = 0


def judge_resolved(loaded: LoadedSuite, spec: JudgeSpec) -> ResolvedModel:
    """The judge as a model entry: the suite's own entry when it names one, else a LiteLLM model."""
    if spec.model in loaded.suite.models:
        own = resolve_model(loaded, spec.model)
        return replace(own, concurrency=spec.concurrency) if spec.concurrency else own
    entry = LiteLLMModel(provider="litellm", model=spec.model, api_base=spec.api_base, api_key_env=spec.api_key_env,
                         params=spec.params, stream=False, cost=spec.cost)
    return ResolvedModel("judge", entry, "litellm", spec.concurrency or loaded.suite.run.concurrency)


def judge_key(identity: dict[str, Any], request: ChatRequest) -> str:
    blob = json.dumps({"judge": identity, "messages": request.messages, "params": request.params},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def plan_jobs(prepared: Prepared, store: Store, run_id: str, spec: JudgeSpec) -> list[JudgeJob]:
    """Every verdict this run still lacks: each usable answer, and (pairwise) each answered pair twice."""
    suite = prepared.loaded.suite
    by_id: dict[str, RenderedSample] = {r.sample.id: r for r in prepared.rendered}
    reference = ReferenceRenderer(prepared.loaded, spec)
    refs: dict[str, str | None] = {}

    def ref(sample_id: str) -> str | None:
        if sample_id not in refs:
            refs[sample_id] = reference.render(by_id[sample_id])
        return refs[sample_id]

    jobs: list[JudgeJob] = []
    for model in prepared.models:
        for row in store.pointwise_todo(run_id, model, suite.scoring.infeasible_is_wrong):
            sid = str(row["sample_id"])
            if sid in by_id:
                jobs.append(JudgeJob(model, sid, int(row["repeat"]), "pointwise", "-", None,
                                     pointwise_messages(spec, by_id[sid], row["output"] or "", ref(sid))))
    baseline, candidate = suite.gates.baseline, suite.gates.candidate
    if spec.pairwise and baseline in prepared.models and candidate in prepared.models and baseline != candidate:
        assert baseline is not None and candidate is not None
        for row in store.pairwise_todo(run_id, baseline, candidate):
            sid = str(row["sample_id"])
            if sid not in by_id:
                continue
            cand, base = row["candidate_output"] or "", row["baseline_output"] or ""
            for order, (a, b) in (("AB", (cand, base)), ("BA", (base, cand))):
                jobs.append(JudgeJob(candidate, sid, int(row["repeat"]), "pairwise", order, baseline,
                                     pairwise_messages(spec, by_id[sid], a, b, ref(sid))))
    return jobs


def _read(spec: JudgeSpec, job: JudgeJob, raw: str) -> Verdict:
    if job.kind == "pairwise":
        return read_pairwise(raw, "A" if job.pair_order == "AB" else "B")
    return read_pointwise(spec, raw)


def _row(run_id: str, spec: JudgeSpec, job: JudgeJob, verdict: Verdict, raw: str | None,
         completion: Completion | dict[str, Any] | None, cost: float | None, attempts: int,
         cache_hit: bool) -> dict[str, Any]:
    def measured(name: str) -> Any:
        if completion is None:
            return None
        return completion.get(name) if isinstance(completion, dict) else getattr(completion, name)

    return {"run_id": run_id, "model": job.model, "sample_id": job.sample_id, "repeat": job.repeat, "kind": job.kind,
            "pair_order": job.pair_order, "other_model": job.other_model, "judge_model": spec.model,
            "status": "error" if verdict.error else "ok", "raw": raw, "verdict": verdict.verdict,
            "reasoning": verdict.reasoning, "score": verdict.score, "error": verdict.error,
            "latency_ms": measured("latency_ms"), "prompt_tokens": measured("prompt_tokens"),
            "completion_tokens": measured("completion_tokens"), "cost_usd": cost, "attempts": attempts,
            "cache_hit": cache_hit, "cache_key": job.key, "messages": to_json(job.messages), "created_at": now()}


async def _call_all(run_id: str, spec: JudgeSpec, resolved: ResolvedModel, backend: Backend, call: Call,
                    jobs: list[tuple[JudgeJob, ChatRequest]], outcome: JudgeOutcome) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(resolved.concurrency)
    fatal: list[str] = []
    successes = 0

    async def one(job: JudgeJob, request: ChatRequest) -> dict[str, Any]:
        nonlocal successes
        async with gate:
            if fatal:  # the judge cannot be reached or refuses the key: the rest is not asked
                return _row(run_id, spec, job, Verdict(None, None, None, fatal[0]), None, None, None, 0, False)
            try:
                completion, attempts = await call(backend, request)
            except BackendError as exc:
                outcome.calls += exc.attempts
                message = f"judge call failed after {exc.attempts} attempt(s): {exc}"
                if successes == 0 and (exc.kind == "connect" or exc.status in (401, 403, 404)):
                    fatal.append(message)
                return _row(run_id, spec, job, Verdict(None, None, None, message), None, None, None, exc.attempts,
                            False)
            successes += 1
            outcome.calls += attempts
            return _row(run_id, spec, job, _read(spec, job, completion.text), completion.text, completion,
                        call_cost(resolved.spec, completion), attempts, False)

    try:
        return list(await asyncio.gather(*(one(j, r) for j, r in jobs)))
    finally:
        await backend.aclose()


def judge_answers(prepared: Prepared, store: Store, run_id: str, use_cache: bool, call: Call) -> JudgeOutcome | None:
    """Judge every answer of the run that has no verdict yet, store the verdicts, write the judged quality."""
    spec = prepared.loaded.suite.scoring.judge
    if spec is None:
        return None
    store.forget_failed_judgements(run_id)
    jobs = plan_jobs(prepared, store, run_id, spec)
    outcome = JudgeOutcome()
    if jobs:
        resolved = judge_resolved(prepared.loaded, spec)
        backend = create_backends(prepared.loaded, {resolved.name: resolved})[resolved.name]
        try:
            backend.prepare()
            requests = [(job, ChatRequest(messages=job.messages, params=dict(resolved.spec.params), stream=False,
                                          timeout_s=prepared.loaded.suite.run.timeout_s)) for job in jobs]
            for job, request in requests:
                job.key = judge_key(backend.identity(), request)
            cached = store.cached_judgements(j.key for j in jobs) if use_cache else {}
            rows = []
            for job, _ in requests:
                hit = cached.get(job.key)
                if hit is not None:
                    rows.append(_row(run_id, spec, job, _read(spec, job, hit["raw"] or ""), hit["raw"], hit,
                                     hit["cost_usd"], 0, True))
            todo = [(j, r) for j, r in requests if j.key not in cached]
            if todo:
                rows += asyncio.run(_call_all(run_id, spec, resolved, backend, call, todo, outcome))
            else:
                asyncio.run(backend.aclose())
        finally:
            release_servers({resolved.name: backend})
        for start in range(0, len(rows), BATCH):
            store.insert_judgements(rows[start:start + BATCH])
        outcome.judged = len(rows)
        outcome.cached = sum(1 for r in rows if r["cache_hit"])
        outcome.errors = sum(1 for r in rows if r["status"] == "error")
    threshold = None if prepared.loaded.suite.scoring.correct is not None else prepared.loaded.suite.scoring.correct_threshold
    for model in prepared.models:
        store.apply_judgements(run_id, model, threshold)
    return outcome
