"""The dev server playing an LLM judge: :class:`JudgeResponder` answers the judge's requests with a JSON
verdict chosen by the answer the prompt holds, and passes every other model's request to another
responder (so one server plays the judged models and their judge).

Grades are ``(pattern, verdict)`` pairs searched (DOTALL | IGNORECASE) in the judged answer, the text
between ``<answer>`` and ``</answer>`` of the judge prompt (:mod:`evalkit.scoring.judge`); the first match
wins, else ``default``. A verdict is a score of the scale (``4``, ``"pass"``), or :class:`Raw` text sent as
it is (a judge that garbles its reply). Pairwise prompts (``<answer_a>``, ``<answer_b>``) are decided by
the two answers' grades (pass = 1, fail = 0): the higher wins; equal grades are a ``"tie"``, or — with
``tie_goes_to="A"`` — a win for whichever answer is shown first (a judge with a position bias)::

    JudgeResponder([("refund", 5), ("sorry", 2), ("GARBLE", Raw("I think it is fine"))], default=3,
                   judge_model="judge-1", others=RuleResponder.from_dict(rules))
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evalkit.testing.replies import EchoResponder, Reply, Responder, request_text


@dataclass(frozen=True)
class Raw:
    """A judge reply sent exactly as written (not a JSON verdict)."""

    text: str


Verdict = int | str | Raw


def _between(text: str, tag: str) -> str | None:
    match = re.search(f"<{tag}>\n(.*?)\n</{tag}>", text, re.DOTALL)
    return match.group(1) if match else None


class JudgeResponder:
    """Verdicts for ``judge_model``'s requests; ``others`` answers the rest."""

    def __init__(self, grades: Sequence[tuple[str, Verdict]], default: Verdict = 3, *, judge_model: str = "judge",
                 others: Responder | None = None, tie_goes_to: str = "tie") -> None:
        self.grades = [(re.compile(p, re.DOTALL | re.IGNORECASE), v) for p, v in grades]
        self.default = default
        self.judge_model = judge_model
        self.others: Responder = others if others is not None else EchoResponder()
        self.tie_goes_to = tie_goes_to

    def grade(self, answer: str) -> Verdict:
        for pattern, verdict in self.grades:
            if pattern.search(answer):
                return verdict
        return self.default

    @staticmethod
    def _number(verdict: Verdict) -> float:
        if isinstance(verdict, str):
            return 1.0 if verdict.lower() == "pass" else 0.0
        return float(verdict) if isinstance(verdict, int) else -1.0

    def _reply(self, text: str) -> str:
        a, b = _between(text, "answer_a"), _between(text, "answer_b")
        if a is not None and b is not None:
            ga, gb = self.grade(a), self.grade(b)
            for g in (ga, gb):
                if isinstance(g, Raw):
                    return g.text
            na, nb = self._number(ga), self._number(gb)
            winner = "A" if na > nb else "B" if nb > na else self.tie_goes_to
            return json.dumps({"reasoning": f"A graded {ga}, B graded {gb}", "winner": winner})
        answer = _between(text, "answer")
        verdict = self.grade(answer if answer is not None else text)
        if isinstance(verdict, Raw):
            return verdict.text
        return json.dumps({"reasoning": f"graded {verdict} by the scripted rubric", "score": verdict})

    def __call__(self, body: dict[str, Any]) -> Any:
        if body.get("model") == self.judge_model:
            return Reply(self._reply(request_text(body)), confidence=0.99)
        return self.others(body)

    @property
    def models(self) -> list[str]:
        own = list(getattr(self.others, "models", None) or [])
        return [*own, self.judge_model] if own else []

    def content_identity(self) -> str:
        describe = getattr(self.others, "content_identity", None)
        blob = json.dumps({"grades": [[p.pattern, repr(v)] for p, v in self.grades], "default": repr(self.default),
                           "judge": self.judge_model, "tie": self.tie_goes_to,
                           "others": describe() if callable(describe) else id(self.others)}, sort_keys=True)
        return "judge:" + hashlib.sha256(blob.encode()).hexdigest()
