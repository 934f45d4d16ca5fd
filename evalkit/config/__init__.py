"""Stage 1 — what to evaluate: the suite (its pydantic model and the line-numbered YAML loader), the
held-out dataset, the prompt templates, shards of a dataset, and provenance of what was read."""
