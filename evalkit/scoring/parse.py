"""Turn a model's raw text into the answer the suite expects: a label, a JSON value or text.

Parsing never raises: an answer that cannot be parsed gives ``value=None`` and a reason, which the
scorers treat as wrong and the store keeps.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_EDGE_PUNCT = " \t\r\n.,;:!?\"'`*()[]{}<>"


@dataclass(frozen=True)
class Parsed:
    """The answer extracted from a model's text (``value``), or why there is none (``error``)."""

    value: Any
    error: str | None = None
    span: tuple[int, int] | None = None  # where in the raw text the answer was found


def normalise_label(text: str, case_sensitive: bool = False) -> str:
    """Unicode-normalised, trimmed of whitespace and edge punctuation; lower-cased unless asked."""
    norm = unicodedata.normalize("NFKC", text).strip(_EDGE_PUNCT)
    norm = re.sub(r"\s+", " ", norm)
    return norm if case_sensitive else norm.casefold()


def parse_label(text: str, labels: list[str], case_sensitive: bool = False) -> Parsed:
    """The label a free-text answer names.

    Accepted, in order: the whole answer is a label; its first line is; exactly one label appears
    in it as a whole word ("I think this is spam."). An answer naming two labels anywhere but alone
    on its first line is ambiguous and gets none.
    """
    by_norm = {normalise_label(label, case_sensitive): label for label in labels}
    whole = normalise_label(text, case_sensitive)
    if whole in by_norm:
        start = text.find(text.strip(_EDGE_PUNCT))
        return Parsed(by_norm[whole], span=(start, start + len(text.strip(_EDGE_PUNCT))))
    first_line = normalise_label(text.strip().split("\n", 1)[0], case_sensitive)
    if first_line in by_norm:
        return Parsed(by_norm[first_line], span=_find_span(text, by_norm[first_line], case_sensitive))
    flags = 0 if case_sensitive else re.IGNORECASE
    found = [label for norm, label in by_norm.items()
             if re.search(rf"(?<!\w){re.escape(norm)}(?!\w)", whole, flags)]
    if len(found) == 1:
        return Parsed(found[0], span=_find_span(text, found[0], case_sensitive))
    if len(found) > 1:
        return Parsed(None, f"ambiguous: the answer names several labels {sorted(found)}")
    preview = whole[:60] + ("…" if len(whole) > 60 else "")
    return Parsed(None, f"no label of {labels} in the answer {preview!r}")


def _find_span(text: str, label: str, case_sensitive: bool) -> tuple[int, int] | None:
    flags = 0 if case_sensitive else re.IGNORECASE
    m = re.search(rf"(?<!\w){re.escape(label)}(?!\w)", text, flags)
    return (m.start(), m.end()) if m else None


def parse_json(text: str) -> Parsed:
    """The JSON value in an answer: the whole text, a fenced block, or the first object/array."""
    stripped = text.strip()
    if not stripped:
        return Parsed(None, "empty answer")
    try:
        start = text.find(stripped[0])
        return Parsed(json.loads(stripped), span=(start, start + len(stripped)))
    except (json.JSONDecodeError, RecursionError):
        pass
    fence = _FENCE.search(text)
    if fence:
        try:
            return Parsed(json.loads(fence.group(1)), span=fence.span(1))
        except (json.JSONDecodeError, RecursionError):
            pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            value, end = decoder.raw_decode(text, match.start())
        except (json.JSONDecodeError, RecursionError):
            continue
        return Parsed(value, span=(match.start(), end))
    return Parsed(None, "no JSON value found in the answer")


def parse_output(kind: str, text: str, labels: list[str] | None = None,
                 case_sensitive: bool = False) -> Parsed:
    """Dispatch on the suite's output type."""
    if kind == "label":
        return parse_label(text, labels or [], case_sensitive)
    if kind == "json":
        return parse_json(text)
    return Parsed(text.strip(), span=(0, len(text)))


def get_path(value: Any, dotted: str) -> tuple[bool, Any]:
    """Follow a dotted path ("a.b.0.c") into parsed JSON; (found, value)."""
    current = value
    for part in dotted.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit() and -len(current) <= int(part) < len(current):
            current = current[int(part)]
        else:
            return False, None
    return True, current
