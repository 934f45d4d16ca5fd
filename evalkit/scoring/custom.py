"""Load the suite's own Python scorers and feasibility checks (``path/to/file.py:function``) and call them
under a time limit.

A suite is trusted repository content, like a conftest. Loading happens once, before any model is
called, so a typo in a path or function name fails fast (the file is imported here to check the
function and its arguments). Every call then goes through :class:`UserFunction`: it runs in the
scoring worker process (:mod:`evalkit.scoring.worker`) under ``scoring.timeout_s``, so a scorer that
sleeps or loops is killed and reported as a score error naming it, and one Ctrl-C stops the run.
Any user function a suite names (``scoring.custom``, ``scoring.feasibility``, and any added later)
is loaded with :func:`load_callable` and so gets the same limit.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from evalkit.errors import ScorerError
from evalkit.scoring.worker import WORKER, UserCodeCrash, UserCodeTimeout, import_file

DEFAULT_TIMEOUT_S = 10.0


class UserFunction:
    """A suite function, called in the scoring worker within ``timeout_s`` seconds.

    ``label`` is how messages name it (``checks.py:slow_check``, as the suite writes it). A call returns
    the function's value (numpy scalars as Python ones), raises what the function raised, or raises
    :class:`UserCodeTimeout` / :class:`UserCodeCrash` with a message that names the function.
    """

    def __init__(self, path: Path, name: str, label: str, timeout_s: float) -> None:
        self.path, self.name, self.label, self.timeout_s = path, name, label, timeout_s
        self.__name__ = name

    def __call__(self, *args: Any) -> Any:
        try:
            return WORKER.call(str(self.path), self.name, args, self.timeout_s)
        except UserCodeTimeout:
            raise UserCodeTimeout(f"{self.label} timed out after {self.timeout_s:g} s") from None
        except UserCodeCrash as exc:
            raise UserCodeCrash(f"{self.label}: {exc}") from None


def describe_failure(label: str, exc: BaseException) -> str:
    """The score error of a user function that failed: ``checks.py:f raised ValueError: …`` or the timeout."""
    if isinstance(exc, (UserCodeTimeout, UserCodeCrash)):
        return str(exc)
    return f"{label} raised {type(exc).__name__}: {exc}"


def load_callable(reference: str, base_dir: Path, arity: int, role: str,
                  timeout_s: float = DEFAULT_TIMEOUT_S) -> UserFunction:
    """Import ``file.py:function`` relative to ``base_dir``, check it takes ``arity`` arguments, and return
    it as a :class:`UserFunction` limited to ``timeout_s`` seconds per call."""
    file_part, _, func_name = reference.rpartition(":")
    path = Path(file_part)
    path = path if path.is_absolute() else (base_dir / path).resolve()
    if not path.is_file():
        raise ScorerError(f"{role} '{reference}': file not found: {path}")
    try:
        module = import_file(path)
    except Exception as exc:
        raise ScorerError(f"{role} '{reference}': importing {path.name} failed: "
                          f"{type(exc).__name__}: {exc}") from None
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
    return UserFunction(path, func_name, reference, timeout_s)
