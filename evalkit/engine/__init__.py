"""Stage 7 — running a suite: the runner (every model over the same rendered samples, retried, cached,
stored in batches), live progress, and the per-call price of each answer."""
