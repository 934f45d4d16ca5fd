"""Held-out overlap: which held-out inputs are in a model's training data, exactly or nearly.

- **Normalised text** (:func:`normalise`): Unicode NFKC, casefolded, punctuation and symbols removed
  (every character that is not a letter, digit or whitespace), runs of whitespace collapsed to one space, ends stripped. So
  ``"Hello,  World!"`` and ``"hello world"`` are the same text.
- **Exact duplicate**: same sha256 of the normalised text (:func:`content_hash`).
- **Near duplicate**: the Jaccard similarity of the two texts' sets of word ``NGRAM``-grams (shingles,
  over the normalised words; a text shorter than ``NGRAM`` words is one shingle) is at least
  ``NEAR_THRESHOLD``. Candidates come from MinHash signatures and LSH banding (``NUM_PERM`` permutations
  of datasketch's affine32 MinHash scheme, computed for all texts at once with numpy; ``LSH_BANDS`` bands of
  ``LSH_ROWS`` rows as in datasketch's ``MinHashLSH``, joined band by band on sorted arrays: a pair at
  Jaccard 0.5 becomes a candidate with probability 0.996, at 0.6 with 0.99997); each candidate's *exact*
  Jaccard is then computed from the shingle sets, and only that number decides and is reported.
  ``tests/test_heldout.py`` checks the signatures against ``datasketch.MinHash`` and the candidates against
  ``datasketch.MinHashLSH``.

The cost is about linear in the two set sizes (one MinHash per text, one LSH query per held-out text),
not the product of them: ``benchmarks/overlap_scale.py`` measures 10k × 10k against the naive pair loop.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

NGRAM = 3
NUM_PERM = 128
NEAR_THRESHOLD = 0.5
LSH_BANDS, LSH_ROWS = 42, 3    # a pair at Jaccard 0.5 is a candidate with probability 1 - (1 - 0.5**3)**42 = 0.996
EXAMPLES = 5                   # example pairs kept for messages and the report (all pairs are stored)
EXCERPT_CHARS = 160
_WHITESPACE = re.compile(r"\s+")
_PUNCTUATION = re.compile(r"[^\w\s]|_")   # anything not a letter, digit or whitespace


def normalise(text: str) -> str:
    """NFKC, casefold, punctuation removed, whitespace collapsed: the text duplicates are judged on."""
    folded = _PUNCTUATION.sub("", unicodedata.normalize("NFKC", text).casefold())
    return _WHITESPACE.sub(" ", folded).strip()


def content_hash(text: str) -> str:
    """sha256 of the normalised text: equal for texts that differ only in case, punctuation or spacing."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


def shingles_of(normalised: str, n: int = NGRAM) -> set[str]:
    """One text's word n-grams as strings (the plain definition :class:`Shingled` vectorises)."""
    words = normalised.split(" ") if normalised else []
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


class Shingled:
    """Word n-gram codes of many normalised texts at once (numpy), and their MinHash signatures.

    Words get integer ids (``id + 1``; 0 pads a text shorter than n words to one n-gram); an n-gram's
    code is its ids in base V (V = distinct words + 1), exact while V**n fits 64 bits (V < 2**21 for
    n = 3) and a wrapping mix beyond. Its 32-bit hash (the code's two halves xor-ed) feeds MinHash.
    """

    def __init__(self, texts: Sequence[str], n: int = NGRAM, vocab: dict[str, int] | None = None) -> None:
        import numpy as np

        self.vocab = vocab if vocab is not None else {}
        ids: list[int] = []
        lengths: list[int] = []
        for text in texts:
            words = text.split(" ") if text else []
            for w in words:
                ids.append(self.vocab.setdefault(w, len(self.vocab) + 1))
            lengths.append(len(words))
        self.n = n
        self.n_texts = len(texts)
        self._ids = np.asarray(ids, dtype=np.uint64)
        self._lengths = np.asarray(lengths, dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(self._lengths)[:-1]]).astype(np.int64) \
            if len(lengths) else np.zeros(0, dtype=np.int64)
        self._codes: Any = None
        self._offsets: Any = None
        self._sets: dict[int, frozenset[int]] = {}

    def codes(self, base: int) -> tuple[Any, Any]:
        """All n-gram codes (uint64, text after text) and each text's first index into them (plus the end)."""
        import numpy as np

        if self._codes is not None:
            return self._codes, self._offsets
        counts = np.where(self._lengths >= self.n, self._lengths - self.n + 1, (self._lengths > 0).astype(np.int64))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        owner = np.repeat(np.arange(self.n_texts), counts)
        pos = np.arange(int(offsets[-1]), dtype=np.int64) - offsets[owner] + self._starts[owner]
        end = self._starts[owner] + self._lengths[owner]
        v = np.uint64(base)
        code = np.zeros(len(pos), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for k in range(self.n):
                inside = pos + k < end
                word = np.where(inside, self._ids[np.minimum(pos + k, max(0, len(self._ids) - 1))], 0) \
                    if len(self._ids) else np.zeros(len(pos), dtype=np.uint64)
                code = code * v + word.astype(np.uint64)
        self._codes, self._offsets = code, offsets
        return code, offsets

    def shingle_set(self, i: int, base: int) -> frozenset[int]:
        if i not in self._sets:
            codes, offsets = self.codes(base)
            self._sets[i] = frozenset(codes[offsets[i]:offsets[i + 1]].tolist())
        return self._sets[i]

    def signatures(self, base: int, num_perm: int = NUM_PERM, chunk: int = 1 << 16) -> Any:
        """MinHash signatures (texts × num_perm, uint32): datasketch's affine32 scheme (seed 1) applied to
        the n-grams' 32-bit hashes, vectorised over all texts; an empty text's row is all 0xFFFFFFFF."""
        import numpy as np
        from datasketch import MinHash  # type: ignore[import-untyped]
        from datasketch.minhash import _fmix  # type: ignore[import-untyped]

        a, b = MinHash(num_perm=num_perm, seed=1).permutations
        codes, offsets = self.codes(base)
        hashed = _fmix(((codes ^ (codes >> np.uint64(32))) & np.uint64(0xFFFFFFFF)).astype(np.uint32), 32)
        out = np.full((self.n_texts, num_perm), 0xFFFFFFFF, dtype=np.uint32)
        nonempty = np.flatnonzero(offsets[1:] > offsets[:-1])
        i = 0
        while i < len(nonempty):  # chunks of whole texts, about `chunk` n-grams each
            j = int(np.searchsorted(offsets[nonempty], offsets[nonempty[i]] + chunk, side="right"))
            j = max(j, i + 1)
            rows = nonempty[i:j]
            lo, hi = int(offsets[rows[0]]), int(offsets[rows[-1] + 1])
            perm = hashed[lo:hi, None] * a[None, :] + b[None, :]
            out[rows] = np.minimum.reduceat(perm, offsets[rows] - lo, axis=0)
            i = j
        return out


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


@dataclass(frozen=True)
class OverlapPair:
    """A held-out sample and the training example closest to it."""

    sample_id: str
    training_ref: str          # where in the training data: "line 12", or the example's id
    kind: str                  # exact | near
    jaccard: float             # exact Jaccard of the word n-gram sets (1.0 for an exact duplicate)
    heldout_excerpt: str
    training_excerpt: str


@dataclass
class OverlapReport:
    """What the check found for one (held-out set, training data) pair."""

    n_heldout: int
    n_training: int
    exact: int = 0             # held-out samples with an exact duplicate in the training data
    near: int = 0              # held-out samples with a near duplicate (and no exact one)
    candidates: int = 0        # LSH candidate pairs whose exact Jaccard was computed
    pairs: list[OverlapPair] = field(default_factory=list)   # one per overlapping held-out sample, worst first
    threshold: float = NEAR_THRESHOLD
    ngram: int = NGRAM
    num_perm: int = NUM_PERM

    @property
    def contaminated(self) -> bool:
        return bool(self.exact or self.near)

    @property
    def max_jaccard(self) -> float | None:
        return max((p.jaccard for p in self.pairs), default=None)

    def examples(self, k: int = EXAMPLES) -> list[OverlapPair]:
        return self.pairs[:k]

    def as_dict(self, all_pairs: bool = False) -> dict[str, Any]:
        return {"n_heldout": self.n_heldout, "n_training": self.n_training, "exact": self.exact,
                "near": self.near, "contaminated": self.contaminated, "max_jaccard": self.max_jaccard,
                "threshold": self.threshold, "ngram": self.ngram, "num_perm": self.num_perm,
                "candidates": self.candidates,
                "pairs": [asdict(p) for p in (self.pairs if all_pairs else self.examples())]}

    def summary(self) -> str:
        """One line: counts, the highest Jaccard and the first examples."""
        if not self.contaminated:
            return (f"no overlap: 0 exact and 0 near duplicates (word {self.ngram}-gram Jaccard >= "
                    f"{self.threshold}) among {self.n_heldout} held-out inputs and {self.n_training} training examples")
        shown = "; ".join(f"{p.sample_id} ~ {p.training_ref} ({p.kind}, Jaccard {p.jaccard:.2f})"
                          for p in self.examples(3))
        return (f"{self.exact} exact and {self.near} near duplicate(s) (word {self.ngram}-gram Jaccard >= "
                f"{self.threshold}) of {self.n_heldout} held-out inputs in {self.n_training} training examples, "
                f"e.g. {shown}")


def _excerpt(text: str) -> str:
    flat = _WHITESPACE.sub(" ", text).strip()
    return flat if len(flat) <= EXCERPT_CHARS else flat[:EXCERPT_CHARS - 1] + "…"


def _band_keys(sigs: Any, cols: range) -> Any:
    import numpy as np

    key = np.zeros(len(sigs), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in cols:
            key = key * np.uint64(0x9E3779B97F4A7C15) + sigs[:, c].astype(np.uint64)
    return key


def band_candidates(train_sigs: Any, held_sigs: Any, bands: int = LSH_BANDS, rows: int = LSH_ROWS) -> Any:
    """(held-out row, training row) pairs whose signatures agree on every row of at least one band: the
    candidate rule of datasketch's ``MinHashLSH(params=(bands, rows))``, as sorted-array joins per band
    instead of a Python dict insert and lookup per text and band (the same pairs, ``tests/test_heldout.py``
    checks it against MinHashLSH; a band's rows are mixed into one 64-bit key, so a rare key collision can
    add a candidate, never lose one — and every candidate is judged by its exact Jaccard anyway)."""
    import numpy as np

    empty = np.uint32(0xFFFFFFFF)
    t_ok = np.flatnonzero(train_sigs[:, 0] != empty) if len(train_sigs) else np.zeros(0, dtype=np.int64)
    h_ok = np.flatnonzero(held_sigs[:, 0] != empty) if len(held_sigs) else np.zeros(0, dtype=np.int64)
    found = []
    with np.errstate(over="ignore"):
        for band in range(bands):
            cols = range(band * rows, (band + 1) * rows)
            tk, hk = _band_keys(train_sigs[t_ok], cols), _band_keys(held_sigs[h_ok], cols)
            order = np.argsort(tk, kind="stable")
            tk_sorted = tk[order]
            lo = np.searchsorted(tk_sorted, hk, side="left")
            hi = np.searchsorted(tk_sorted, hk, side="right")
            counts = hi - lo
            if not counts.any():
                continue
            held_rows = np.repeat(np.arange(len(hk)), counts)
            starts = np.repeat(lo, counts)
            within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
            found.append(h_ok[held_rows].astype(np.int64) * len(train_sigs) + t_ok[order[starts + within]])
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.unique(np.concatenate(found))
    return np.stack([pairs // len(train_sigs), pairs % len(train_sigs)], axis=1)


def find_overlap(heldout: Sequence[tuple[str, str]], training: Sequence[tuple[str, str]],
                 threshold: float = NEAR_THRESHOLD) -> OverlapReport:
    """Compare held-out ``(sample_id, input text)`` with training ``(ref, input text)``."""
    report = OverlapReport(n_heldout=len(heldout), n_training=len(training), threshold=threshold)
    train_norm = [normalise(t) for _, t in training]
    by_hash: dict[str, int] = {}
    for j, text in enumerate(train_norm):
        if text:
            by_hash.setdefault(hashlib.sha256(text.encode()).hexdigest(), j)
    found: list[OverlapPair] = []
    rest: list[int] = []
    rest_norm: list[str] = []
    for i, (sample_id, text) in enumerate(heldout):
        norm = normalise(text)
        match = by_hash.get(hashlib.sha256(norm.encode()).hexdigest()) if norm else None
        if match is not None:
            found.append(OverlapPair(sample_id, training[match][0], "exact", 1.0, _excerpt(text),
                                     _excerpt(training[match][1])))
        else:
            rest.append(i)
            rest_norm.append(norm)
    report.exact = len(found)
    if rest and training:
        vocab: dict[str, int] = {}
        train_sh = Shingled(train_norm, vocab=vocab)
        held_sh = Shingled(rest_norm, vocab=vocab)
        base = len(vocab) + 1
        candidates = band_candidates(train_sh.signatures(base), held_sh.signatures(base))
        report.candidates = len(candidates)
        best: dict[int, tuple[float, int]] = {}
        for k, j in candidates.tolist():
            score = jaccard(held_sh.shingle_set(k, base), train_sh.shingle_set(j, base))
            if score >= threshold and (k not in best or score > best[k][0]):
                best[k] = (score, j)  # candidates come sorted by (k, j): ties keep the first training row
        for k, (score, j) in sorted(best.items()):
            sample_id, text = heldout[rest[k]]
            found.append(OverlapPair(sample_id, training[j][0], "near", round(score, 4),
                                     _excerpt(text), _excerpt(training[j][1])))
        report.near = len(found) - report.exact
    report.pairs = sorted(found, key=lambda p: (-p.jaccard, p.sample_id))
    return report
