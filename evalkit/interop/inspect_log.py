"""inspect-ai eval logs in and out of the store, written and read with inspect-ai's own log API.

**Export** (:func:`export_run`): one ``.eval`` log per model of a run, so ``inspect view`` opens it. A
sample is a result row (``epoch`` = repeat + 1) with the rendered chat messages as input, the raw
answer as output (model, stop reason, token usage, cost, and the call's latency as ``time``), the
target, and four scores: ``correct`` and ``schema_valid`` and ``feasible`` (C / I; absent where they
do not apply) and ``quality`` (0–1). Failed calls carry the error. The log's results are the run's
stored metrics; its stats the summed token usage.

**Import** (:func:`import_log`): an inspect log of any model becomes a run of one model of a suite
whose dataset holds the same sample ids, so ``evalkit compare`` / ``gate`` can pair it by sample id
with an evalkit run. The answers are scored again by the suite's scorers — both sides are judged by
the same rules; the log's own scores are kept in the run's config. Whatever the log does not hold is
stored as NULL (time to first token, always; latency without ``output.time``; tokens without usage),
never invented. Every log sample id must be in the suite's dataset, and nothing is written unless the
whole log imports.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evalkit.analysis.metrics import compute_run_metrics
from evalkit.config.provenance import redact
from evalkit.config.suite import LoadedSuite
from evalkit.errors import InteropError, require
from evalkit.records import Completion
from evalkit.redact import redact_strings
from evalkit.scoring.prepare import prepare
from evalkit.store.db import Store
from evalkit.store.rows import new_run_id, result_row, run_row, sample_rows

IMPORTED = "imported"  # runs.status of a run brought in from a foreign log
_STOP = {"stop": "stop", "length": "max_tokens", "content_filter": "content_filter", "tool_calls": "tool_calls"}
_FINISH = {v: k for k, v in _STOP.items()}
_SCORES = (("correct", "correct", "accuracy"), ("schema_valid", "schema_valid", "schema_valid_rate"),
           ("feasible", "feasible", "feasible_rate"), ("quality", "quality", "quality_mean"))


def _iso(ts: Any) -> str | None:
    """A naive-UTC DuckDB timestamp as the ISO string with offset inspect's logs want."""
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC).isoformat() if isinstance(ts, datetime) else str(ts)


def _json(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) else text


def _model_name(model: dict[str, Any]) -> str:
    """inspect's provider/model form: a LiteLLM string stays as it is, a vLLM served name gets vllm/."""
    ref = model.get("model_ref") or model["model"]
    return ref if "/" in ref else f"{model['provider']}/{ref}"


# -- export -------------------------------------------------------------------------------------
def export_run(store: Store, run_id: str, out_dir: Path, models: list[str] | None = None) -> list[Path]:
    """Write one inspect-ai eval log per model of a run into ``out_dir``; returns the files written."""
    require("inspect_ai", "inspect")
    from inspect_ai.log import (
        EvalConfig,
        EvalDataset,
        EvalLog,
        EvalMetric,
        EvalResults,
        EvalRevision,
        EvalScore,
        EvalSpec,
        EvalStats,
        write_eval_log,
    )
    from inspect_ai.model import GenerateConfig

    # Everything read for the log is redacted again on the way out (a store written before redaction
    # covered every column may still hold a key).
    run = redact_strings(store.get_run(run_id))
    run_models = {m["model"]: redact_strings(m) for m in store.run_models(run_id)}
    chosen = models or list(run_models)
    unknown = [m for m in chosen if m not in run_models]
    if unknown:
        raise InteropError(f"run {run_id} has no model {unknown[0]!r}; it has {sorted(run_models)}")
    samples = {r["sample_id"]: redact_strings(r) for r in store.samples(run_id)}
    metrics = {(m["model"], m["metric"]): m for m in store.metrics(run_id)}
    out_dir.mkdir(parents=True, exist_ok=True)
    created = _iso(run["created_at"]) or datetime.now(UTC).isoformat()
    written = []
    for name in chosen:
        model = run_models[name]
        config = _json(model["config"]) or {}
        params = config.get("params") or {}
        rows = [redact_strings(r) for r in store.model_results(run_id, name)]
        rows.sort(key=lambda r: (samples.get(r["sample_id"], {}).get("position", 0), r["repeat"]))
        eval_samples = [_sample(r, samples.get(r["sample_id"], {}), _model_name(model)) for r in rows]
        scores = [EvalScore(name=score, scorer=score, scored_samples=int(m["n"] or 0),
                            metrics={metric: EvalMetric(name=metric, value=m["value"])})
                  for score, _, metric in _SCORES
                  if (m := metrics.get((name, metric))) is not None and m["value"] is not None]
        revision = (EvalRevision(type="git", origin="", commit=run["git_commit"], dirty=run["git_dirty"])
                    if run.get("git_commit") else None)
        spec = EvalSpec(
            eval_id=f"{run_id}-{name}", run_id=run_id, created=created, task=run["suite_name"],
            task_version=run.get("suite_version") or 0, task_file=run.get("suite_path"),
            dataset=EvalDataset(name=Path(run["dataset_path"]).stem if run.get("dataset_path") else None,
                                location=run.get("dataset_path"), samples=len(samples),
                                sample_ids=list(samples)),
            model=_model_name(model), model_base_url=config.get("api_base"),
            model_generate_config=GenerateConfig(**{k: v for k, v in params.items()
                                                    if k in GenerateConfig.model_fields}),
            config=EvalConfig(epochs=run.get("repeats") or 1), revision=revision,
            packages=_json(run.get("packages")) or {},
            metadata={"evalkit": {"run_id": run_id, "model": name, "provider": model["provider"],
                                  "suite_hash": run["suite_hash"], "dataset_hash": run.get("dataset_hash"),
                                  "params": params, "evalkit_version": run.get("evalkit_version")}})
        usage = _sum_usage(eval_samples)
        log = EvalLog(
            status="success" if model["status"] == "complete" and run["status"] in ("complete", IMPORTED)
            else "error" if model["status"] == "aborted" else "cancelled",
            eval=spec,
            results=EvalResults(total_samples=len(rows), completed_samples=sum(r["status"] == "ok" for r in rows),
                                scores=scores),
            stats=EvalStats(started_at=_iso(model.get("started_at")) or "",
                            completed_at=_iso(model.get("finished_at")) or "",
                            model_usage={spec.model: usage} if usage else {}),
            samples=eval_samples)
        stamp = created.replace(":", "-").split(".")[0]
        # inspect's file name convention, {timestamp}_{task}_{model}_{id}: '_' separates, so none inside
        path = out_dir / (f"{stamp}_{run['suite_name'].replace('_', '-')}_{name.replace('_', '-')}_"
                          f"{run_id.replace('-', '')}.eval")
        write_eval_log(log, str(path))
        written.append(path)
    return written


def _usage(row: dict[str, Any]) -> Any:
    from inspect_ai.model import ModelUsage

    if row["prompt_tokens"] is None and row["completion_tokens"] is None and row["cost_usd"] is None:
        return None
    inp, out = row["prompt_tokens"] or 0, row["completion_tokens"] or 0
    return ModelUsage(input_tokens=inp, output_tokens=out, total_tokens=inp + out, total_cost=row["cost_usd"])


def _sum_usage(samples: list[Any]) -> Any:
    total = None
    for s in samples:
        if s.output.usage is not None:
            total = s.output.usage if total is None else total + s.output.usage
    return total


def _sample(row: dict[str, Any], sample: dict[str, Any], model_name: str) -> Any:
    from inspect_ai._util.error import EvalError
    from inspect_ai.log import EvalSample
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser, ModelOutput
    from inspect_ai.scorer import Score

    messages = [ChatMessageSystem(content=m["content"]) if m["role"] == "system" else ChatMessageUser(content=m["content"])
                for m in (_json(sample.get("messages")) or [])]
    target = _json(sample.get("target"))
    resolved = row["resolved_model"] or model_name
    output = ModelOutput.from_content(model=resolved, content=row["output"] or "",
                                      stop_reason=_STOP.get(row["finish_reason"] or "", "unknown"),  # type: ignore[arg-type]
                                      error=row["error"])
    output.usage = _usage(row)
    output.time = row["latency_ms"] / 1000 if row["latency_ms"] is not None else None
    flags = {"correct": row["correct"], "schema_valid": row["schema_valid"], "feasible": row["feasible"]}
    parsed = _json(row["parsed"])
    answer = parsed if parsed is None or isinstance(parsed, str) else json.dumps(parsed, ensure_ascii=False)
    scores = {k: Score(value="C" if v else "I", answer=answer) for k, v in flags.items() if v is not None}
    scores["quality"] = Score(value=float(row["quality"]), answer=answer,
                              explanation="; ".join(filter(None, [row["parse_error"], row["score_error"],
                                                                   _violations(row["violations"])])) or None)
    return EvalSample(
        id=row["sample_id"], epoch=int(row["repeat"]) + 1, input=messages,
        target=target if isinstance(target, str) else json.dumps(target, ensure_ascii=False),
        messages=[*messages, *([] if row["status"] == "error" else [ChatMessageAssistant(
            content=row["output"] or "", model=resolved, source="generate")])],
        output=output, scores=scores,
        metadata={"slice": sample.get("slice"), "confidence": row["confidence"], "latency_ms": row["latency_ms"],
                  "ttft_ms": row["ttft_ms"], "cache_hit": row["cache_hit"], "attempts": row["attempts"],
                  "schema_errors": _json(row["schema_errors"]), "violations": _json(row["violations"]),
                  "request_params": _json(row["request_params"]), "error_kind": row["error_kind"]},
        model_usage={model_name: output.usage} if output.usage is not None else {},
        total_time=output.time, working_time=output.time,
        error=EvalError(message=row["error"] or "error", traceback="", traceback_ansi="")
        if row["status"] == "error" else None)


def _violations(value: Any) -> str | None:
    items = _json(value)
    return ("violations: " + "; ".join(map(str, items))) if items else None


# -- import -------------------------------------------------------------------------------------
def read_log(path: Path) -> Any:
    """An inspect-ai eval log with its samples; InteropError for anything that is not one."""
    require("inspect_ai", "inspect")
    from inspect_ai.log import read_eval_log

    if not path.is_file():
        raise InteropError(f"{path}: no such file")
    try:
        log = read_eval_log(str(path))
    except Exception as exc:  # inspect raises zip, JSON and validation errors alike
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InteropError(f"{path} is not a readable inspect-ai eval log ({type(exc).__name__}: {first[:200]})") from None
    if not log.samples:
        raise InteropError(f"{path}: the inspect log holds no samples (was it written with log_samples off?)")
    return log


def _default_name(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", model.split("/")[-1]).strip("-") or "imported"


@dataclass
class ImportedRun:
    """Everything an imported log becomes, built and checked before the store is opened."""

    run: dict[str, Any]
    model: dict[str, Any]
    samples: list[dict[str, Any]]
    results: list[dict[str, Any]]
    seed: int
    resamples: int

    @property
    def run_id(self) -> str:
        return str(self.run["run_id"])

    @property
    def name(self) -> str:
        return str(self.model["model"])


def build_import(loaded: LoadedSuite, path: Path, name: str | None = None,
                 argv: list[str] | None = None) -> ImportedRun:
    """An inspect log as a run of one model of ``loaded``'s suite, scored by the suite; writes nothing."""


    log = read_log(path)
    name = name or _default_name(log.eval.model)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise InteropError(f"model name '{name}' may hold letters, digits, '-' and '_' only")
    prepared = prepare(loaded)
    by_id = {r.sample.id: r for r in prepared.rendered}
    unknown = sorted({str(s.id) for s in log.samples} - set(by_id))
    if unknown:
        raise InteropError(f"{path}: {len(unknown)} of the log's sample ids are not in the suite's dataset "
                           f"({prepared.dataset.path.name}), e.g. {unknown[:5]}; import it with the suite "
                           "whose dataset the log was run on")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    run_id = new_run_id()
    rows, used, mismatched = [], {}, 0
    for s in log.samples:
        rendered = by_id[str(s.id)]
        used[rendered.sample.id] = rendered
        if _last_user_text(s.input) not in ("", rendered.messages[-1]["content"]):
            mismatched += 1
        rows.append(_result_row(run_id, name, s, rendered, prepared.scorer, digest))
    repeats = max(int(s.epoch) for s in log.samples)
    run = run_row(loaded, prepared.dataset, run_id, len(used), argv or sys.argv, status=IMPORTED, repeats=repeats,
                  git=(log.eval.revision.commit, log.eval.revision.dirty) if log.eval.revision else (None, None),
                  config_extra={"import": {
                      "source": "inspect", "log": str(path.resolve()), "sha256": digest, "eval_id": log.eval.eval_id,
                      "task": log.eval.task, "model": log.eval.model, "created": log.eval.created,
                      "log_packages": log.eval.packages, "log_scores": _log_scores(log),
                      "prompt_mismatches": mismatched}})
    model_row = {
        "run_id": run_id, "model": name, "provider": "inspect", "model_ref": log.eval.model,
        "identity": {"provider": "inspect", "model": log.eval.model, "log_sha256": digest},
        "config": redact({"provider": "inspect", "model": log.eval.model, "api_base": log.eval.model_base_url,
                          "generate_config": log.eval.model_generate_config.model_dump(exclude_none=True),
                          "log": str(path.resolve())}),
        "status": "complete", "started_at": _ts(log.stats.started_at), "finished_at": _ts(log.stats.completed_at),
        "wall_s": None, "n_calls": None, "error": None}
    return ImportedRun(run, model_row, sample_rows(run_id, list(used.values())), rows, loaded.suite.run.seed,
                       loaded.suite.run.bootstrap)


def store_import(store: Store, imported: ImportedRun) -> None:
    """Write an imported run in one transaction, then its metrics."""
    with store.transaction():
        store.create_run(imported.run)
        store.upsert_run_model(imported.model)
        store.insert_samples(imported.samples)
        store.insert_results(imported.results)
    compute_run_metrics(store, imported.run_id, imported.seed, imported.resamples)


def _ts(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


def _last_user_text(inp: Any) -> str:
    if isinstance(inp, str):
        return inp
    users = [m for m in inp if m.role == "user"]
    return users[-1].text if users else ""


def _log_scores(log: Any) -> dict[str, Any]:
    if not log.results:
        return {}
    return {s.name: {k: m.value for k, m in s.metrics.items()} for s in log.results.scores}


def _result_row(run_id: str, model: str, s: Any, rendered: Any, scorer: Any, digest: str) -> dict[str, Any]:
    """One imported answer, scored by the suite; measurements the log lacks stay NULL."""
    out = s.output
    failed = s.error is not None or out.error is not None
    usage = out.usage
    text = out.completion if out is not None else ""
    score = scorer.error_score() if failed else scorer.score(rendered, Completion(text=text))
    measured = Completion(
        text=text, latency_ms=out.time * 1000 if out.time is not None else None,
        ttft_ms=None,  # inspect logs do not record time to first token
        prompt_tokens=usage.input_tokens + (usage.input_tokens_cache_read or 0) + (usage.input_tokens_cache_write or 0)
        if usage is not None else None,
        completion_tokens=usage.output_tokens if usage is not None else None,
        finish_reason=_FINISH.get(out.stop_reason, out.stop_reason) if out.choices else None,
        resolved_model=out.model or None)
    return result_row(run_id, model, rendered.sample.id, int(s.epoch) - 1, score, measured,
                      error=(s.error.message if s.error else out.error) if failed else None,
                      error_kind="inspect" if failed else None, attempts=1 + len(s.error_retries or []),
                      cache_hit=False, cache_key=f"inspect:{digest}:{s.id}:{s.epoch}",
                      cost_usd=usage.total_cost if usage is not None else None, request_params=None)
