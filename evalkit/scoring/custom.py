"""Load the suite's own Python scorers and feasibility checks (``path/to/file.py:function``).

A suite is trusted repository content, like a conftest: its code runs in-process. Loading happens
once, before any model is called, so a typo in a path or function name fails fast.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalkit.errors import ScorerError


def load_callable(reference: str, base_dir: Path, arity: int, role: str) -> Callable[..., Any]:
    """Import ``file.py:function`` relative to ``base_dir`` and check it takes ``arity`` arguments."""
    file_part, _, func_name = reference.rpartition(":")
    path = Path(file_part)
    path = path if path.is_absolute() else (base_dir / path).resolve()
    if not path.is_file():
        raise ScorerError(f"{role} '{reference}': file not found: {path}")
    module_name = f"evalkit_suite_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}_{path.stem}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ScorerError(f"{role} '{reference}': cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.parent))  # let suite code import its sibling modules
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ScorerError(f"{role} '{reference}': importing {path.name} failed: "
                              f"{type(exc).__name__}: {exc}") from None
        finally:
            sys.path.remove(str(path.parent))
        sys.modules[module_name] = module
    func = getattr(module, func_name, None)
    if func is None:
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise ScorerError(f"{role} '{reference}': {path.name} has no function '{func_name}' "
                          f"(it has {sorted(names)[:10]})")
    if not callable(func):
        raise ScorerError(f"{role} '{reference}': '{func_name}' is not a function")
    try:
        inspect.signature(func).bind(*([None] * arity))
    except TypeError:
        raise ScorerError(f"{role} '{reference}': '{func_name}' must accept {arity} positional "
                          f"arguments") from None
    except ValueError:
        pass  # builtins without a signature: trust them
    scorer: Callable[..., Any] = func  # getattr gives Any; callable() checked above
    return scorer
