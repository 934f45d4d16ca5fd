"""Multi-label answers (``output.type: labels``) and the canonical class of a target.

A multi-label answer is a set of the suite's allowed labels, written either as a JSON list of strings
(the whole answer, a fenced block, or the first ``[...]`` in it) or as labels separated by commas (or
semicolons, or new lines). Each item is normalised as a single label is (:func:`normalise_label`) and
must name an allowed label; an unknown item, a non-string JSON item or an empty answer makes the
answer invalid (``schema_valid`` false). ``[]`` — an empty JSON list — is a valid answer: the empty
set. The parsed value is the list of the labels named, once each, in the order of ``output.labels``.

A target's *class* (``samples.target_label``) is its allowed label in the suite's spelling: the label
it names after the same normalisation; a target naming no allowed label keeps its own text (a class
of its own that no answer can hit). Multi-label targets are a list (or a text parsed like an answer)
and become a list of classes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from evalkit.scoring.parse import Parsed, normalise_label, parse_json

_SEPARATORS = re.compile(r"[,;\n]")
INVALID = "(invalid)"  # the predicted class of an answer that names no valid label (README, classification)


def _lookup(labels: list[str], case_sensitive: bool) -> dict[str, str]:
    return {normalise_label(label, case_sensitive): label for label in labels}


def _ordered(found: set[str], labels: list[str]) -> list[str]:
    return [label for label in labels if label in found]


def _items(text: str) -> tuple[list[Any] | None, str | None]:
    """The answer's items: a JSON list's, else the comma-separated parts; (None, why) when there are none."""
    stripped = text.strip()
    if not stripped:
        return None, "empty answer"
    if "[" in stripped:
        parsed = parse_json(stripped)
        if isinstance(parsed.value, list):
            return parsed.value, None
    parts = [p for p in (part.strip() for part in _SEPARATORS.split(stripped)) if p]
    if not parts:
        return None, "no label in the answer"
    return parts, None


def parse_labels(text: str, labels: list[str], case_sensitive: bool = False) -> Parsed:
    """The set of allowed labels a multi-label answer names (see the module docstring)."""
    items, why = _items(text)
    if items is None:
        return Parsed(None, why)
    by_norm = _lookup(labels, case_sensitive)
    found: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            return Parsed(None, f"the list holds {json.dumps(item)[:40]}, not a label")
        label = by_norm.get(normalise_label(item, case_sensitive))
        if label is None:
            return Parsed(None, f"{item[:40]!r} is not one of the labels {labels}")
        found.add(label)
    return Parsed(_ordered(found, labels))


def label_class(target: Any, labels: list[str], case_sensitive: bool = False) -> str | None:
    """The class of a single-label target: its allowed label, or its own text; None for a null target."""
    if target is None:
        return None
    text = target if isinstance(target, str) else json.dumps(target, ensure_ascii=False)
    return _lookup(labels, case_sensitive).get(normalise_label(text, case_sensitive), text)


def label_classes(target: Any, labels: list[str], case_sensitive: bool = False) -> list[str] | None:
    """The classes of a multi-label target (a list, or a text written like an answer); None for a null one."""
    if target is None:
        return None
    if isinstance(target, str):
        items, _ = _items(target)
        target = items or []
    if not isinstance(target, list):
        target = [target]
    by_norm = _lookup(labels, case_sensitive)
    known: set[str] = set()
    other: set[str] = set()
    for item in target:
        text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
        label = by_norm.get(normalise_label(text, case_sensitive))
        if label is None:
            other.add(text)
        else:
            known.add(label)
    return _ordered(known, labels) + sorted(other)


def target_class(kind: str, target: Any, labels: list[str] | None, case_sensitive: bool = False) -> Any:
    """``samples.target_label``: the class(es) of a label or labels target; None for other output types."""
    if kind == "label":
        return label_class(target, labels or [], case_sensitive)
    if kind == "labels":
        return label_classes(target, labels or [], case_sensitive)
    return None


def jaccard(answer: Any, target: Any) -> float:
    """|A ∩ T| / |A ∪ T| of two label lists; 1.0 when both are empty (the empty set answered exactly)."""
    if answer is None or target is None:
        return 0.0
    a, t = set(answer), set(target)
    union = a | t
    return 1.0 if not union else len(a & t) / len(union)
