"""What the dev server answers: scripted replies (:class:`Reply`), regex rules per model
(:class:`RuleResponder`, loadable from a JSON/YAML rules file), an echo responder, and the synthetic
token logprobs a reply carries (a chosen probability for the first token, alternatives that sum below 1).

Tokens: :func:`tokenize` is a deterministic regex tokenizer, not a real BPE: a word or a single
punctuation character, each carrying the whitespace before it (as GPT BPE attaches the leading space),
plus trailing whitespace; joined, the tokens give back the text exactly. It counts ``usage``, cuts the
reply at ``max_tokens`` (finish_reason ``length``) and defines the logprob tokens. A chat prompt counts
the tokens of all message contents (no chat-template overhead).

Logprobs: the first reply token gets ``ln(confidence)`` of its :class:`Reply`, every later token
``ln(0.99)``. ``top_logprobs: k`` lists the chosen token first, then k-1 alternatives (the reply's
``alternatives`` for the first token, generic tokens otherwise) sharing the remaining mass (1/2, 1/4, ...
of it), so the probabilities never sum above 1. A probability of 0 is written as -9999.0, as vLLM does.

Replies: a *responder* maps the request JSON to a :class:`Reply` (a ``str``, or an awaitable of either,
is accepted too). :class:`RuleResponder` picks the first matching regex rule, optionally per requested
model, so one server plays several models; :class:`EchoResponder` returns the last user message.

Rules file (JSON or YAML), loaded by :meth:`RuleResponder.from_file` and the CLI's ``--rules``::

    models:                       # the served model names; absent or empty: any name is served
      frontier:
        rules:
          - {pattern: "FREE|won \\\\$", reply: spam, confidence: 0.97, alternatives: [ham], delay_ms: 5}
          - {pattern: "label: (\\\\w+)", reply: "\\\\1"}   # \\1 = the pattern's first group
        default: {reply: ham, confidence: 0.8}
      tuned: {rules: [{pattern: "Invoice", reply: spam, confidence: 0.55}]}
    default_model:                # shared by all models: its rules after a model's own, then its default
      rules: []
      default: {reply: ham}
    faults: [{kind: status, status: 429, retry_after: 1, times: 2}]   # optional, see evalkit.testing.faults

A pattern is searched (``re.search``, DOTALL | IGNORECASE) in the request's message contents joined by
newlines (or the ``prompt``). Order: the model's rules, the shared rules, the model's default, the
shared default. A reply may be written as a plain string instead of a mapping.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

_TOKEN_RE = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")


_LATER_TOKEN_P = 0.99


_GENERIC_ALTERNATIVES = ("\n", " the", ".", ",", " a", " and", " I", " to", " of", " is", " in", " it",
                         " not", " yes", " no", ":", " that", " this", " for", " on")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into deterministic pseudo-tokens; ``"".join(tokenize(t)) == t``."""
    return _TOKEN_RE.findall(text)


@dataclass
class Reply:
    """What the model answers: ``confidence`` is the probability of the first token (e.g. the label)."""

    text: str
    confidence: float = 0.9
    alternatives: list[str] = field(default_factory=list)
    delay_s: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"Reply.confidence must be in [0, 1], got {self.confidence}")

    @classmethod
    def from_spec(cls, spec: str | dict[str, Any]) -> Reply:
        """``"text"`` or ``{"reply"|"text", "confidence", "alternatives", "delay_ms"}``."""
        if isinstance(spec, str):
            return cls(spec)
        delay_ms = spec.get("delay_ms")
        return cls(text=str(spec.get("reply", spec.get("text", ""))), confidence=float(spec.get("confidence", 0.9)),
                   alternatives=[str(a) for a in spec.get("alternatives", [])],
                   delay_s=None if delay_ms is None else float(delay_ms) / 1000.0)


Responder = Callable[[dict[str, Any]], "Reply | str | Awaitable[Reply | str]"]


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal parts: only the text parts count
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def request_text(body: dict[str, Any]) -> str:
    """The text rules are matched against: message contents joined by newlines, or the prompt."""
    messages = body.get("messages")
    if isinstance(messages, list):
        return "\n".join(_content_text(m.get("content")) for m in messages if isinstance(m, dict))
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else "\n".join(p for p in prompt or () if isinstance(p, str))


@dataclass
class Rule:
    """``pattern`` (searched with DOTALL | IGNORECASE) → ``reply``; ``\\1`` in the reply expands groups."""

    pattern: str
    reply: Reply | str

    def __post_init__(self) -> None:
        self.reply = Reply.from_spec(self.reply) if isinstance(self.reply, str) else self.reply
        self._regex = re.compile(self.pattern, re.DOTALL | re.IGNORECASE)
        self._expands = "\\" in self.reply.text  # skip match.expand's template parsing when unused

    def match(self, text: str) -> Reply | None:
        """The reply when the pattern occurs in ``text``, else None."""
        m = self._regex.search(text)
        if m is None:
            return None
        assert isinstance(self.reply, Reply)
        return replace(self.reply, text=m.expand(self.reply.text)) if self._expands else self.reply

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Rule:
        """``{"pattern", "reply", "confidence", "alternatives", "delay_ms"}``."""
        return cls(str(spec["pattern"]), Reply.from_spec(spec))


class RuleResponder:
    """First matching rule wins: the requested model's rules, the shared ``rules``, then the defaults."""

    def __init__(self, rules: Sequence[Rule] = (), default: Reply | str = "OK",
                 per_model: dict[str, list[Rule]] | None = None,
                 model_defaults: dict[str, Reply] | None = None) -> None:
        self.rules = list(rules)
        self.default = Reply(default) if isinstance(default, str) else default
        self.per_model = dict(per_model or {})
        self.model_defaults = dict(model_defaults or {})

    def content_identity(self) -> str:
        """A hash of every reply this responder can give (delays left out: they do not change an answer)."""
        def reply(r: Reply | str) -> list[Any]:
            r = Reply(r) if isinstance(r, str) else r
            return [r.text, r.confidence, r.alternatives]

        def rules(rs: Sequence[Rule]) -> list[Any]:
            return [[r.pattern, reply(r.reply)] for r in rs]

        blob = json.dumps({"rules": rules(self.rules), "default": reply(self.default),
                           "per_model": {m: rules(rs) for m, rs in self.per_model.items()},
                           "model_defaults": {m: reply(r) for m, r in self.model_defaults.items()}},
                          sort_keys=True)
        return "rules:" + hashlib.sha256(blob.encode()).hexdigest()

    @property
    def models(self) -> list[str]:
        """The model names this responder was configured for (empty: it answers any name)."""
        return list(dict.fromkeys([*self.per_model, *self.model_defaults]))

    def __call__(self, body: dict[str, Any]) -> Reply:
        text = request_text(body)
        model = body.get("model")
        own: Sequence[Rule] = self.per_model.get(model, ()) if isinstance(model, str) else ()
        for rule in (*own, *self.rules):
            reply = rule.match(text)
            if reply is not None:
                return reply
        return self.model_defaults.get(model, self.default) if isinstance(model, str) else self.default

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuleResponder:
        """Build from the rules-file structure described in the module docstring."""
        shared = data.get("default_model") or {}
        models = data.get("models") or {}
        return cls(rules=[Rule.from_spec(r) for r in shared.get("rules", [])],
                   default=Reply.from_spec(shared["default"]) if "default" in shared else Reply("OK"),
                   per_model={name: [Rule.from_spec(r) for r in (spec or {}).get("rules", [])]
                              for name, spec in models.items()},
                   model_defaults={name: Reply.from_spec(spec["default"]) for name, spec in models.items()
                                   if spec and "default" in spec})

    @classmethod
    def from_file(cls, path: str | Path) -> RuleResponder:
        """Load a JSON or YAML rules file."""
        return cls.from_dict(load_rules_file(path))


def load_rules_file(path: str | Path) -> dict[str, Any]:
    """Parse a rules file (YAML is a superset of JSON, so one parser reads both)."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a rules file must be a mapping with 'models' and/or 'default_model'")
    return data


class EchoResponder:
    """Answers with the last user message (or the prompt), at confidence 0.9."""

    models: list[str] = []

    def content_identity(self) -> str:
        return "echo"

    def __call__(self, body: dict[str, Any]) -> Reply:
        for message in reversed(body.get("messages") or []):
            if isinstance(message, dict) and message.get("role") == "user":
                return Reply(_content_text(message.get("content")))
        return Reply(request_text(body))


def _logprob(p: float) -> float:
    return math.log(p) if p > 0.0 else -9999.0


def _alternatives(token: str, p: float, preferred: Sequence[str], n: int) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    if n <= 0:
        return out
    seen = {token}
    candidates = [t[0] for t in map(tokenize, preferred) if t] + list(_GENERIC_ALTERNATIVES)
    candidates += [f"<alt{i}>" for i in range(n)]  # never run short, whatever k is asked for
    rest = 1.0 - p
    for cand in candidates:
        if cand in seen:
            continue
        seen.add(cand)
        out.append((cand, _logprob(rest * 0.5 ** (len(out) + 1))))
        if len(out) == n:
            break
    return out


def _token_probs(tokens: Sequence[str], reply: Reply, k: int, first: int
                 ) -> list[tuple[str, float, list[tuple[str, float]]]]:
    """(token, logprob, [(alt, logprob)...]) per token; ``first`` is the index of tokens[0] in the reply."""
    out = []
    for i, tok in enumerate(tokens, start=first):
        p = reply.confidence if i == 0 else _LATER_TOKEN_P
        lp = _logprob(p)
        out.append((tok, lp, [(tok, lp), *_alternatives(tok, p, reply.alternatives if i == 0 else (), k - 1)]))
    return out


def chat_logprobs(tokens: Sequence[str], reply: Reply, k: int, first: int = 0) -> dict[str, Any]:
    def entry(tok: str, lp: float) -> dict[str, Any]:
        return {"token": tok, "logprob": lp, "bytes": list(tok.encode("utf-8"))}

    return {"content": [{**entry(tok, lp), "top_logprobs": [entry(t, x) for t, x in tops] if k > 0 else []}
                        for tok, lp, tops in _token_probs(tokens, reply, k, first)]}


def legacy_logprobs(tokens: Sequence[str], reply: Reply, k: int, first: int = 0, offset: int = 0
                     ) -> dict[str, Any]:
    rows = _token_probs(tokens, reply, max(k, 1), first)
    offsets = []
    for tok in tokens:
        offsets.append(offset)
        offset += len(tok)
    return {"tokens": list(tokens), "token_logprobs": [lp for _, lp, _ in rows],
            "top_logprobs": [dict(tops) for _, _, tops in rows], "text_offset": offsets}


def cut_reply(reply_text: str, body: dict[str, Any]) -> tuple[list[str], str]:
    """Reply tokens after ``stop`` and ``max_tokens``, and the finish_reason."""
    stop = body.get("stop")
    for s in [stop] if isinstance(stop, str) else stop or ():
        if s and s in reply_text:
            reply_text = reply_text[:reply_text.index(s)]
    tokens = tokenize(reply_text)
    limit = body.get("max_completion_tokens")
    limit = body.get("max_tokens") if limit is None else limit
    if isinstance(limit, int) and 0 <= limit < len(tokens):
        return tokens[:limit], "length"
    return tokens, "stop"


def wanted_logprobs(body: dict[str, Any], chat: bool) -> int | None:
    """How many top alternatives were asked for; None: no logprobs at all."""
    if chat:
        return int(body.get("top_logprobs") or 0) if body.get("logprobs") else None
    k = body.get("logprobs")  # legacy: the number of alternatives, and 0 still asks for token logprobs
    return k if isinstance(k, int) and not isinstance(k, bool) else None


def sse_event(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
