"""evalkit's version, on the ground floor: stored with every run, so any stage may read it."""

__version__ = "0.1.0"
