"""Per-sample confidence for calibration metrics (Brier, ECE).

Two sources: a number the model states in its JSON answer (verbalised confidence), or the token
log-probabilities of the answer itself: the joint probability of the tokens that spell the chosen
label, the JSON field's value, or the whole answer. The joint probability is the model's probability
of producing exactly that answer, which is what its correctness is compared against.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from evalkit.scoring.builtin import to_number
from evalkit.scoring.parse import Parsed, get_path


def from_field(parsed: Any, path: str) -> float | None:
    """A stated confidence: in [0, 1], or a percentage in (1, 100] scaled down; else None."""
    found, value = get_path(parsed, path)
    number = to_number(value) if found else None
    if number is None or number < 0 or number > 100:
        return None
    return number / 100.0 if number > 1 else number


def _value_span(text: str, parsed: Parsed, path: str | None) -> tuple[int, int] | None:
    if path is None:
        return parsed.span
    key = path.split(".")[-1]
    decoder = json.JSONDecoder()
    start = parsed.span[0] if parsed.span else 0
    for m in re.finditer(rf'"{re.escape(key)}"\s*:\s*', text[start:]):
        begin = start + m.end()
        try:
            _, end = decoder.raw_decode(text, begin)
        except json.JSONDecodeError:
            continue
        if text[begin] == '"':  # score the string's characters, not its quotes
            return begin + 1, end - 1
        return begin, end
    return None


def from_logprobs(text: str, parsed: Parsed, logprobs: list[dict[str, Any]] | None,
                  json_field: str | None = None) -> float | None:
    """exp(sum of logprobs) of the tokens overlapping the answer's span in the generated text."""
    if not logprobs or parsed.value is None:
        return None
    tokens = [str(t.get("token", "")) for t in logprobs]
    # The tokens must spell the text, or offsets would not line up with what we parsed. Engines may add
    # tokens the text leaves out at its end (vLLM reports the end-of-turn token, e.g. <|im_end|>, and a
    # matched stop string): those lie past every span and are harmless.
    if not "".join(tokens).startswith(text):
        return None
    span = _value_span(text, parsed, json_field)
    if span is None or span[1] <= span[0]:
        return None
    total, offset, used = 0.0, 0, 0
    for token, entry in zip(tokens, logprobs):
        end = offset + len(token)
        if end > span[0] and offset < span[1] and token.strip():
            lp = entry.get("logprob")
            if lp is None or not math.isfinite(float(lp)):
                return None
            total += float(lp)
            used += 1
        offset = end
        if offset >= span[1]:
            break
    if used == 0:
        return None
    return min(1.0, math.exp(total))
