"""The held-out overlap check at scale: N held-out inputs against N training examples (default 10k × 10k),
through evalkit's check (normalised hash + vectorised MinHash + datasketch MinHashLSH + exact Jaccard of
the candidates), against the naive pair loop (exact Jaccard of every pair) measured in the same run.

The naive loop is timed on a sample of held-out rows against the whole training set and scaled to all
rows (it is linear in the rows timed); both find the planted near and exact copies, and on the timed
sample the LSH check finds every pair the naive loop finds (recall is printed).

    python benchmarks/overlap_scale.py [--n 10000] [--words 60] [--naive-rows 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalkit.analysis.overlap import NEAR_THRESHOLD, find_overlap, normalise, shingles_of  # noqa: E402


def corpus(n: int, words: int, planted: int, seed: int = 0) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Random texts over a 20k-word vocabulary; ``planted`` held-out rows are exact or edited training copies."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(20_000)]
    training = [(f"t{i}", " ".join(rng.choices(vocab, k=words))) for i in range(n)]
    heldout = [(f"h{i}", " ".join(rng.choices(vocab, k=words))) for i in range(n)]
    for k in range(planted):
        j = rng.randrange(n)
        text = training[j][1].split()
        if k % 2:  # a near copy: a few words edited
            for pos in rng.sample(range(words), 3):
                text[pos] = "edited"
        heldout[k] = (f"h{k}", " ".join(text).upper() if k % 2 == 0 else " ".join(text))
    return heldout, training


def naive(heldout: list[tuple[str, str]], training: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Every pair's exact Jaccard of word 3-gram sets: the O(n·m) loop."""
    train_sets = [(ref, shingles_of(normalise(t))) for ref, t in training]
    found = set()
    for sid, text in heldout:
        mine = shingles_of(normalise(text))
        for ref, theirs in train_sets:
            inter = len(mine & theirs)
            if inter and inter / (len(mine) + len(theirs) - inter) >= NEAR_THRESHOLD:
                found.add((sid, ref))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--words", type=int, default=60)
    parser.add_argument("--planted", type=int, default=50)
    parser.add_argument("--naive-rows", type=int, default=100, help="held-out rows the naive loop is timed on")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    heldout, training = corpus(args.n, args.words, args.planted)
    find_overlap(heldout[:10], training[:10])  # imports (datasketch pulls scipy) out of the timing
    started = time.perf_counter()
    report = find_overlap(heldout, training)
    lsh_s = time.perf_counter() - started

    rows = heldout[:args.naive_rows]
    started = time.perf_counter()
    truth = naive(rows, training)
    naive_sample_s = time.perf_counter() - started
    naive_s = naive_sample_s * len(heldout) / len(rows)
    found = {(p.sample_id, p.training_ref) for p in report.pairs if p.sample_id in {s for s, _ in rows}}
    recall = len(found & truth) / len(truth) if truth else 1.0
    result = {"n_heldout": len(heldout), "n_training": len(training), "words": args.words, "lsh_s": round(lsh_s, 3),
              "naive_rows_timed": len(rows), "naive_sample_s": round(naive_sample_s, 3),
              "naive_s_scaled": round(naive_s, 1), "speedup": round(naive_s / lsh_s, 1),
              "exact": report.exact, "near": report.near, "planted": args.planted, "candidates": report.candidates,
              "recall_on_sample": recall}
    print(f"overlap check {len(heldout):,} × {len(training):,} ({args.words} words each): {lsh_s:.2f} s "
          f"({report.exact} exact, {report.near} near of {args.planted} planted; {report.candidates:,} candidate pairs)")
    print(f"naive pair loop: {naive_sample_s:.2f} s for {len(rows)} held-out rows × {len(training):,} → "
          f"{naive_s:,.0f} s for all rows (scaled); evalkit is {naive_s / lsh_s:,.0f}× faster; "
          f"recall on the timed rows {recall:.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if report.exact + report.near >= args.planted and recall == 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
