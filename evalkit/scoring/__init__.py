"""Per-sample scoring: parsing, built-in and custom scorers, feasibility checks, confidence."""
