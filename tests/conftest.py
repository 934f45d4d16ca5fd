"""Shared fixtures: suite folders written into tmp dirs, real DuckDB files, loopback servers.

Fast lane: ``pytest -m "not slow"`` (under two minutes on two cores); CI runs everything. The ``slow``
marker is added at collection (``pytest_collection_modifyitems`` below) to every test that

* starts a child process: its code, the code of any function in tests/ that it calls (``run_cli`` and
  the browser helpers included), or the code of any fixture in tests/ that it uses refers to
  ``subprocess``, ``multiprocessing`` or ``run_cli`` -- so every CLI-subprocess, browser (Chromium,
  Firefox), ``inspect`` CLI and benchmark-script test;
* is marked ``vllm`` (a real engine);
* is a hypothesis test (``@given``).

A test that calls the CLI in-process through click's ``CliRunner``, or starts the loopback ``DevServer``
in a thread, is not slow by these rules; one that still takes over about a second on two cores carries
an explicit ``@pytest.mark.slow``.
"""

from __future__ import annotations

import inspect
import json
import os
import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# lm-eval loads its local task data through the datasets library: never ask the hub (tests are offline)
for _offline in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_offline, "1")

EMAILS = [
    {"id": "e1", "subject": "Meeting moved to 3pm", "body": "See you in room 4.", "label": "ham", "slice": "easy"},
    {"id": "e2", "subject": "WIN A FREE CRUISE", "body": "Click now to claim.", "label": "spam", "slice": "spam"},
    {"id": "e3", "subject": "Invoice attached", "body": "Please pay by Friday.", "label": "ham", "slice": "hard"},
    {"id": "e4", "subject": "Cheap meds online", "body": "No prescription needed.", "label": "spam", "slice": "spam"},
    {"id": "e5", "subject": "Lunch?", "body": "Tacos at noon.", "label": "ham", "slice": "easy"},
    {"id": "e6", "subject": "You have won $1,000,000", "body": "Send your bank details.", "label": "spam",
     "slice": "spam"},
]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def email_rows() -> list[dict[str, Any]]:
    return [dict(r) for r in EMAILS]


@pytest.fixture
def make_suite(tmp_path: Path) -> Callable[..., Path]:
    """Write a suite YAML (dedented) and, optionally, its dataset into a fresh folder."""

    def _make(text: str, rows: list[dict[str, Any]] | None = None, name: str = "suite.yaml",
              data_name: str = "data.jsonl") -> Path:
        if rows is not None:
            write_jsonl(tmp_path / data_name, rows)
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return _make


LABEL_SUITE = """
evalkit: 1
name: triage
dataset:
  path: data.jsonl
  slice: slice
prompt:
  system: "Answer spam or ham."
  user: "Subject: {{{{ subject }}}}\\n\\n{{{{ body }}}}"
output:
  type: label
  labels: [ham, spam]
target:
  field: label
confidence:
  source: logprobs
models:
  frontier:
    provider: litellm
    model: openai/frontier
    api_base: {base}
    api_key_env: EVALKIT_TEST_KEY
    params: {{temperature: 0, max_tokens: 8}}
  tuned:
    provider: vllm
    api_base: {base}
    base_model: base
    adapter: tuned
    api_key_env: EVALKIT_TEST_KEY
    stream: false
    params: {{temperature: 0, max_tokens: 8}}
run:
  concurrency: 4
  retries: 1
  bootstrap: 200
  warmup: 0        # these tests count every call the server gets; warm-up is tested in test_warmup.py
"""


TRIAGE_RULES = {
    "models": {
        "frontier": {"rules": [{"pattern": "FREE|meds|won", "reply": "spam", "confidence": 0.95}],
                     "default": {"reply": "ham", "confidence": 0.9}},
        # the tuned stand-in also calls invoices spam: one wrong answer out of six, confidently
        "tuned": {"rules": [{"pattern": "FREE|meds|won|Invoice", "reply": "spam", "confidence": 0.8}],
                  "default": {"reply": "ham", "confidence": 0.7}},
    },
}
TEST_KEY = "sk-test-4f9c2a7be1d04c55"


@pytest.fixture
def triage_server():
    """A loopback OpenAI-protocol server playing 'frontier' and 'tuned', requiring an API key."""
    from evalkit.testing.devserver import DevServer
    from evalkit.testing.replies import RuleResponder

    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY, latency_ms=2) as server:
        yield server


@pytest.fixture
def cli_env(monkeypatch) -> dict[str, str]:
    """Environment for evalkit subprocesses: the test key set, no inherited store override."""
    env = dict(os.environ)
    env["EVALKIT_TEST_KEY"] = TEST_KEY
    env.pop("EVALKIT_DB", None)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120):
    """Run ``python -m evalkit.cli ARGS`` as a user would; returns the CompletedProcess."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "evalkit.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


# names whose use in a test's code (or a tests/ helper or fixture it uses) means it starts a child process
_PROCESS_NAMES = frozenset({"subprocess", "multiprocessing", "run_cli"})
_TESTS_DIR = Path(__file__).resolve().parent


def _names(code: types.CodeType) -> set[str]:
    """Global and attribute names a code object refers to, nested functions and lambdas included."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _starts_processes(func: Any, seen: set[types.CodeType]) -> bool:
    func = inspect.unwrap(func)
    code = getattr(func, "__code__", None)
    if code is None or code in seen or not Path(code.co_filename).resolve().is_relative_to(_TESTS_DIR):
        return False
    seen.add(code)
    names = _names(code)
    if names & _PROCESS_NAMES:
        return True
    return any(inspect.isfunction(obj) and _starts_processes(obj, seen)
               for obj in (func.__globals__.get(name) for name in names))


def _is_slow(item: pytest.Function) -> bool:
    if item.get_closest_marker("vllm") or getattr(item.function, "is_hypothesis_test", False):
        return True
    seen: set[types.CodeType] = set()
    if _starts_processes(item.function, seen):
        return True
    fixtures = item._fixtureinfo.name2fixturedefs.values()
    return any(_starts_processes(fixturedef.func, seen) for defs in fixtures for fixturedef in defs)


def pytest_collection_modifyitems(config, items):
    """Mark slow what the module docstring says is slow, so new tests land in the right lane unasked."""
    for item in items:
        if isinstance(item, pytest.Function) and not item.get_closest_marker("slow") and _is_slow(item):
            item.add_marker(pytest.mark.slow)
