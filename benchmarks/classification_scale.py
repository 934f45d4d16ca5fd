"""Classification metrics at scale: one model's macro/weighted-F1 with bootstrap CIs, and the paired deltas of two.

    .venv/bin/python benchmarks/classification_scale.py [--samples 100000] [--classes 18] [--resamples 1000]

Synthetic imbalanced labels (class shares falling geometrically by 100x), answers right 80% / 75% of the time,
3% invalid. Prints the wall time of each step; nothing is stored.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

from evalkit.analysis.classification import model_values, paired_values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=18)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = [f"class_{i}" for i in range(args.classes)]
    shares = np.geomspace(1, 0.01, args.classes)
    targets = rng.choice(labels, args.samples, p=shares / shares.sum())
    answers = {side: np.where(rng.random(args.samples) < right, targets, rng.choice(labels, args.samples))
               for side, right in (("b", 0.8), ("c", 0.75))}
    target_json = [json.dumps(t) for t in targets]
    rows = pd.DataFrame({"target_label_b": target_json, "target_label_c": target_json,
                         **{f"parsed_{s}": [json.dumps(a) for a in v] for s, v in answers.items()},
                         "schema_valid_b": rng.random(args.samples) > 0.03, "schema_valid_c": True})
    one = rows.rename(columns={"target_label_b": "target_label", "parsed_b": "parsed", "schema_valid_b": "schema_valid"})
    start = time.perf_counter()
    values = model_values(one, "label", labels, 0, "m", args.resamples)
    print(f"one model, {args.samples:,} rows, {args.classes} classes, {args.resamples} resamples: "
          f"{time.perf_counter() - start:.2f} s  macro_f1 {values['macro_f1'][:3]}")
    start = time.perf_counter()
    deltas = paired_values(rows, "label", labels, 2 * args.resamples, np.random.default_rng(1), 0.95,
                           np.arange(args.samples))
    print(f"paired, {2 * args.resamples} resamples: {time.perf_counter() - start:.2f} s  "
          f"macro_f1 delta {deltas['macro_f1'][2:5]}")


if __name__ == "__main__":
    main()
