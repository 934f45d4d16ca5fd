"""evalkit: prove, with numbers, whether a fine-tuned small model can replace a frontier model.

Pipeline: suite → dataset → prompts → backends → scorers → store → metrics → report / gate.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_suite", "run_suite", "Store"]


def __getattr__(name: str):  # lazy: `import evalkit` stays cheap and needs no heavy dependency
    if name == "load_suite":
        from evalkit.config.loader import load_suite

        return load_suite
    if name == "run_suite":
        from evalkit.engine.runner import run_suite

        return run_suite
    if name == "Store":
        from evalkit.store import Store

        return Store
    raise AttributeError(name)
