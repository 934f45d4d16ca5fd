"""``evalkit run SUITE --ray [ADDRESS]``: a run split into shards that run as Ray actors, one store.

What runs where:

- **the driver** (this process): loads the suite, renders every sample, plans the shards with the stable
  hash of the sample id (:class:`evalkit.config.shards.Shard`, as ``--shard I/N``), answers what the cache
  holds, scores every answer and is the one DuckDB writer (batched, :mod:`evalkit.engine.writer`);
- **each shard** (:class:`evalkit.engine.ray_worker.ShardWorker`, an actor with ``run.ray``'s resources:
  ``num_gpus`` for a launch-mode vLLM replica, so it starts beside its GPU) holds the shard's model clients
  and calls the requests it is sent; a model listing several ``api_bases`` gives shard I endpoint I.

Finished calls stream back in batches (each shard's ``take`` answered as it finishes, collected with
``ray.wait``). The driver keeps the set of (model, sample, repeat) it has received: a worker that dies is
restarted by Ray (``max_restarts``), and the restarted shard is sent only what the driver does not hold,
so every sample is stored once and a stored sample is never requested again — nor after ``--resume``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from evalkit.backends.base import BackendBase
from evalkit.backends.ray_cluster import Cluster
from evalkit.config.prompts import RenderedSample
from evalkit.config.ray_spec import RaySpec
from evalkit.config.resolve import ResolvedModel, api_key, resolve_models
from evalkit.config.shards import Shard, part_of
from evalkit.engine.ray_worker import Call, ModelDone, ShardWorker
from evalkit.engine.runner import ModelOutcome, SuiteRun, cache_key
from evalkit.errors import BackendError
from evalkit.records import ChatRequest, Completion

TAKE_WAIT_S = 0.2
RESTART_POLL_S = 0.5
Item = tuple[RenderedSample, int, ChatRequest, str]  # sample, repeat, request, cache key


def shard_gpus(resolved: dict[str, ResolvedModel]) -> float:
    """GPUs one shard needs by default: the tensor-parallel size of each engine it starts (1 if unset)."""
    engines: dict[tuple[Any, ...], float] = {}
    for model in resolved.values():
        spec = model.spec
        if model.kind == "vllm/launch":
            args = " ".join(getattr(spec, "server_args", []))
            tp = re.search(r"(?:--tensor-parallel-size|-tp)[ =](\d+)", args)
            engines[(getattr(spec, "base_model", ""), args)] = float(tp.group(1)) if tp else 1.0
        elif model.kind == "vllm/inprocess":
            engine_args = getattr(spec, "engine_args", {})
            engines[(getattr(spec, "base_model", ""), json.dumps(engine_args, sort_keys=True, default=str))] = float(
                engine_args.get("tensor_parallel_size", 1))
    return sum(engines.values())


def shard_count(spec: RaySpec, resolved: dict[str, ResolvedModel], gpus_per_shard: float,
                cluster_gpus: float) -> int:
    """``run.ray.shards``, else one per endpoint of the longest ``api_bases``, else one per GPU slot, else 1."""
    if spec.shards is not None:
        return spec.shards
    endpoints = max((len(m.spec.api_bases or []) for m in resolved.values()), default=0)
    if endpoints > 1:
        return endpoints
    if gpus_per_shard > 0:
        return max(1, int(cluster_gpus // gpus_per_shard))
    return 1


def shard_models(resolved: dict[str, ResolvedModel], shard: Shard) -> dict[str, ResolvedModel]:
    """The models as shard I runs them: a model with several ``api_bases`` calls endpoint I (round robin)."""
    out = {}
    for name, model in resolved.items():
        bases = model.spec.api_bases
        if bases:
            spec = model.spec.model_copy(update={"api_base": bases[(shard.index - 1) % len(bases)]})
            model = dataclasses.replace(model, spec=spec)
        out[name] = model
    return out


class RemoteModel(BackendBase):
    """What the driver records of a model that runs in the shards (``run_models``): never called here."""

    def __init__(self, resolved: ResolvedModel, previous: dict[str, Any]) -> None:
        self.name = resolved.name
        self.resolved = resolved
        self.opened: dict[int, dict[str, Any]] = {}  # shard index -> what its worker said at open
        self.cluster: dict[str, Any] = {}
        self.restarts: dict[int, int] = {}
        self._previous = previous

    @property
    def served_model(self) -> str:
        infos = list(self.opened.values())
        return str(infos[0]["served_model"]) if infos else str(self._previous.get("model_ref") or "")

    def identity(self) -> dict[str, Any]:
        ids = [info["identity"] for _, info in sorted(self.opened.items())]
        if not ids:
            stored = self._previous.get("identity")
            return json.loads(stored) if isinstance(stored, str) else dict(stored or {})
        return ids[0] if all(i == ids[0] for i in ids) else {"shards": ids}

    def engine_info(self) -> dict[str, Any] | None:
        shards = [{"shard": i, "pid": info["pid"], "host": info["host"], "node_id": info["node_id"],
                   "restarts": self.restarts.get(i, 0), **({"engine": info["engine_info"]} if info["engine_info"]
                                                           else {})} for i, info in sorted(self.opened.items())]
        return {"ray": {**self.cluster, "shards": shards}}

    async def complete(self, request: ChatRequest) -> Completion:
        raise AssertionError("a --ray model is called on its shard's worker, not by the driver")

    async def aclose(self) -> None:
        return None


@dataclass
class ShardState:
    shard: Shard
    actor: Any
    todo: dict[str, list[tuple[RenderedSample, int]]]
    sent: dict[str, list[Item]] = field(default_factory=dict)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    done: dict[str, ModelDone] = field(default_factory=dict)
    restarts: int = 0
    finished: bool = False

    @property
    def label(self) -> str:
        return f"shard {self.shard}"


class ShardedRun(SuiteRun):
    """A run (new or resumed) whose calls run in Ray shards; rows are scored and written here."""

    def execute_on_ray(self, cluster: Cluster, spec: RaySpec) -> list[ModelOutcome]:
        ray = _ray()
        resolved = resolve_models(self.p.loaded, self.p.models)
        gpus = spec.num_gpus if spec.num_gpus is not None else shard_gpus(resolved)
        n = shard_count(spec, resolved, gpus, float(ray.cluster_resources().get("GPU", 0.0)))
        previous = {m["model"]: m for m in self.store.run_models(self.run_id)}
        self.remote = {m: RemoteModel(resolved[m], previous.get(m, {})) for m in self.p.models}
        info = cluster.info()
        for remote in self.remote.values():
            remote.cluster = {**info, "shard_count": n, "num_cpus": spec.num_cpus, "num_gpus": gpus}
        self.received: set[tuple[str, str, int]] = set()
        shards = self._plan(n)
        worker = ray.remote(ShardWorker).options(
            num_cpus=spec.num_cpus, num_gpus=gpus, resources=spec.resources or None,
            max_restarts=spec.max_restarts, max_task_retries=0, runtime_env={"env_vars": self._secrets(resolved)})
        pending: dict[Any, tuple[ShardState, str]] = {}
        for state in shards:
            if any(state.todo.values()):
                state.actor = worker.remote(self.p.loaded, shard_models(resolved, state.shard), self.suite.run.retries)
                pending[state.actor.open.remote()] = (state, "open")
            else:
                state.finished = True
        for model in self.p.models:
            self._record_model(model, self.remote[model], "running", None)
        try:
            self._loop(pending, spec, ray)
        finally:
            self._stop(shards, ray)
        return [self._outcome(model, shards) for model in self.p.models]

    def _stop(self, shards: list[ShardState], ray: Any) -> None:
        """Each shard's launched servers stopped (close), then its actor ended."""
        live = [s.actor for s in shards if s.actor is not None]
        closing = []
        for actor in live:
            try:
                closing.append(actor.close.remote())
            except Exception:  # noqa: BLE001 - an actor already gone has nothing to close
                continue
        if closing:
            ray.wait(closing, num_returns=len(closing), timeout=120)
        for actor in live:
            ray.kill(actor, no_restart=True)

    def _secrets(self, resolved: dict[str, ResolvedModel]) -> dict[str, str]:
        """The API keys the models name (``api_key_env``), for the shards' workers (checked here, first)."""
        env = {}
        for name, model in resolved.items():
            key = api_key(name, model.spec, str(self.p.loaded.path))  # the one message when it is not set
            if key is not None and model.spec.api_key_env:
                env[model.spec.api_key_env] = key  # registered for redaction by api_key
        return env

    def _plan(self, n: int) -> list[ShardState]:
        shards = [ShardState(Shard(i, n), None, {m: [] for m in self.p.models}) for i in range(1, n + 1)]
        by_sample = {r.sample.id: shards[part_of(r.sample.id, n) - 1] for r in self.p.rendered}
        for model in self.p.models:
            self.store.delete_failed_results(self.run_id, model)  # failed rows are tried again; ok rows never
            done = self.store.done_keys(self.run_id, model)
            todo = [(r, rep) for r in self.p.rendered for rep in range(self.suite.run.repeats)
                    if (r.sample.id, rep) not in done]
            self.progress.start(model, len(todo))
            for r, rep in todo:
                by_sample[r.sample.id].todo[model].append((r, rep))
        for state in shards:
            for model, items in state.todo.items():
                if items:
                    self.progress.start(f"{model} {state.label}", len(items))
        return shards

    def _loop(self, pending: dict[Any, tuple[ShardState, str]], spec: RaySpec, ray: Any) -> None:
        last_flush = time.monotonic()
        waiting: list[tuple[float, ShardState]] = []  # shards whose restarting actor is asked again later
        while pending or waiting:
            for due, state in [w for w in waiting if w[0] <= time.monotonic()]:
                waiting.remove((due, state))
                pending[state.actor.open.remote()] = (state, "open")
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5) if pending else ([], None)
            if not pending:
                time.sleep(RESTART_POLL_S)
            for ref in ready:
                state, step = pending.pop(ref)
                try:
                    value = ray.get(ref)
                except ray.exceptions.ActorUnavailableError as exc:  # restarting: ask it again in a moment
                    if step != "open" and not self._count_restart(state, spec, f"{type(exc).__name__}: {exc}"):
                        continue  # given up
                    waiting.append((time.monotonic() + RESTART_POLL_S, state))
                    continue
                except ray.exceptions.RayActorError as exc:  # the worker died: Ray restarts it
                    self._lost(state, spec, f"{type(exc).__name__}: {exc}", pending)
                    continue
                except ray.exceptions.RayTaskError as exc:  # the shard's own error (an engine that cannot start)
                    self._give_up(state, f"{exc.cause if exc.cause is not None else exc}")
                    continue
                if step == "open":
                    state.info = value
                    for model, opened in value.items():
                        self.remote[model].opened[state.shard.index] = opened
                    work, warmups = self._send(state)
                    pending[state.actor.start.remote(work, warmups)] = (state, "start")
                elif step == "take" or step == "start":
                    calls, done = value if step == "take" else ([], None)
                    self._receive(state, calls)
                    if done is not None:
                        state.done = {m: _merged(state.done.get(m), d) for m, d in done.items()}
                        state.finished = True
                    else:
                        pending[state.actor.take.remote(TAKE_WAIT_S)] = (state, "take")
            if time.monotonic() - last_flush >= 1.0:
                self.writer.flush()
                last_flush = time.monotonic()
        self.writer.flush()

    def _send(self, state: ShardState) -> tuple[dict[str, list[tuple[int, ChatRequest]]], dict[str, list[ChatRequest]]]:
        """What the (re)opened shard is asked: its samples the driver does not hold and the cache cannot answer."""
        work: dict[str, list[tuple[int, ChatRequest]]] = {}
        warmups: dict[str, list[ChatRequest]] = {}
        for model, todo in state.todo.items():
            left = [(r, rep) for r, rep in todo if (model, r.sample.id, rep) not in self.received]
            identity = state.info[model]["identity"]
            items = [(r, rep, req, cache_key(identity, req, rep))
                     for r, rep in left for req in [self.request_for(r, model)]]
            cached = self.store.cached_responses(k for *_, k in items) if self.use_cache else {}
            for r, rep, req, key in items:
                if key in cached:
                    self._store_row(state, model, (r, rep, req, key), _from_cache(cached[key]), None, 0, cached[key])
            state.sent[model] = [item for item in items if item[3] not in cached]
            work[model] = [(i, item[2]) for i, item in enumerate(state.sent[model])]
            warmups[model] = [self.request_for(r, model) for r in self.p.rendered[:self.suite.run.warmup]]
        return work, warmups

    def _receive(self, state: ShardState, calls: list[Call]) -> None:
        for call in calls:
            item = state.sent[call.model][call.index]
            error = (BackendError(call.error, kind=call.error_kind, status=call.error_status,  # type: ignore[arg-type]
                                  attempts=call.attempts) if call.error is not None else None)
            self._store_row(state, call.model, item, call.completion, error, call.attempts, None)

    def _store_row(self, state: ShardState, model: str, item: Item, completion: Completion | None,
                   error: BackendError | None, attempts: int, hit: dict[str, Any] | None) -> None:
        rendered, repeat, request, key = item
        seen = (model, rendered.sample.id, repeat)
        if seen in self.received:  # a restarted shard's answer the driver already has
            return
        self.received.add(seen)
        spec = self.suite.models[model]
        from evalkit.engine.pricing import call_cost

        cost = hit["cost_usd"] if hit is not None else (call_cost(spec, completion) if completion else None)
        row = self._row(model, rendered, repeat, key, completion, error, attempts, hit is not None, cost,
                        request)  # scored, and counted in the model's progress, as in one process
        self.writer.add(row)
        latency = completion.latency_ms if completion else None
        self.progress.advance(f"{model} {state.label}", bool(row["correct"]), error is not None, latency, hit is not None)

    def _lost(self, state: ShardState, spec: RaySpec, why: str, pending: dict[Any, tuple[ShardState, str]]) -> None:
        """A shard whose worker died: Ray restarts it; it is opened again and sent what is still missing."""
        if self._count_restart(state, spec, why):
            pending[state.actor.open.remote()] = (state, "open")

    def _count_restart(self, state: ShardState, spec: RaySpec, why: str) -> bool:
        """One more life of the shard's worker (recorded); False when that is more than run.ray.max_restarts."""
        state.restarts += 1
        for model in state.todo:
            self.remote[model].restarts[state.shard.index] = state.restarts
        if state.restarts > spec.max_restarts:
            self._give_up(state, f"its worker died {state.restarts} times (run.ray.max_restarts {spec.max_restarts}); "
                          f"last: {why}")
            return False
        return True

    def _give_up(self, state: ShardState, why: str) -> None:
        state.finished = True
        for model in state.todo:
            if any((model, r.sample.id, rep) not in self.received for r, rep in state.todo[model]):
                state.done[model] = ModelDone(status="aborted", error=f"{state.label} stopped: {why}")

    def _outcome(self, model: str, shards: list[ShardState]) -> ModelOutcome:
        """A model's outcome over its shards: complete only if every shard was; wall time in replica-seconds."""
        outcome = ModelOutcome(model)
        for state in shards:
            done = state.done.get(model)
            if done is None:
                continue
            outcome.calls += done.calls
            outcome.wall_s += done.wall_s
            outcome.warmup_latencies_ms += done.warmup_latencies_ms
            if done.status != "complete" and outcome.status == "complete":
                outcome.status, outcome.error = done.status, done.error
        outcome.rows = sum(1 for m, _, _ in self.received if m == model)
        return outcome


def _merged(before: ModelDone | None, after: ModelDone) -> ModelDone:
    """A model's ending in a shard over its worker's lives (calls and time of a life that died are lost)."""
    if before is None:
        return after
    return ModelDone(after.status, after.error, before.calls + after.calls, before.wall_s + after.wall_s,
                     before.warmup_latencies_ms + after.warmup_latencies_ms)


def _from_cache(hit: dict[str, Any]) -> Completion:
    return Completion(text=hit["output"] or "", finish_reason=hit["finish_reason"], prompt_tokens=hit["prompt_tokens"],
                      completion_tokens=hit["completion_tokens"], latency_ms=hit["latency_ms"] or 0.0,
                      ttft_ms=hit["ttft_ms"], resolved_model=hit["resolved_model"], client_lag_ms=hit["client_lag_ms"],
                      logprobs=json.loads(hit["logprobs"]) if hit["logprobs"] else None,
                      sent_params=json.loads(hit["request_params"]) if hit["request_params"] else {})


def _ray() -> Any:
    from evalkit.backends.ray_cluster import import_ray

    return import_ray()
