"""Throughput and capacity metrics of a run's models: ``throughput_rps``, ``output_tokens_per_s`` (from the
stored rows and ``run_models.wall_s``), and, at the suite's projection volume (``run.volume_per_day``),
``monthly_cost_usd``, ``replicas_needed`` and ``break_even_requests_per_day`` (the formulas are in
:mod:`evalkit.analysis.costs`; the SQL definitions in docs/metrics.sql).

The same :func:`model_costs` serves the stored metric rows (the gate bounds them), ``evalkit show --json``
(its ``cost`` block, with the throughput's source), the report (at the volume it is asked for) and
``evalkit route``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from evalkit.analysis.costs import (
    DEFAULT_VOLUME_PER_DAY,
    MEASURED,
    always_on_monthly,
    break_even,
    monthly_cost,
    replicas_needed,
    sustainable_rps,
)

CAPACITY_METRICS = ("monthly_cost_usd", "replicas_needed", "break_even_requests_per_day")


def throughput(frame: pd.DataFrame, wall_s: float | None) -> tuple[float | None, float | None]:
    """(successful requests, completion tokens) per second of the model's wall time, over the rows this run
    actually requested (a cached answer took no wall time here). None: no wall time or no such row."""
    called = (frame["status"] == "ok").to_numpy() & ~frame["cache_hit"].fillna(False).to_numpy(dtype=bool)
    if not wall_s or wall_s <= 0 or not called.any():
        return None, None
    tokens = frame["completion_tokens"].to_numpy(dtype="float64", na_value=np.nan)[called]
    have = ~np.isnan(tokens)
    return float(called.sum()) / wall_s, (float(tokens[have].sum()) / wall_s if have.any() else None)


def carried_throughput(store: Any, run_id: str, model: str) -> tuple[str, float | None, float | None] | None:
    """A fully cached model measured no throughput here: (run, throughput_rps, output_tokens_per_s) of the run
    that requested the cached answers (same cache identity), from its stored metrics; None when this run
    requested any of the model's answers itself, or no origin with a measured throughput is stored."""
    if store.count_results(run_id, model, called_only=True) > 0:
        return None
    origin = store.cache_origin(run_id, model)
    if origin is None:
        return None
    values = {r["metric"]: r["value"] for r in store.metrics(origin[0]) if r["model"] == origin[1]}
    if values.get("throughput_rps") is None:
        return None
    # the origin requested those answers itself (cache_origin counts only rows that were not cache hits)
    return origin[0], values.get("throughput_rps"), values.get("output_tokens_per_s")


@dataclass(frozen=True)
class CostInputs:
    """What a model's monthly cost depends on: its suite ``cost`` block and its measured figures."""

    gpu_usd_per_hour: float | None = None
    requests_per_second: float | None = None  # stated
    min_replicas: int = 1
    cost_per_call: float | None = None  # mean stored cost_usd of a call (API price; GPU time when self-hosted)
    throughput_rps: float | None = None  # measured in the run
    goodput_rps: float | None = None  # highest rate meeting the SLO in a load sweep (wired in by the caller)
    throughput_run: str | None = None  # the run the throughput was measured in, when not this one (all cached)

    @property
    def self_hosted(self) -> bool:
        return self.gpu_usd_per_hour is not None


def cost_inputs(config: dict[str, Any] | str | None, metrics: dict[str, float | None],
                goodput_rps: float | None = None) -> CostInputs:
    """A model's inputs from its stored ``run_models.config`` and its metric values (``cost_per_1k``,
    ``throughput_rps``)."""
    parsed = json.loads(config) if isinstance(config, str) else (config or {})
    cost = parsed.get("cost") or {}
    per_1k = metrics.get("cost_per_1k")
    return CostInputs(gpu_usd_per_hour=cost.get("gpu_usd_per_hour"), requests_per_second=cost.get("requests_per_second"),
                      min_replicas=int(cost.get("min_replicas") or 1),
                      cost_per_call=None if per_1k is None else per_1k / 1000,
                      throughput_rps=metrics.get("throughput_rps"), goodput_rps=goodput_rps)


def model_cost(inputs: CostInputs, volume_per_day: float, baseline: CostInputs | None = None,
               baseline_name: str | None = None) -> dict[str, Any]:
    """The ``cost`` block of one model at a daily volume: basis, monthly cost, replicas and their throughput's
    source, and the break-even against the baseline (self-hosted candidates against a per-call baseline)."""
    out: dict[str, Any] = {
        "basis": "always-on" if inputs.self_hosted else "per-call", "volume_per_day": volume_per_day,
        "monthly_cost_usd": None, "replicas_needed": None, "min_replicas": inputs.min_replicas,
        "gpu_usd_per_hour": inputs.gpu_usd_per_hour, "cost_per_call": inputs.cost_per_call,
        "requests_per_second": None, "throughput_source": None, "baseline": baseline_name,
        "break_even_requests_per_day": None, "break_even_stays_cheaper_from": None, "break_even_note": None,
        "throughput_measured_in_run": None, "note": None}
    if not inputs.self_hosted:
        out["monthly_cost_usd"] = monthly_cost(None if inputs.cost_per_call is None else inputs.cost_per_call * 1000,
                                               volume_per_day)
        if inputs.cost_per_call is None:
            out["note"] = "no price: set models.<name>.cost"
        return out
    assert inputs.gpu_usd_per_hour is not None
    rps = sustainable_rps(inputs.requests_per_second, inputs.goodput_rps, inputs.throughput_rps)
    if rps is None:
        out["note"] = ("no throughput: this run requested no answer from the model (all cached?); state "
                       "cost.requests_per_second or run a load sweep")
        return out
    out["requests_per_second"], out["throughput_source"] = rps
    if rps[1] == MEASURED and inputs.throughput_run is not None:
        out["throughput_source"] = f"{MEASURED} (measured in run {inputs.throughput_run})"
        out["throughput_measured_in_run"] = inputs.throughput_run
    replicas = replicas_needed(volume_per_day, rps[0], inputs.min_replicas)
    out["replicas_needed"] = replicas
    out["monthly_cost_usd"] = always_on_monthly(inputs.gpu_usd_per_hour, replicas)
    if baseline is None:
        out["break_even_note"] = "no baseline (gates.baseline) to compare with"
    elif baseline.self_hosted or baseline.cost_per_call is None:
        out["break_even_note"] = f"the baseline {baseline_name} has no per-call price"
    else:
        found = break_even(baseline.cost_per_call, inputs.gpu_usd_per_hour, rps[0], inputs.min_replicas)
        out["break_even_requests_per_day"] = found.first
        out["break_even_stays_cheaper_from"] = found.stays_cheaper_from
        out["break_even_note"] = found.note
    return out


def model_costs(models: dict[str, CostInputs], baseline: str | None, volume_per_day: float) -> dict[str, dict[str, Any]]:
    """Every model's ``cost`` block at a daily volume; break-even against ``baseline`` (its own block has none)."""
    base = models.get(baseline) if baseline is not None else None
    return {name: model_cost(inputs, volume_per_day, None if name == baseline else base,
                             baseline if base is not None else None)
            for name, inputs in models.items()}


def projection(config: dict[str, Any] | None) -> tuple[float, str | None]:
    """(volume per day, baseline) of a run from its stored suite config: ``run.volume_per_day`` (default
    100,000) and ``gates.baseline``."""
    config = config or {}
    volume = (config.get("run") or {}).get("volume_per_day")
    return (float(volume) if volume is not None else float(DEFAULT_VOLUME_PER_DAY),
            (config.get("gates") or {}).get("baseline"))


def capacity_values(blocks: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """The metric values of the capacity metrics, per model."""
    return {name: {m: (None if b[m] is None else float(b[m])) for m in CAPACITY_METRICS} for name, b in blocks.items()}


def run_volume(store: Any, run_id: str) -> float:
    """The projection volume of a stored run: its suite's ``run.volume_per_day``."""
    run = store.get_run(run_id)
    return projection(json.loads(run["config"]) if isinstance(run.get("config"), str) else run.get("config"))[0]


def stored_inputs(store: Any, run_id: str, goodput: dict[str, float] | None = None,
                  values: dict[str, dict[str, float | None]] | None = None) -> dict[str, CostInputs]:
    """The cost inputs of a stored run's models. ``values``: their metric values (default: the stored ones);
    ``goodput``: per model, the highest request rate that met the SLO in a load sweep (default: the newest
    complete ``evalkit load`` sweep of the run's suite and model, ``Store.latest_goodput``). Every reader of a
    stored run's costs (metrics, show, report, route) comes through here."""
    if goodput is None:
        suite_name = str(store.get_run(run_id)["suite_name"])
        goodput = {}
        for m in store.run_models(run_id):
            found = store.latest_goodput(suite_name, m["model"])
            if found is not None:
                goodput[m["model"]] = found[0]
    if values is None:
        values = {}
        for row in store.metrics(run_id):
            values.setdefault(row["model"], {})[row["metric"]] = row["value"]
    inputs = {m["model"]: cost_inputs(m["config"], values.get(m["model"], {}), (goodput or {}).get(m["model"]))
              for m in store.run_models(run_id)}
    for model, found in inputs.items():
        carried = carried_throughput(store, run_id, model) if found.throughput_rps is not None else None
        if carried is not None:
            inputs[model] = replace(found, throughput_run=carried[0])
    return inputs


def stored_costs(store: Any, run_id: str, volume_per_day: float | None = None,
                 goodput: dict[str, float] | None = None,
                 values: dict[str, dict[str, float | None]] | None = None) -> dict[str, dict[str, Any]]:
    """The ``cost`` blocks of a stored run's models, at the suite's volume unless one is given, break-even
    against the suite's ``gates.baseline``."""
    run = store.get_run(run_id)
    volume, baseline = projection(json.loads(run["config"]) if isinstance(run.get("config"), str) else run.get("config"))
    return model_costs(stored_inputs(store, run_id, goodput, values), baseline,
                       volume if volume_per_day is None else volume_per_day)


def stored_cost_values(store: Any, run_id: str, values: dict[str, dict[str, float | None]],
                       goodput: dict[str, float] | None = None) -> dict[str, dict[str, float | None]]:
    """The capacity metric values of a run's models at the suite's volume, from their other metric values."""
    return capacity_values(stored_costs(store, run_id, None, goodput, values))


def served_monthly(inputs: CostInputs, volume_per_day: float) -> float | None:
    """A model's monthly cost when it serves this daily volume in a deployment; a model that serves nothing
    is not deployed and costs nothing (a router that escalates everything needs no small-model box)."""
    if volume_per_day <= 0:
        return 0.0
    value = model_cost(inputs, volume_per_day)["monthly_cost_usd"]
    return None if value is None else float(value)


def policy_monthly(style: str, share_escalated: float, small: CostInputs, large: CostInputs,
                   volume_per_day: float) -> float | None:
    """Monthly cost of a routing policy: a cascade's small model serves every request and the large one the
    escalated share; router-first splits the volume. Each side at its own cost basis (always-on or per call)."""
    small_volume = volume_per_day if style == "cascade" else volume_per_day * (1 - share_escalated)
    parts = (served_monthly(small, small_volume), served_monthly(large, volume_per_day * share_escalated))
    return None if parts[0] is None or parts[1] is None else parts[0] + parts[1]


def js_params(inputs: CostInputs) -> dict[str, Any]:
    """A model's cost inputs as report.js reads them (data-cost-params): the same formula in the browser."""
    rps = sustainable_rps(inputs.requests_per_second, inputs.goodput_rps, inputs.throughput_rps)
    return {"basis": "always-on" if inputs.self_hosted else "per-call", "gpu": inputs.gpu_usd_per_hour,
            "rps": None if rps is None else rps[0], "min_replicas": inputs.min_replicas,
            "cost_per_call": inputs.cost_per_call}
