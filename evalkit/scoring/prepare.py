"""A suite made ready to run or to score: data read, samples chosen, prompts rendered, scorers loaded.

Everything that can be wrong with the suite, the data or the templates fails here, before any model
is called (``evalkit validate`` runs exactly this).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from evalkit.config.dataset import Dataset, load_dataset
from evalkit.config.prompts import PromptRenderer, RenderedSample
from evalkit.config.shards import Shard
from evalkit.config.suite import LoadedSuite
from evalkit.errors import ConfigError
from evalkit.scoring.judge import check_judge
from evalkit.scoring.pipeline import SampleScorer


@dataclass
class Prepared:
    """A suite made ready to run: data read, prompts rendered, scorers loaded."""

    loaded: LoadedSuite
    dataset: Dataset
    rendered: list[RenderedSample]
    scorer: SampleScorer
    models: list[str]
    null_targets: int = 0  # samples whose target is null (only with target.allow_null)


def prepare(loaded: LoadedSuite, models: list[str] | None = None, limit: int | None = None,
            shard: Shard | None = None, sample_ids: set[str] | None = None) -> Prepared:
    """Validate everything a run needs; raises before any model is called.

    ``shard`` keeps the part of the (limited) samples it holds; ``sample_ids`` keeps exactly those
    samples (a resumed run: the ones it was started with).
    """
    suite = loaded.suite
    chosen = list(suite.models)
    if models:
        unknown = [m for m in models if m not in suite.models]
        if unknown:
            raise ConfigError(f"--model {unknown[0]!r} is not in the suite; models are {chosen}",
                              file=str(loaded.path), key="models")
        chosen = [m for m in chosen if m in models]
    dataset = load_dataset(loaded.resolve(suite.dataset.path), suite.dataset)
    samples = dataset.samples[:limit] if limit else dataset.samples
    if shard is not None:
        samples = [x for x in samples if shard.holds(x.id)]
        if not samples:
            raise ConfigError(f"--shard {shard} holds none of the {len(dataset.samples)} samples; use fewer shards",
                              file=str(loaded.path))
    if sample_ids is not None:
        samples = [x for x in samples if x.id in sample_ids]
    _check_allow_null(loaded)
    scorer = SampleScorer(loaded)
    rendered = PromptRenderer(loaded).render_all(samples)
    nulls = _null_targets(loaded, rendered)
    check_judge(loaded, rendered)
    return Prepared(loaded, dataset, rendered, scorer, chosen, nulls)


def _check_allow_null(loaded: LoadedSuite) -> None:
    target, scoring = loaded.suite.target, loaded.suite.scoring
    if target is not None and target.allow_null and scoring.scorer != "custom":
        raise ConfigError(f"target.allow_null needs scoring.scorer: custom (the function decides what a null "
                          f"target means); '{scoring.scorer}' compares with a target value, so every null "
                          "target would be scored wrong", file=str(loaded.path), key="target.allow_null")


def _null_targets(loaded: LoadedSuite, rendered: list[RenderedSample]) -> int:
    """How many samples have a null target; an error naming the first unless target.allow_null."""
    target = loaded.suite.target
    if target is None or target.field is None:
        return 0
    nulls = [r for r in rendered if r.target is None or (isinstance(r.target, float) and math.isnan(r.target))]
    if nulls and not target.allow_null:
        more = f" (and {len(nulls) - 1} more)" if len(nulls) > 1 else ""
        raise ConfigError(f"sample '{nulls[0].sample.id}': target field '{target.field}' is null{more}; set "
                          "target.allow_null: true (with a custom scorer) if that is meant, or fix the data",
                          file=str(loaded.path), key="target.field")
    return len(nulls)
