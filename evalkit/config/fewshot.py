"""Few-shot turns for ``models.<name>.fewshot``: examples from a training file, rendered with the suite's own
prompt and target, sent as user/assistant turns between the system message and the sample's prompt.

Chosen deterministically: the training rows ordered by ``sha256("<seed>:<id>")``, the first ``n`` taken
(label outputs with ``balanced``: one of each label in turn, in the order of ``output.labels``). Never from
the held-out set: a training file that shares a sample id with the held-out data is an error, and a row
whose rendered prompt equals a held-out sample's is passed over.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from evalkit.config.data_specs import DatasetSpec
from evalkit.config.dataset import Sample, load_dataset
from evalkit.config.prompts import PromptRenderer, RenderedSample
from evalkit.config.suite import LoadedSuite
from evalkit.errors import ConfigError

Turn = dict[str, str]


def _order(samples: list[Sample], seed: int) -> list[Sample]:
    return sorted(samples, key=lambda s: hashlib.sha256(f"{seed}:{s.id}".encode()).hexdigest())


def _answer(target: Any) -> str:
    return target if isinstance(target, str) else json.dumps(target)


def _pick(loaded: LoadedSuite, rendered: list[RenderedSample], n: int, balanced: bool) -> list[RenderedSample]:
    out = loaded.suite.output
    if not (balanced and out.type == "label" and out.labels):
        return rendered[:n]
    fold = (lambda t: t) if out.case_sensitive else str.casefold
    buckets = {fold(label): [r for r in rendered if fold(str(r.target)) == fold(label)] for label in out.labels}
    picked: list[RenderedSample] = []
    while len(picked) < n and any(buckets.values()):
        for bucket in buckets.values():
            if bucket and len(picked) < n:
                picked.append(bucket.pop(0))
    return picked


def fewshot_turns(loaded: LoadedSuite, model: str, renderer: PromptRenderer, heldout: list[Sample]) -> list[Turn]:
    """The user/assistant turns put before every prompt of ``model`` (none without ``fewshot``)."""
    spec = loaded.suite.models[model].fewshot
    if spec is None:
        return []
    key = f"models.{model}.fewshot.path"
    train = load_dataset(loaded.resolve(spec.path), DatasetSpec(path=spec.path, id=loaded.suite.dataset.id))
    held_ids = {s.id for s in heldout}
    shared = sorted(held_ids & {s.id for s in train.samples})
    if shared:
        raise ConfigError(f"{spec.path} shares {len(shared)} sample id(s) with the held-out set (e.g. '{shared[0]}'): "
                          "few-shot examples must come from training data only", file=str(loaded.path), key=key)
    held_prompts = {r.messages[-1]["content"] for r in renderer.render_all(heldout)}
    candidates = [r for r in renderer.render_all(_order(train.samples, spec.seed))
                  if r.target is not None and r.messages[-1]["content"] not in held_prompts]
    picked = _pick(loaded, candidates, spec.n, spec.balanced)
    if len(picked) < spec.n:
        raise ConfigError(f"{spec.path} has only {len(picked)} usable example(s) (with a target, not in the held-out "
                          f"set) for n: {spec.n}", file=str(loaded.path), key=key)
    turns: list[Turn] = []
    for r in picked:
        turns += [{"role": "user", "content": r.messages[-1]["content"]}, {"role": "assistant", "content": _answer(r.target)}]
    return turns


def with_turns(messages: list[dict[str, str]], turns: list[Turn]) -> list[dict[str, str]]:
    """The sample's messages with the few-shot turns between its system message (if any) and its prompt."""
    return [*messages[:-1], *turns, messages[-1]] if turns else messages
