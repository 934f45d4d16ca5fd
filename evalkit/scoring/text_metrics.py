"""Reference-based text metrics for ``output.type: text``: token F1, ROUGE-L and chrF, each in [0, 1].

- ``token_f1``: the official SQuAD v1.1 evaluation's token-level F1 — both texts lower-cased, punctuation
  (``string.punctuation``) and the articles a / an / the removed, whitespace-tokenised; F1 of the bag of
  tokens they share (0 when they share none, an empty text included, as in v1.1).
- ``rouge_l``: ROUGE-L F-measure from Google's ``rouge-score`` package (``RougeScorer(["rougeL"])``, its
  default tokenizer: lower-cased ASCII letters and digits, no stemming) — the longest common subsequence
  of tokens. Its tokenizer drops every non-ASCII character: use ``chrf`` for other scripts.
- ``chrf``: sacrebleu's sentence-level chrF (character 6-grams, β = 2, sacrebleu's defaults), divided by 100.

Every text answer with a reference (a ``target``) gets all three, stored per row (``results.text_scores``)
and summarised as the metrics of the same names; ``scoring.scorer: token_f1 | rouge_l | chrf`` makes one
of them the row's quality.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from functools import lru_cache
from typing import Any

TEXT_METRICS = ("token_f1", "rouge_l", "chrf")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD v1.1 token-level F1 of ``prediction`` against ``reference``."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _rouge() -> Any:
    from rouge_score import rouge_scorer  # type: ignore[import-untyped]

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


@lru_cache(maxsize=1)
def _chrf() -> Any:
    from sacrebleu.metrics.chrf import CHRF

    return CHRF()


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (``rouge-score``)."""
    return float(_rouge().score(reference, prediction)["rougeL"].fmeasure)


def chrf(prediction: str, reference: str) -> float:
    """Sentence chrF (``sacrebleu``), scaled to [0, 1]."""
    return float(_chrf().sentence_score(prediction, [reference]).score) / 100.0


_FUNCTIONS = {"token_f1": token_f1, "rouge_l": rouge_l, "chrf": chrf}


def text_scores(prediction: Any, reference: Any) -> dict[str, float] | None:
    """All three metrics of an answer against its reference; None without a reference or an answer."""
    if prediction is None or reference is None:
        return None
    pred, ref = str(prediction), str(reference)
    return {name: min(1.0, max(0.0, fn(pred, ref))) for name, fn in _FUNCTIONS.items()}
