"""The suite's ``run.ray`` section: how ``evalkit run --ray`` splits a run into shards on a Ray cluster."""

from __future__ import annotations

from pydantic import Field

from evalkit.config.model_specs import Strict


class RaySpec(Strict):
    """Shards on a Ray cluster (used only by ``evalkit run --ray``; a plain run ignores it)."""

    shards: int | None = Field(
        None, ge=1, le=4096, description="How many shards (Ray actors) the samples are split into, by the stable "
        "hash of the sample id. Default: the longest api_bases list of the models run (one shard per endpoint), "
        "else the cluster's GPUs / num_gpus when the shards need GPUs, else 1.")
    num_cpus: float = Field(1.0, ge=0, description="CPUs Ray reserves for each shard.")
    num_gpus: float | None = Field(
        None, ge=0, description="GPUs Ray reserves for each shard. Default: the tensor-parallel size "
        "(--tensor-parallel-size in server_args, else 1) of the run's launch-mode vLLM models, so each launched "
        "replica starts beside its own GPU; 0 when the run launches none.")
    resources: dict[str, float] = Field(
        default_factory=dict, description="Custom Ray resources each shard needs, e.g. {accelerator_type:A100: 0.01}.")
    max_restarts: int = Field(
        3, ge=0, le=100, description="How often Ray restarts a shard whose worker died; the restarted shard runs "
        "only what the driver has not received. A shard that dies more often leaves its models incomplete "
        "(finish it with --resume).")
