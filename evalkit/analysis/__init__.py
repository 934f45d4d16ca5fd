"""Stage 5 — what the stored rows say: metrics with bootstrap CIs, paired comparisons, gate verdicts,
routing, cost projections and the retention comparison. Reads the store; never calls a model."""
