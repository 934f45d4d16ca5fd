"""The process a suite's own Python code runs in, so that it cannot hang or stall a run.

Custom scorers and feasibility checks (every ``file.py:function`` of a suite, through
:class:`evalkit.scoring.custom.UserFunction`) are called in one long-lived child process
(``python -c 'from evalkit.scoring.worker import serve; serve()'``), one call at a time over a pipe
(length-prefixed pickles). The parent waits for each answer in slices of :data:`POLL_S`:

- past the function's time limit (``scoring.timeout_s``) the child is killed (SIGKILL) and
  :class:`UserCodeTimeout` raised; the next call starts a fresh child;
- a Ctrl-C stops the wait at once: outside an event loop the ``KeyboardInterrupt`` itself, inside one
  the cancellation that asyncio's SIGINT handler puts on the running task (seen at the next slice), and
  the child is killed. The child ignores SIGINT (no second traceback) and dies with its parent (a
  watchdog thread), so a looping scorer never outlives a run, not even a ``kill -9`` of it.

Values cross as pickles: the parsed answer, the target and the sample's fields (JSON values) go in; the
result comes back with numpy scalars turned into Python ones. An exception raised by the function comes
back as itself when it unpickles, else as a :class:`UserCodeError` subclass with the same name and
message. Measured cost of the boundary: see README ("Performance").
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import importlib.util
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

POLL_S = 0.05
LOAD_S = 120.0  # starting the child and importing a suite file: not counted against scoring.timeout_s
_HEADER = struct.Struct("!Q")


class UserCodeError(Exception):
    """An exception from suite code that could not be sent back as itself (its class is named after it)."""


class UserCodeTimeout(Exception):
    """A suite function did not return within its time limit; the worker running it was killed."""


class UserCodeCrash(Exception):
    """The worker process died while running a suite function (os._exit, a crash, out of memory)."""


def module_name(path: Path) -> str:
    """The name a suite file is imported under: unique per absolute path."""
    return f"evalkit_suite_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}_{path.stem}"


def import_file(path: Path) -> ModuleType:
    """Import a suite's Python file once per process (its folder on sys.path while it imports)."""
    name = module_name(path)
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # let suite code import its sibling modules
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    sys.modules[name] = module
    return module


# -- the wire --------------------------------------------------------------------------------
def _write(fd: int, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read(fd: int) -> Any:
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    return pickle.loads(_read_exact(fd, size))


# -- the child -------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """numpy scalars (bool_, float64, int64 …) as the Python values they hold."""
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def _die_with_parent() -> None:
    """Exit as soon as the parent process is gone. A watchdog thread polls the parent's pid rather than
    ``PR_SET_PDEATHSIG``, which fires when the parent *thread* that started the child ends: the runner starts
    the child from whichever model's loop thread scores first, and that thread ends before the others."""
    parent = int(os.environ.get(PARENT_ENV) or os.getppid())

    def watch() -> None:
        while True:
            time.sleep(0.2)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="evalkit-worker-watchdog", daemon=True).start()


def serve() -> None:
    """The child's loop: read (path, function, args), call, write ("ok", value) or ("raise", …)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; one Ctrl-C, one message
    _die_with_parent()
    inp, out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # what suite code prints goes to stderr, never into the replies
    sys.stdout = sys.stderr
    functions: dict[tuple[str, str], Callable[..., Any]] = {}
    while True:
        try:
            what, path, name, args = _read(inp)
        except EOFError:
            return
        reply: Any
        try:
            key = (path, name)
            if key not in functions:
                functions[key] = getattr(import_file(Path(path)), name)
            reply = ("ok", None if what == "load" else _plain(functions[key](*args)))
            pickle.dumps(reply)
        except BaseException as exc:  # noqa: BLE001 - anything the user's code does is reported, not fatal
            blob: bytes | None
            try:
                blob = pickle.dumps(exc)
                pickle.loads(blob)
            except Exception:
                blob = None
            reply = ("raise", (type(exc).__name__, str(exc), blob))
        _write(out, reply)


# -- the parent ------------------------------------------------------------------------------
# Set by the runner when it stops its model loops (Ctrl-C arrives on the main thread, while a model's loop,
# on its own thread, may be blocked in a user function: its task's cancellation cannot run until it returns).
STOP_REQUESTED = threading.Event()


def _cancelled() -> bool:
    if STOP_REQUESTED.is_set():
        return True
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return False
    return task is not None and task.cancelling() > 0


def _rebuilt(name: str, message: str, blob: bytes | None) -> Exception:
    if blob is not None:
        try:
            exc = pickle.loads(blob)
            if isinstance(exc, Exception):
                return exc
        except Exception:
            pass
    rebuilt: Exception = type(name, (UserCodeError,), {})(message)
    return rebuilt


PARENT_ENV = "EVALKIT_WORKER_PARENT"  # the pid the child watches


class Worker:
    """The parent's handle on the child process; started on first use, restarted after a kill."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._loaded: set[tuple[str, str]] = set()  # functions the running child has imported
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen[bytes]:
        self.kill()
        root = str(Path(__file__).resolve().parents[2])  # evalkit importable in the child as it is here
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        env[PARENT_ENV] = str(os.getpid())
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from evalkit.scoring.worker import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        return self._proc

    def kill(self) -> None:
        proc, self._proc = self._proc, None
        self._loaded = set()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout) if proc is not None else ():
            if pipe is not None:
                pipe.close()

    def call(self, path: str, name: str, args: tuple[Any, ...], timeout_s: float) -> Any:
        """``name(*args)`` from the file at ``path``, in the child, within ``timeout_s`` seconds (starting
        the child and importing the file, the first time, are not counted: they get :data:`LOAD_S`)."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            if (path, name) not in self._loaded:
                self._ask(("load", path, name, ()), max(LOAD_S, timeout_s), "loading it")
                self._loaded.add((path, name))
            return self._ask(("call", path, name, args), timeout_s, "running it")

    def _ask(self, message: tuple[Any, ...], timeout_s: float, doing: str) -> Any:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            _write(proc.stdin.fileno(), message)
            deadline = time.monotonic() + timeout_s
            while True:
                if _cancelled():
                    raise asyncio.CancelledError
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    raise UserCodeTimeout(f"timed out after {timeout_s:g} s")
                ready, _, _ = select.select([proc.stdout], [], [], min(POLL_S, left))
                if ready:
                    break
            kind, payload = _read(proc.stdout.fileno())
        except (EOFError, BrokenPipeError, ConnectionResetError):
            code = proc.wait()
            self.kill()
            raise UserCodeCrash(f"the scoring worker process exited (code {code}) while {doing}") from None
        except BaseException:  # Ctrl-C, a cancelled task, a timeout: the child is mid-call, so it goes
            self.kill()
            raise
        if kind == "ok":
            return payload
        raise _rebuilt(*payload)


WORKER = Worker()
atexit.register(WORKER.kill)
