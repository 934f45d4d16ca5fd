"""A suite made ready to run or to score: data read, samples chosen, prompts rendered, scorers loaded.

Everything that can be wrong with the suite, the data or the templates fails here, before any model
is called (``evalkit validate`` runs exactly this).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from evalkit.backends.constrain import build_constraint, wants_constraint
from evalkit.config.dataset import Dataset, load_dataset
from evalkit.config.fewshot import fewshot_turns
from evalkit.config.prompts import PromptRenderer, RenderedSample
from evalkit.config.shards import Shard
from evalkit.config.suite import LoadedSuite
from evalkit.errors import ConfigError
from evalkit.records import Constraint
from evalkit.scoring.judge import check_judge
from evalkit.scoring.labels import target_class
from evalkit.scoring.pipeline import SampleScorer
from evalkit.scoring.schema_refs import compile_schema


@dataclass
class Prepared:
    """A suite made ready to run: data read, prompts rendered, scorers loaded."""

    loaded: LoadedSuite
    dataset: Dataset
    rendered: list[RenderedSample]
    scorer: SampleScorer
    models: list[str]
    null_targets: int = 0  # samples whose target is null (only with target.allow_null)
    constraints: dict[str, Constraint] | None = None  # output.constrain: per constrained model
    shots: dict[str, list[dict[str, str]]] | None = None  # models.<name>.fewshot: turns before each prompt


def constraints_for(loaded: LoadedSuite, models: list[str]) -> dict[str, Constraint]:
    """Each constrained model's :class:`Constraint`; a ConfigError naming file, line and key for a model
    that cannot take it (checked at validate time, before any call)."""
    wanted = [m for m in models if wants_constraint(loaded, m)]
    if not wanted:
        return {}
    compiled = compile_schema(loaded) if loaded.suite.output.type == "json" else None
    schema, refs = (compiled.schema, compiled.documents) if compiled else (None, ())
    out = {m: build_constraint(loaded, m, schema, refs) for m in wanted}
    return {m: c for m, c in out.items() if c is not None}


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
    constraints = constraints_for(loaded, chosen)
    renderer = PromptRenderer(loaded)
    rendered = renderer.render_all(samples)
    out = suite.output
    if out.type in ("label", "labels"):  # each target's class, stored as samples.target_label
        rendered = [replace(r, target_label=target_class(out.type, r.target, out.labels, out.case_sensitive))
                    for r in rendered]
    nulls = _null_targets(loaded, rendered)
    check_judge(loaded, rendered)
    shots = {m: fewshot_turns(loaded, m, renderer, dataset.samples) for m in chosen}
    return Prepared(loaded, dataset, rendered, scorer, chosen, nulls, constraints, {m: t for m, t in shots.items() if t})


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
