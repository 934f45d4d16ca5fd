"""``evalkit run --ray``: the run's calls in Ray shards (Ray is imported only here, on demand)."""

from __future__ import annotations

import sys

import click

from evalkit.config.suite import LoadedSuite
from evalkit.engine.progress import Progress
from evalkit.engine.runner import RunSummary
from evalkit.errors import ConfigError


def run_on_ray(loaded: LoadedSuite, db_path: str, models: list[str] | None, limit: int | None, use_cache: bool,
               resume: str | None, progress: Progress, shard: str | None, address: str) -> RunSummary:
    if shard:
        raise ConfigError("--ray plans its own shards (run.ray.shards); leave out --shard")
    from evalkit.engine.ray_suite import run_suite_on_ray

    click.echo(f"ray: connecting to {address if address != 'auto' else 'RAY_ADDRESS or a local cluster'}", err=True)
    return run_suite_on_ray(loaded, db_path, models, limit, use_cache, resume, progress, sys.argv, address)


def several_endpoints_note(loaded: LoadedSuite, models: list[str] | None) -> list[str]:
    """Models that list several api_bases in a run without --ray: only the first endpoint is called."""
    return [f"model '{name}' lists {len(spec.api_bases)} endpoints (api_bases): a run without --ray calls only "
            f"the first; --ray runs one shard per endpoint"
            for name, spec in loaded.suite.models.items()
            if (models is None or name in models) and spec.api_bases and len(spec.api_bases) > 1]
