"""Capability retention: did the LoRA adapter keep what its base model could do?

The suite's ``retention`` section names lm-evaluation-harness tasks. Each is run through lm-eval's
OpenAI-compatible backends (``local-completions`` / ``local-chat-completions``) on the candidate and on
the baseline — by default the candidate's base model, reached on the same vLLM server by its
``base_model`` name (stored as ``CANDIDATE@base``). lm-eval's aggregate metrics land in the
``retention`` table and its per-document values in ``retention_samples``, beside the run's own
results, so a ``{retention: TASK/METRIC, max_drop: d}`` gate compares the two on the same documents
(paired bootstrap over documents, like every other gate).

lm-eval is an optional extra, imported here lazily. No tokenizer is downloaded: requests go as text
(``tokenized_requests=False``, no tokenizer backend), which suits ``generate_until`` tasks; tasks that
score log-likelihoods need a local tokenizer in ``retention.model_args``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.metadata
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from evalkit.config.model_specs import LiteLLMModel, VLLMModel
from evalkit.config.provenance import redact
from evalkit.config.resolve import api_key
from evalkit.config.retention_spec import is_task_file
from evalkit.config.suite import BASE_SUFFIX, LoadedSuite
from evalkit.errors import ConfigError, RetentionError, require
from evalkit.store.db import Store, now, to_json

PLACEHOLDER_KEY = "EMPTY"  # sent when a model names no key, so no key from the environment reaches the server


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible model lm-eval will call: what the store calls it and what the server serves."""

    name: str
    served: str
    api_base: str
    api_key_env: str | None


def endpoint(loaded: LoadedSuite, name: str, live: dict[str, tuple[str, str]] | None = None) -> Endpoint:
    """The served model behind a suite model name, or behind CANDIDATE@base (its vLLM base model).

    ``live`` maps launch-mode models to their running server: (api_base, the base's served name).
    """
    models = loaded.suite.models
    owner = name.removesuffix(BASE_SUFFIX) if name.endswith(BASE_SUFFIX) else name
    spec = models[owner]
    if isinstance(spec, VLLMModel):
        if spec.mode == "inprocess":
            raise ConfigError("retention runs lm-eval against a server, and this model is in-process; use "
                              "mode: launch (evalkit starts the server) or connect", file=str(loaded.path),
                              key=f"models.{owner}.mode")
        api_base, base_name = spec.api_base or "", spec.base_model
        if spec.mode == "launch":
            api_base, base_name = (live or {}).get(owner, ("(launched at run time)", spec.served_name or spec.base_model))
        served = base_name if owner != name else (spec.adapter or base_name)
        return Endpoint(name, served, api_base, spec.api_key_env)
    assert isinstance(spec, LiteLLMModel) and spec.api_base
    # LiteLLM strings carry a provider prefix (openai/NAME, hosted_vllm/NAME); the server knows NAME
    served = spec.model.split("/", 1)[1] if "/" in spec.model else spec.model
    return Endpoint(name, served, spec.api_base, spec.api_key_env)


def _key(loaded: LoadedSuite, ep: Endpoint) -> str:
    owner = ep.name.removesuffix(BASE_SUFFIX)
    return api_key(owner, loaded.suite.models[owner], str(loaded.path)) or PLACEHOLDER_KEY


class _TaskLoader(yaml.SafeLoader):
    """Reads lm-eval task YAML; its ``!function`` tags stay text (only lm-eval resolves them)."""


_TaskLoader.add_multi_constructor("!", lambda loader, suffix, node: f"!{suffix} {getattr(node, 'value', '')}")


def task_specs(loaded: LoadedSuite) -> tuple[list[str | dict[str, Any]], list[str]]:
    """lm-eval task arguments and include paths: names pass through; a task file becomes its config
    with relative ``data_files`` resolved against the file's folder (lm-eval would resolve them against
    the working directory)."""
    spec = loaded.suite.retention
    assert spec is not None
    tasks: list[str | dict[str, Any]] = []
    include = [str(loaded.resolve(p)) for p in spec.include]
    for entry in spec.tasks:
        if not is_task_file(entry):
            tasks.append(entry)
            continue
        path = loaded.resolve(entry)
        try:
            config = yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskLoader)
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the lm-eval task file {path}: {exc}", file=str(loaded.path),
                              key="retention.tasks") from None
        if not isinstance(config, dict) or not isinstance(config.get("task"), str):
            raise ConfigError(f"{path} is not an lm-eval task file (no 'task: NAME')", file=str(loaded.path),
                              key="retention.tasks")
        if any(isinstance(v, str) and v.startswith("!") for v in _walk(config)) or "include" in config:
            # !function tags and includes are resolved by lm-eval itself: let it load the file by name
            include.append(str(path.parent))
            tasks.append(config["task"])
            continue
        tasks.append(_resolve_data_files(config, path.parent))
    return tasks, include


def _walk(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _walk(v)]
    if isinstance(value, list):
        return [x for v in value for x in _walk(v)]
    return [value]


def _resolve_data_files(config: dict[str, Any], folder: Path) -> dict[str, Any]:
    config = copy.deepcopy(config)
    files = (config.get("dataset_kwargs") or {}).get("data_files")

    def fix(p: Any) -> Any:
        if isinstance(p, str) and "://" not in p and not Path(p).is_absolute():
            return str((folder / p).resolve())
        if isinstance(p, list):
            return [fix(x) for x in p]
        return p

    if isinstance(files, dict):
        config["dataset_kwargs"]["data_files"] = {k: fix(v) for k, v in files.items()}
    elif files is not None:
        config["dataset_kwargs"]["data_files"] = fix(files)
    return config


def _lm_eval_version() -> str | None:
    try:
        return importlib.metadata.version("lm-eval")
    except importlib.metadata.PackageNotFoundError:
        return None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """lm-eval's log lines off while it runs: evalkit reports a failure in one line. After a failure the
    request tasks lm-eval's async client abandoned would print their tracebacks when the process ends,
    so asyncio's logger stays quiet then (a CLI process ends right after the error)."""
    lm_logger, asyncio_logger = logging.getLogger("lm_eval"), logging.getLogger("asyncio")
    level = lm_logger.level
    lm_logger.setLevel(logging.CRITICAL)
    try:
        yield
    except BaseException:
        asyncio_logger.setLevel(logging.CRITICAL)
        raise
    finally:
        lm_logger.setLevel(level)


def evaluate_endpoint(loaded: LoadedSuite, ep: Endpoint, tasks: list[str | dict[str, Any]],
                      include: list[str]) -> dict[str, Any]:
    """Run lm-eval's ``simple_evaluate`` on one served model; its results dict with logged samples."""
    require("lm_eval", "lm-eval")
    import lm_eval
    from lm_eval.tasks import TaskManager

    spec = loaded.suite.retention
    assert spec is not None
    chat = spec.backend == "local-chat-completions"
    base = ep.api_base.rstrip("/")
    model_args: dict[str, Any] = {
        "tokenizer_backend": None, "tokenized_requests": False, **spec.model_args, "model": ep.served,
        "base_url": f"{base}/chat/completions" if chat else f"{base}/completions",
        "num_concurrent": spec.concurrency, "timeout": int(spec.timeout_s),
        "header": {"Authorization": f"Bearer {_key(loaded, ep)}"}}
    try:
        with _quiet():
            manager = TaskManager(include_path=include or None)
            out = lm_eval.simple_evaluate(
                model=spec.backend, model_args=model_args, tasks=tasks, task_manager=manager, limit=spec.limit,
                num_fewshot=spec.num_fewshot, log_samples=True, apply_chat_template=chat, bootstrap_iters=1000,
                random_seed=loaded.suite.run.seed, verbosity="ERROR")
    except (KeyError, ValueError, FileNotFoundError, NotImplementedError) as exc:
        raise RetentionError(f"lm-eval could not run {[t if isinstance(t, str) else t['task'] for t in tasks]} "
                             f"on '{ep.name}' ({ep.served} at {ep.api_base}): {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    except Exception as exc:  # lm-eval's API client raises bare exceptions when the server fails
        raise RetentionError(f"lm-eval failed on '{ep.name}' ({ep.served} at {ep.api_base}): "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not out or not out.get("results"):
        raise RetentionError(f"lm-eval returned no results for '{ep.name}'")
    results: dict[str, Any] = out
    return results


def _rows(run_id: str, ep: Endpoint, out: dict[str, Any], backend: str, settings: dict[str, Any]
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """lm-eval's output as ``retention`` rows (one per task × metric × filter) and per-document rows."""
    summary, docs = [], []
    created = now()
    version = _lm_eval_version()
    for task, res in out["results"].items():
        higher = out.get("higher_is_better", {}).get(task, {})
        n = (out.get("n-samples", {}).get(task) or {}).get("effective")
        for key, value in res.items():
            if "," not in key or "_stderr," in key or not isinstance(value, (int, float)):
                continue
            metric, filt = key.split(",", 1)
            stderr = res.get(f"{metric}_stderr,{filt}")
            summary.append({
                "run_id": run_id, "model": ep.name, "model_ref": ep.served, "task": task, "metric": metric,
                "filter": filt, "value": float(value),
                "stderr": float(stderr) if isinstance(stderr, (int, float)) else None,
                "n": n, "higher_is_better": higher.get(metric), "backend": backend, "lm_eval_version": version,
                "config": to_json(redact({"task": out.get("configs", {}).get(task), **settings})),
                "created_at": created})
        for s in out.get("samples", {}).get(task, []):
            response = s.get("filtered_resps")
            response = response[0] if isinstance(response, list) and len(response) == 1 else response
            for metric in s.get("metrics", []):
                value = s.get(metric)
                if isinstance(value, (int, float, np.floating, np.integer, bool)):
                    docs.append({"run_id": run_id, "model": ep.name, "task": task, "doc_id": int(s["doc_id"]),
                                 "metric": metric, "filter": s.get("filter") or "none", "value": float(value),
                                 "target": str(s.get("target")), "response": to_json(response)})
    return summary, docs


@dataclass(frozen=True)
class RetentionPlan:
    """A checked retention section: lm-eval's task arguments and the two endpoints, keys present."""

    tasks: list[str | dict[str, Any]]
    include: list[str]
    endpoints: tuple[Endpoint, Endpoint]  # baseline, candidate


def plan_retention(loaded: LoadedSuite) -> RetentionPlan:
    """Check everything the retention check needs before any model is called (extra, task files, keys)."""
    pair = loaded.suite.retention_pair()
    if pair is None:
        raise ConfigError("the suite has no 'retention' section", file=str(loaded.path), key="retention")
    require("lm_eval", "lm-eval")
    tasks, include = task_specs(loaded)
    baseline, candidate = (endpoint(loaded, name) for name in pair)
    for ep in (baseline, candidate):
        _key(loaded, ep)
    return RetentionPlan(tasks, include, (baseline, candidate))


def run_retention(loaded: LoadedSuite, store: Store, run_id: str, plan: RetentionPlan | None = None,
                  live: dict[str, tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """Run the suite's retention tasks on its baseline and candidate; store and return the summary rows.

    ``live``: the running servers of launch-mode models (see :func:`endpoint`).
    """
    plan = plan or plan_retention(loaded)
    if live:
        plan = RetentionPlan(plan.tasks, plan.include, tuple(endpoint(loaded, ep.name, live)  # type: ignore[arg-type]
                                                             for ep in plan.endpoints))
    spec = loaded.suite.retention
    assert spec is not None
    settings = {"limit": spec.limit, "num_fewshot": spec.num_fewshot, "backend": spec.backend,
                "model_args": spec.model_args, "tasks": spec.tasks}
    results: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for ep in plan.endpoints:  # evaluate both before storing either: a failure leaves the store as it was
        results[ep.name] = _rows(run_id, ep, evaluate_endpoint(loaded, ep, plan.tasks, plan.include), spec.backend,
                                 {**settings, "served_model": ep.served, "api_base": ep.api_base})
    for name, (summary, docs) in results.items():
        store.replace_retention(run_id, name, summary, docs)
    return [row for summary, _ in results.values() for row in summary]


