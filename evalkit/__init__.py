"""evalkit: prove, with numbers, whether a fine-tuned small model can replace a frontier model.

Pipeline, one package per stage: config → backends → scoring → store → analysis → interop → engine → report → cli
(README, "Architecture").
"""

from __future__ import annotations

from typing import Any

from evalkit.version import __version__

__all__ = ["__version__", "load_suite", "run_suite", "Store"]


def __getattr__(name: str) -> Any:  # lazy: `import evalkit` stays cheap and needs no heavy dependency
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
