"""Capability retention: real lm-eval, through its OpenAI-compatible backends, against the loopback server.

A base model that knows its capitals, an adapter that kept them, and one that forgot them (it answers
"spam" to everything, as an over-fitted triage LoRA might): the retention gate passes the first and
fails the second, in the same gate table as the task metrics.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import LABEL_SUITE, TEST_KEY, run_cli

from evalkit.store import Store

pytest.importorskip("lm_eval", reason="needs the lm-eval extra: pip install 'evalkit-swap[lm-eval]'")

ROOT = Path(__file__).resolve().parents[1]
TASK_FILE = ROOT / "datasets" / "retention" / "capitals.yaml"
CAPITALS = [json.loads(line) for line in (ROOT / "datasets" / "retention" / "capitals.jsonl").read_text().splitlines()]
SPAM_RULES = [{"pattern": "FREE|meds|won", "reply": "spam", "confidence": 0.9}]
CAPITAL_RULES = [{"pattern": rf"^Q: What is the capital of {c['country']}\?", "reply": c["capital"]} for c in CAPITALS]
RULES = {"models": {
    "frontier": {"rules": SPAM_RULES, "default": {"reply": "ham", "confidence": 0.9}},
    "base": {"rules": CAPITAL_RULES, "default": {"reply": "I do not know"}},
    "lora-intact": {"rules": SPAM_RULES + CAPITAL_RULES, "default": {"reply": "ham", "confidence": 0.9}},
    # knows the spam task, forgot the capitals except the first four
    "lora-damaged": {"rules": SPAM_RULES + CAPITAL_RULES[:4], "default": {"reply": "spam", "confidence": 0.6}},
}}

RETENTION = """
retention:
  tasks: [{task}]
  backend: {backend}
  concurrency: 2
gates:
  baseline: frontier
  candidate: tuned
  rules:
    - {{metric: accuracy, max_drop: 0.5}}
    - {{retention: evalkit_capitals/exact_match, max_drop: 0.05}}
"""


@pytest.fixture
def retention_server():
    from evalkit.testing.devserver import DevServer
    from evalkit.testing.replies import RuleResponder

    with DevServer(RuleResponder.from_dict(RULES), api_key=TEST_KEY) as server:
        yield server


def _suite(make_suite, email_rows, server, adapter: str, backend: str = "local-completions", task: str | None = None,
           extra: str = "") -> Path:
    text = LABEL_SUITE.format(base=server.url).replace("base_model: base\n    adapter: tuned",
                                                        f"base_model: base\n    adapter: {adapter}")
    text = text.replace("model: openai/frontier", "model: openai/frontier")
    return make_suite(text + RETENTION.format(task=task or str(TASK_FILE), backend=backend) + extra, rows=email_rows)


def _run(suite: Path, db: Path, env: dict[str, str]) -> str:
    proc = run_cli(["run", str(suite), "--db", str(db), "--json"], env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)["run"]["run_id"]


def test_intact_adapter_passes_and_the_results_are_stored(make_suite, email_rows, retention_server, cli_env, tmp_path):
    suite = _suite(make_suite, email_rows, retention_server, "lora-intact")
    db = tmp_path / "r.duckdb"
    run_id = _run(suite, db, cli_env)
    with Store(db, read_only=True) as store:
        rows = store.dicts("SELECT * FROM retention WHERE run_id = ? ORDER BY model", [run_id])
        assert [(r["model"], r["model_ref"], r["task"], r["metric"], r["filter"]) for r in rows] == [
            ("tuned", "lora-intact", "evalkit_capitals", "exact_match", "strip"),
            ("tuned@base", "base", "evalkit_capitals", "exact_match", "strip")]
        assert all(r["value"] == 1.0 and r["n"] == 40 and r["higher_is_better"] for r in rows)
        assert all(r["backend"] == "local-completions" and r["lm_eval_version"] == "0.4.13" for r in rows)
        config = json.loads(rows[0]["config"])
        assert config["task"]["task"] == "evalkit_capitals" and config["served_model"] == "lora-intact"
        docs = store.sql("SELECT model, count(*), sum(value) FROM retention_samples WHERE run_id = ? "
                         "GROUP BY model ORDER BY model", [run_id])
        assert docs == [("tuned", 40, 40.0), ("tuned@base", 40, 40.0)]
    # lm-eval called the served names through /v1/completions, with the suite's key, never another
    lm = retention_server.calls(path="/v1/completions")
    assert {r.model for r in lm} == {"base", "lora-intact"} and len(lm) == 80
    assert all(r.headers.get("authorization") == f"Bearer {TEST_KEY}" for r in lm)
    assert TEST_KEY.encode() not in db.read_bytes()
    md, junit = tmp_path / "gate.md", tmp_path / "gate.xml"
    gate = run_cli(["gate", str(suite), "--db", str(db), "--json", "--markdown", str(md), "--junit", str(junit)], cli_env)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    g = next(g for g in json.loads(gate.stdout)["gates"] if g["metric"].startswith("retention:"))
    assert g["metric"] == "retention:evalkit_capitals/exact_match" and g["verdict"] == "pass"
    assert (g["baseline"], g["candidate"], g["delta"]) == (1.0, 1.0, 0.0)
    assert "| ✅ | retention:evalkit_capitals/exact_match |" in md.read_text()
    assert len(ET.parse(junit).getroot().findall("testcase")) == 2


def test_damaged_adapter_fails_the_retention_gate(make_suite, email_rows, retention_server, cli_env, tmp_path):
    suite = _suite(make_suite, email_rows, retention_server, "lora-damaged")
    db = tmp_path / "r.duckdb"
    run_id = _run(suite, db, cli_env)
    md, junit = tmp_path / "gate.md", tmp_path / "gate.xml"
    gate = run_cli(["gate", str(suite), "--db", str(db), "--markdown", str(md), "--junit", str(junit)], cli_env)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "gate FAIL" in gate.stdout and "retention:evalkit_capitals" in gate.stdout
    report = json.loads(run_cli(["gate", str(suite), "--db", str(db), "--json"], cli_env).stdout)
    acc, ret = report["gates"]
    assert acc["metric"] == "accuracy" and acc["verdict"] == "pass"  # the task itself is fine
    assert ret["verdict"] == "fail" and ret["baseline"] == 1.0 and ret["candidate"] == pytest.approx(4 / 40)
    assert ret["delta"] == pytest.approx(-0.9) and ret["ci_high"] < -0.05 and "tuned vs tuned@base" in ret["reason"]
    assert "| ❌ | retention:evalkit_capitals/exact_match |" in md.read_text()
    failures = [c for c in ET.parse(junit).getroot().findall("testcase") if c.find("failure") is not None]
    assert [c.get("name").split()[0] for c in failures] == ["retention:evalkit_capitals/exact_match"]
    with Store(db, read_only=True) as store:
        wrong = store.sql("SELECT response FROM retention_samples WHERE run_id = ? AND model = 'tuned' AND value = 0 "
                          "LIMIT 1", [run_id])
        assert wrong == [('"spam"',)]


def test_chat_backend_and_the_standalone_command(make_suite, email_rows, retention_server, cli_env, tmp_path):
    suite = _suite(make_suite, email_rows, retention_server, "lora-damaged", backend="local-chat-completions")
    db = tmp_path / "r.duckdb"
    proc = run_cli(["run", str(suite), "--db", str(db), "--model", "frontier", "--quiet"], cli_env)
    assert proc.returncode == 0, proc.stderr  # the retention models were not run: no retention check
    gate = run_cli(["gate", str(suite), "--db", str(db), "--json", "--candidate", "frontier"], cli_env)
    ret = json.loads(gate.stdout)["gates"][1]
    assert gate.returncode == 1 and ret["verdict"] == "error" and "evalkit retention SUITE" in ret["reason"]
    retention_server.reset()
    proc = run_cli(["retention", str(suite), "--db", str(db)], cli_env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tuned@base" in proc.stdout and "evalkit_capitals/exact_match,strip: 1.0000" in proc.stdout
    assert {r.model for r in retention_server.calls(path="/v1/chat/completions")} == {"base", "lora-damaged"}
    with Store(db, read_only=True) as store:
        values = store.sql("SELECT model, value FROM retention ORDER BY model")
    assert values == [("tuned", pytest.approx(0.1)), ("tuned@base", 1.0)]


@pytest.mark.parametrize("extra, words", [
    ("    - {retention: capitals, max_drop: 0.1}\n", "must look like TASK/METRIC"),
    ("    - {retention: a/b, metric: accuracy, max_drop: 0.1}\n", "exactly one of 'metric' or 'retention'"),
])
def test_bad_retention_rules_exit_2(make_suite, email_rows, retention_server, cli_env, extra, words):
    suite = _suite(make_suite, email_rows, retention_server, "lora-intact", extra=extra)
    proc = run_cli(["gate", str(suite)], cli_env)
    assert proc.returncode == 2 and words in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("edit, words", [
    (("backend: local-completions", "backend: local-completion"), "retention.backend"),
    (("concurrency: 2", "concurency: 2"), "unknown key 'concurency' (did you mean 'concurrency'?)"),
    (("    adapter: lora-intact\n", ""), "retention.baseline: 'tuned' has no adapter"),
    (("  tasks: [", "  baseline: nobody\n  tasks: ["), "retention.baseline 'nobody' is not one of the models"),
    (("datasets/retention/capitals.yaml", "datasets/retention/absent.yaml"), "referenced file not found"),
])
def test_bad_retention_sections_exit_2_naming_the_key(make_suite, email_rows, retention_server, cli_env, edit, words):
    suite = _suite(make_suite, email_rows, retention_server, "lora-intact")
    suite.write_text(suite.read_text().replace(*edit))
    proc = run_cli(["validate", str(suite)], cli_env)
    assert proc.returncode == 2, proc.stdout
    assert words in proc.stderr and len(proc.stderr.strip().splitlines()) == 1 and str(suite) in proc.stderr


def test_a_retention_rule_needs_the_section_and_the_schema_has_both(make_suite, email_rows, cli_env):
    suite = make_suite(LABEL_SUITE.format(base="http://127.0.0.1:9/v1") + "gates:\n  rules:\n"
                       "    - {retention: t/acc, max_drop: 0.1}\n", rows=email_rows)
    proc = run_cli(["validate", str(suite)], cli_env)
    assert proc.returncode == 2 and "no 'retention' section" in proc.stderr
    schema = json.loads(run_cli(["schema"], cli_env).stdout)
    assert "retention" in schema["properties"]
    defs = schema["$defs"]
    assert {"tasks", "include", "candidate", "baseline", "backend", "limit", "model_args"} <= set(
        defs["RetentionSpec"]["properties"])
    assert "retention" in defs["GateRule"]["properties"]


def test_unreachable_server_is_one_line_and_the_run_stays_stored(make_suite, email_rows, retention_server, cli_env,
                                                                 tmp_path):
    suite = _suite(make_suite, email_rows, retention_server, "lora-intact")
    db = tmp_path / "r.duckdb"
    run_id = _run(suite, db, cli_env)
    dead = suite.read_text().replace("  tasks: [", "  baseline: frontier\n  model_args: {max_retries: 1}\n  tasks: [").replace(
        "model: openai/frontier", "model: openai/nobody")
    suite.write_text(dead)
    proc = run_cli(["retention", str(suite), "--db", str(db), "--run", run_id], cli_env, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr[-2000:]
    # lm-eval's own progress bars aside, the failure is one line naming the model
    lines = [line for line in re.sub(r"[^\r\n]*(it/s|s/it)\]", "", proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "error: lm-eval failed on 'frontier'" in lines[0] and "404" in lines[0], lines[:5]
    with Store(db, read_only=True) as store:  # the earlier results are untouched
        assert store.one("SELECT count(*) FROM retention WHERE run_id = ?", [run_id])[0] == 2


def test_a_bad_task_file_stops_the_run_before_any_model_call(make_suite, email_rows, retention_server, cli_env,
                                                             tmp_path):
    task = tmp_path / "not_a_task.yaml"
    task.write_text("dataset_path: json\n")
    suite = _suite(make_suite, email_rows, retention_server, "lora-intact", task=str(task))
    db = tmp_path / "r.duckdb"
    proc = run_cli(["run", str(suite), "--db", str(db)], cli_env)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "is not an lm-eval task file (no 'task: NAME')" in proc.stderr and "retention.tasks" in proc.stderr
    assert retention_server.requests == []
    with Store(db, read_only=True) as store:
        assert store.sql("SELECT count(*) FROM runs") == [(0,)]
