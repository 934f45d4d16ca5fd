"""The one error hierarchy of evalkit.

Only the CLI turns these into one-line messages and exit codes; library code raises them with a
message that says what to fix (file, line, key, sample id) and never prints.

    EvalkitError                    base: a problem the user can fix, exit code 2
    ├── ConfigError                 suite YAML, JSON Schema or CLI arguments are wrong
    ├── DatasetError                dataset file missing, malformed (file:line), duplicate ids
    ├── TemplateError               a prompt or target template fails for a sample
    ├── ScorerError                 a custom scorer or feasibility check cannot be loaded
    ├── EngineError                 a local engine (launched vLLM server, in-process vLLM) cannot start
    ├── BackendError                a model call failed (carries retryable / status / retry_after)
    │   └── ModelAbortedError       a model failed so consistently that its run was stopped
    ├── StoreError                  the DuckDB file cannot be opened, is locked or is not evalkit's
    │   └── RunNotFoundError        a run id that is not in the store
    ├── MissingExtraError           an optional extra (inspect, lm-eval) is not installed; names the pip command
    ├── InteropError                an inspect-ai log cannot be read, or does not match the suite's samples
    ├── RetentionError              an lm-eval capability check cannot run (task, server, results)
    ├── RunFailedError              a run finished without metrics (exit 4: it is stored as 'failed', with the reason)
    └── InterruptedRunError         the user stopped a run (Ctrl-C); carries the resume command
"""

from __future__ import annotations

from typing import Literal, TypeVar

_E = TypeVar("_E", bound="EvalkitError")


class EvalkitError(Exception):
    """A problem the user can fix; the message says what and where."""

    exit_code = 2

    def prefixed(self: _E, prefix: str) -> _E:
        """The same error (same class, same fields: file, line, key, retryable, ...) with ``prefix``
        before its message; for re-raising with context without losing what the error carries."""
        copy = type(self).__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.args = (prefix + str(self),)
        return copy


class ConfigError(EvalkitError):
    """The suite file or the command line is wrong."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.file, self.line, self.key = file, line, key
        where = ""
        if file:
            where = f"{file}:{line}" if line else file
            where += ": "
        if key:
            where += f"{key}: "
        super().__init__(where + message)


class DatasetError(EvalkitError):
    """The dataset cannot be read or violates the suite's expectations."""


class TemplateError(EvalkitError):
    """A prompt or target template cannot be rendered for a sample."""


class ScorerError(EvalkitError):
    """A custom scorer or feasibility check is missing or has the wrong shape."""


class EngineError(EvalkitError):
    """A local model engine (a vLLM server evalkit launches, or vLLM in-process) cannot start."""


# What went wrong in a model call (stored as results.error_kind): "http" an error status, "timeout" no
# complete answer within run.timeout_s, "connect" the server could not be reached, "connection" the
# connection broke, "malformed" an unreadable body or chunk, "truncated" a stream cut short, "engine" an
# in-process generation failed, "error" anything else.
ErrorKind = Literal["error", "http", "timeout", "connect", "connection", "malformed", "truncated", "engine"]


class BackendError(EvalkitError):
    """A model call failed.

    ``retryable`` says whether trying again may help (timeouts, resets, 429, 5xx);
    ``retry_after`` is the server's Retry-After in seconds when it sent one; ``attempts`` is how many
    calls it took before the runner gave up (set by the runner's retry loop).
    """

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None,
                 retry_after: float | None = None, kind: ErrorKind = "error", attempts: int = 1) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.kind: ErrorKind = kind
        self.attempts = attempts


class ModelAbortedError(BackendError):
    """Every call of a model failed; the run stopped calling it instead of burning the dataset."""


class StoreError(EvalkitError):
    """The DuckDB store cannot be used."""


class RunNotFoundError(StoreError):
    """The run id is not in the store."""


class RunFailedError(EvalkitError):
    """A run ended without metrics for every model; it is stored as ``failed`` with the reason."""

    exit_code = 4


class InterruptedRunError(EvalkitError):
    """The user interrupted a run; finished samples were stored."""

    exit_code = 130


class MissingExtraError(EvalkitError):
    """An optional dependency is not installed; the message says which extra to install."""


class InteropError(EvalkitError):
    """A log of another tool cannot be read or imported."""


class PublishError(EvalkitError):
    """A verdict could not be published where it was asked for (a pull-request comment)."""


class RetentionError(EvalkitError):
    """An lm-eval capability-retention check cannot run or returned nothing usable."""


def require(module: str, extra: str) -> None:
    """Import check for an optional extra, with the install command in the error."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"this needs the '{extra}' extra: pip install 'evalkit-swap[{extra}]'") from None

