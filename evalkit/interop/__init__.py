"""Stage 6 — other evaluation tools: inspect-ai eval logs in and out of the store, and the lm-eval runner
for capability retention (its comparison is :mod:`evalkit.analysis.retention`)."""
