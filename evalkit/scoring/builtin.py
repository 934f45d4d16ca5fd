"""Built-in per-sample quality functions. Each is pure and returns a quality in [0, 1]."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from evalkit.scoring.labels import jaccard, label_classes
from evalkit.scoring.parse import get_path, normalise_label

_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def label_match(answer: Any, target: Any, case_sensitive: bool = False) -> float:
    """1.0 when the parsed label equals the target label after normalisation.

    A multi-label answer (a list, ``output.type: labels``) scores the Jaccard similarity of its set and the
    target's (both normalised): 1.0 exactly when the sets are equal, so ``correct`` is the exact match.
    """
    if answer is None or target is None:
        return 0.0
    if isinstance(answer, list):
        norm = [normalise_label(str(a), case_sensitive) for a in answer]
        wanted = [normalise_label(t, case_sensitive) for t in label_classes(target, [], case_sensitive) or []]
        return jaccard(norm, wanted)
    return float(normalise_label(str(answer), case_sensitive) == normalise_label(str(target), case_sensitive))


def exact(answer: Any, target: Any) -> float:
    """1.0 when the answer equals the target exactly (strings compared after trimming).

    A JSON target (an object or a list) is compared as JSON: a text answer is parsed first, and key order
    and whitespace do not matter.
    """
    if answer is None:
        return 0.0
    if isinstance(target, (dict, list)) and isinstance(answer, str):
        answer = _as_json(answer)
    if isinstance(answer, (dict, list)) and isinstance(target, str):
        target = _as_json(target)
    if isinstance(answer, str) and isinstance(target, str):
        return float(answer.strip() == target.strip())
    return float(answer == target)


def _comparable(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return normalise_label(value)
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    return value


def _as_json(target: Any) -> Any:
    if isinstance(target, str):
        try:
            return json.loads(target)
        except json.JSONDecodeError:
            return target
    return target


def json_fields(answer: Any, target: Any, fields: list[str]) -> float:
    """Fraction of the listed fields whose value equals the target's.

    Strings compare after Unicode normalisation, trimming and case folding; numbers compare by
    value (3 == 3.0); a field missing on either side counts as a mismatch.
    """
    if answer is None or not fields:
        return 0.0
    target = _as_json(target)
    hits = 0
    for path in fields:
        found_a, a = get_path(answer, path)
        found_t, t = get_path(target, path)
        if found_a and found_t and _comparable(a) == _comparable(t):
            hits += 1
    return hits / len(fields)


def to_number(value: Any) -> float | None:
    """A float from a JSON number or the first number written in a text; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        m = _NUMBER.search(value.replace("\u2212", "-"))
        if m:
            try:
                return float(m.group(0).replace(",", "."))
            except ValueError:
                return None
    return None


def numeric(answer: Any, target: Any, field: str | None = None, tolerance: float = 0.0,
            relative_tolerance: float = 0.0) -> float:
    """1.0 when the answer's number is within the absolute or relative tolerance of the target."""
    if field is not None:
        found, answer = get_path(answer, field)
        if not found:
            return 0.0
    a, t = to_number(answer), to_number(target)
    if a is None or t is None:
        return 0.0
    return float(math.isclose(a, t, abs_tol=tolerance, rel_tol=relative_tolerance))
