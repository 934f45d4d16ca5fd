"""The LLM judge's side of scoring: what the judge is asked, and what its verdict means.

Pure functions, no calls (the calls are :mod:`evalkit.engine.judging`'s): the judge prompt for one
answer (pointwise) or for two answers side by side (pairwise), the parsing of a verdict into a quality
in [0, 1] — or into an error message, never a silent 0 — and the reading of people's scores
(``scoring.judge.human``). Everything about the suite's judge that can be wrong fails in
:func:`check_judge`, before any model is called.

The verdict must be one JSON object: ``{"reasoning": "...", "score": S}`` where ``S`` is an integer of the
scale (``[1, 5]``: 1..5) or ``"pass"`` / ``"fail"`` (``pass_fail``; ``true`` / ``false`` are read too);
pairwise ``{"reasoning": "...", "winner": "A" | "B" | "tie"}``. A fenced block or text around the
object is tolerated; a missing or out-of-scale value is an error naming what was wrong.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any

import jinja2

from evalkit.config.judge_spec import JudgeSpec
from evalkit.config.prompts import PromptRenderer, RenderedSample
from evalkit.config.resolve import missing_api_key
from evalkit.config.suite import LoadedSuite
from evalkit.errors import ConfigError

JUDGE_SYSTEM = ("You are a strict, impartial evaluator. You grade answers against the rubric you are given. "
                "Reply with one JSON object only, no other text.")
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
MAX_REASONING = 4000


@dataclass(frozen=True)
class Verdict:
    """One judge reply read: ``score`` in [0, 1] (pairwise: the candidate's 1 / 0.5 / 0), the value as the
    judge wrote it, its reasoning; or ``error`` (then ``score`` is None)."""

    score: float | None
    verdict: str | None
    reasoning: str | None
    error: str | None = None


def scale_words(spec: JudgeSpec) -> str:
    if spec.pass_fail:
        return '"score": "pass" or "fail"'
    low, high = spec.bounds()
    return f'"score": an integer from {low} (worst) to {high} (best)'


def _task_text(rendered: RenderedSample) -> str:
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in rendered.messages)


def pointwise_messages(spec: JudgeSpec, rendered: RenderedSample, answer: str,
                       reference: str | None) -> list[dict[str, str]]:
    """The judge's chat messages for one answer."""
    parts = [f"Rubric:\n{spec.rubric.strip()}", f"The task the model was given:\n<input>\n{_task_text(rendered)}\n</input>",
             f"The model's answer:\n<answer>\n{answer}\n</answer>"]
    if reference is not None:
        parts.append(f"A reference answer (for comparison; the answer need not match it word for word):\n"
                     f"<reference>\n{reference}\n</reference>")
    parts.append("Grade the answer by the rubric. Reply with exactly this JSON object: "
                 f'{{"reasoning": "<one or two sentences>", {scale_words(spec)}}}')
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def pairwise_messages(spec: JudgeSpec, rendered: RenderedSample, answer_a: str, answer_b: str,
                      reference: str | None) -> list[dict[str, str]]:
    """The judge's chat messages comparing two answers (A first)."""
    parts = [f"Rubric:\n{spec.rubric.strip()}", f"The task both models were given:\n<input>\n{_task_text(rendered)}\n</input>",
             f"Answer A:\n<answer_a>\n{answer_a}\n</answer_a>", f"Answer B:\n<answer_b>\n{answer_b}\n</answer_b>"]
    if reference is not None:
        parts.append(f"A reference answer:\n<reference>\n{reference}\n</reference>")
    parts.append("Which answer is better by the rubric? Their order says nothing about their quality. Reply with "
                 'exactly this JSON object: {"reasoning": "<one or two sentences>", "winner": "A" or "B" or "tie"}')
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def _object(raw: str) -> tuple[dict[str, Any] | None, str | None]:
    text = raw.strip()
    for candidate in (text, *(m.group(0) for m in [_OBJECT.search(text)] if m)):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value, None
    return None, f"judge reply is not a JSON object: {raw[:120]!r}"


def _reasoning(obj: dict[str, Any]) -> str | None:
    value = obj.get("reasoning")
    return None if value is None else str(value)[:MAX_REASONING]


def scale_value(spec: JudgeSpec, value: Any) -> float | None:
    """A score on the judge's scale mapped to [0, 1]; None when it is not a point of the scale."""
    if spec.pass_fail:
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and value.strip().lower() in ("pass", "fail"):
            return 1.0 if value.strip().lower() == "pass" else 0.0
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    low, high = spec.bounds()
    if value != int(value) or not low <= value <= high:
        return None
    return (float(value) - low) / (high - low)


def read_pointwise(spec: JudgeSpec, raw: str) -> Verdict:
    obj, error = _object(raw)
    if obj is None:
        return Verdict(None, None, None, error)
    if "score" not in obj:
        return Verdict(None, None, _reasoning(obj), f"judge reply has no 'score': {raw[:120]!r}")
    score = scale_value(spec, obj["score"])
    if score is None:
        return Verdict(None, str(obj["score"]), _reasoning(obj),
                       f"judge score {obj['score']!r} is not on the scale ({scale_words(spec)})")
    return Verdict(score, str(obj["score"]), _reasoning(obj))


def read_pairwise(raw: str, candidate_slot: str) -> Verdict:
    """A pairwise verdict from the candidate's side (in slot ``A`` or ``B``): win 1, tie 0.5, loss 0."""
    obj, error = _object(raw)
    if obj is None:
        return Verdict(None, None, None, error)
    winner = str(obj.get("winner", "")).strip().upper()
    if winner not in ("A", "B", "TIE"):
        return Verdict(None, None if "winner" not in obj else str(obj["winner"]), _reasoning(obj),
                       f"judge reply has no winner 'A', 'B' or 'tie': {raw[:120]!r}")
    score = 0.5 if winner == "TIE" else (1.0 if winner == candidate_slot else 0.0)
    return Verdict(score, "tie" if winner == "TIE" else winner, _reasoning(obj))


def human_score(spec: JudgeSpec, value: Any) -> float | None:
    """A person's score mapped like the judge's (pass_fail also reads 1/0 and yes/no); None: unlabelled.

    Raises ValueError for a value that is neither empty nor a point of the scale."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    if spec.pass_fail:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value in (0, 1):
            return float(value)
        if isinstance(value, str) and value.strip().lower() in ("yes", "no", "1", "0", "true", "false"):
            return 1.0 if value.strip().lower() in ("yes", "1", "true") else 0.0
    score = scale_value(spec, value)
    if score is None:
        raise ValueError(f"{value!r}, which is not a point of the judge's scale ({scale_words(spec)})")
    return score


class ReferenceRenderer:
    """``scoring.judge.reference`` compiled once, rendered per sample in the prompts' sandbox."""

    def __init__(self, loaded: LoadedSuite, spec: JudgeSpec) -> None:
        self._renderer = PromptRenderer(loaded)
        self._template: jinja2.Template | None = (
            self._renderer._compile(loaded, "scoring.judge.reference", spec.reference, None)
            if spec.reference else None)

    def render(self, rendered: RenderedSample) -> str | None:
        if self._template is None:
            return None
        return self._renderer._render(self._template, rendered.sample, "scoring.judge.reference")


def human_rater_model(config: dict[str, Any]) -> str | None:
    """The model whose rows people scored, from a stored run config: ``scoring.judge.human_model``, else
    ``gates.baseline``, else the suite's first model."""
    judge = ((config or {}).get("scoring") or {}).get("judge") or {}
    models = list((config or {}).get("models") or {})
    return judge.get("human_model") or ((config or {}).get("gates") or {}).get("baseline") or (
        models[0] if models else None)


def check_judge(loaded: LoadedSuite, rendered: list[RenderedSample]) -> None:
    """Everything about ``scoring.judge`` that can be checked before a call: its model's key, the pair a
    pairwise judge compares, the reference rendering for every sample, and people's scores."""
    spec = loaded.suite.scoring.judge
    if spec is None:
        return
    suite, where = loaded.suite, str(loaded.path)
    if spec.model in suite.models:
        extra = [k for k in ("api_base", "api_key_env", "cost") if getattr(spec, k) is not None]
        if extra or "params" in spec.model_fields_set:
            raise ConfigError(f"scoring.judge.model '{spec.model}' is a suite model, whose own entry is used: remove "
                              f"{(extra or ['params'])[0]}", file=where, key="scoring.judge")
        problem = missing_api_key(spec.model, suite.models[spec.model], where)
    else:
        problem = None if not spec.api_key_env or os.environ.get(spec.api_key_env) else ConfigError(
            f"environment variable {spec.api_key_env} is not set; export it with the judge's API key",
            file=where, key="scoring.judge.api_key_env")
    if problem is not None:
        raise problem
    if spec.human_model is not None and spec.human_model not in suite.models:
        raise ConfigError(f"scoring.judge.human_model '{spec.human_model}' is not one of the models "
                          f"{sorted(suite.models)}", file=where, key="scoring.judge.human_model")
    if spec.human_model is not None and spec.human is None:
        raise ConfigError("scoring.judge.human_model needs scoring.judge.human (the field with people's scores)",
                          file=where, key="scoring.judge.human_model")
    if spec.pairwise and not (suite.gates.baseline and suite.gates.candidate):
        raise ConfigError("scoring.judge.pairwise compares gates.candidate with gates.baseline: set both",
                          file=where, key="scoring.judge.pairwise")
    reference = ReferenceRenderer(loaded, spec)
    for r in rendered:
        reference.render(r)
        if spec.human is None:
            continue
        if spec.human not in r.sample.fields:
            raise ConfigError(f"sample '{r.sample.id}' has no field '{spec.human}' (scoring.judge.human); leave it "
                              "empty (null) on unlabelled samples", file=where, key="scoring.judge.human")
        try:
            human_score(spec, r.sample.fields[spec.human])
        except ValueError as exc:
            raise ConfigError(f"sample '{r.sample.id}': scoring.judge.human field '{spec.human}' holds {exc}",
                              file=where, key="scoring.judge.human") from None
