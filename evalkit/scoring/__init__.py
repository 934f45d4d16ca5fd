"""Stage 3 — per-sample scoring: parsing, built-in and custom scorers, feasibility checks, confidence, and
``prepare()``, which checks everything a run needs before any model is called. Imports records, never backends."""
