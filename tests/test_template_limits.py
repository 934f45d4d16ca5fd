"""Templates cannot hang or eat the machine: the sandbox bounds output size and loop work, and breaching
a bound is a validate-time error naming the sample (seconds, bounded memory)."""

from __future__ import annotations

import resource
import subprocess
import sys
import time

import pytest

from evalkit.config.loader import load_suite
from evalkit.errors import TemplateError
from evalkit.scoring.prepare import prepare

SUITE = """
evalkit: 1
name: limits
dataset: {{path: data.jsonl}}
prompt:
  user: {user}
output: {{type: text}}
target: {{field: answer}}
scoring: {{scorer: exact}}
models:
  m: {{provider: vllm, api_base: "http://127.0.0.1:9/v1", base_model: b}}
"""
ROWS = [{"id": "ok1", "q": "hello", "n": 3, "answer": "x"}, {"id": "big-7", "q": "hello", "n": 10**10, "answer": "x"}]
HOSTILE = {
    "repeat": '"{{ \'x\' * 10**10 }}"',
    "repeat_field": '"{{ \'x\' * n }}"',
    "nested_loops": '"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"',
    "huge_range": '"{% for i in range(10**10) %}.{% endfor %}"',
    "output": '"{% for i in range(900000) %}{{ q * 5 }}{% endfor %}"',
    "pad": '"{{ q | center(10**10) }}"',
    "ljust": '"{{ q.ljust(10**10) }}"',
    "format": '"{{ \'{:>10000000000}\'.format(q) }}"',
    "power": '"{{ 10 ** (10**10) }}"',
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_templates_fail_fast_at_validate_time(name, make_suite):
    loaded = load_suite(make_suite(SUITE.format(user=HOSTILE[name]), rows=ROWS))
    started = time.monotonic()
    with pytest.raises(TemplateError, match=r"sample '(ok1|big-7)': prompt.user goes past a template limit"):
        prepare(loaded)
    assert time.monotonic() - started < 5


def test_ordinary_templates_still_render(make_suite):
    user = '"{% for i in range(n) %}{{ q }} {% endfor %}{{ \'-\' * 3 }} {{ \'%5s\' % q }} {{ \'{:>8}\'.format(q) }}"'
    loaded = load_suite(make_suite(SUITE.format(user=user), rows=ROWS[:1]))
    assert prepare(loaded).rendered[0].messages[-1]["content"] == "hello hello hello --- hello    hello"


@pytest.mark.slow
def test_validate_of_a_hostile_template_stays_within_a_memory_cap(make_suite, tmp_path):
    path = make_suite(SUITE.format(user=HOSTILE["repeat"]), rows=ROWS)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "evalkit.cli", "validate", str(path)], capture_output=True,
                          text=True, timeout=60, preexec_fn=cap)
    assert time.monotonic() - started < 30
    assert done.returncode == 2, done.stderr
    assert "sample 'ok1': prompt.user goes past a template limit" in done.stderr
