"""inspect-ai logs out of and into the store, checked with inspect-ai's own reader and writer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EMAILS, LABEL_SUITE, run_cli

from evalkit.store import Store

inspect_log = pytest.importorskip("inspect_ai.log", reason="needs the inspect extra: pip install 'evalkit-swap[inspect]'")

GATES = """
gates:
  baseline: frontier
  candidate: tuned
  rules:
    - {metric: accuracy, max_drop: 0.0, significance: point}
    - {metric: latency_ms_p95, max: 5000}
"""


@pytest.fixture
def suite_path(make_suite, email_rows, triage_server) -> Path:
    return make_suite(LABEL_SUITE.format(base=triage_server.url) + GATES, rows=email_rows)


def _run(suite: Path, db: Path, env: dict[str, str], *extra: str) -> str:
    proc = run_cli(["run", str(suite), "--db", str(db), "--json", *extra], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["run"]["run_id"]


def test_export_writes_one_log_per_model_that_inspect_reads_back(suite_path, cli_env, tmp_path):
    db, out = tmp_path / "e.duckdb", tmp_path / "logs"
    run_id = _run(suite_path, db, cli_env)
    proc = run_cli(["export", "inspect", run_id, "-o", str(out), "--db", str(db)], cli_env)
    assert proc.returncode == 0, proc.stderr
    files = sorted(out.glob("*.eval"))
    assert sorted(Path(p).name for p in proc.stdout.split()) == [f.name for f in files]
    assert len(files) == 2 and len(inspect_log.list_eval_logs(str(out))) == 2
    with Store(db, read_only=True) as store:
        results = {(r["model"], r["sample_id"]): r for r in store.dicts("SELECT * FROM results WHERE run_id = ?", [run_id])}
        metrics = {(m["model"], m["metric"]): m["value"] for m in store.metrics(run_id)}
    logs = {f.name.split("_")[2]: inspect_log.read_eval_log(str(f)) for f in files}
    assert set(logs) == {"frontier", "tuned"}
    for name, log in logs.items():
        assert log.status == "success" and log.eval.task == "triage" and log.eval.run_id == run_id
        assert log.eval.metadata["evalkit"]["model"] == name
        assert len(log.samples) == 6 and [s.id for s in log.samples] == [e["id"] for e in EMAILS]
        assert log.results.total_samples == 6 and log.results.completed_samples == 6
        by_score = {s.name: s.metrics for s in log.results.scores}
        assert by_score["correct"]["accuracy"].value == pytest.approx(metrics[(name, "accuracy")])
        assert by_score["schema_valid"]["schema_valid_rate"].value == 1.0
        assert "feasible" not in by_score  # no feasibility checks in this suite: not invented
        prompt = sum(r["prompt_tokens"] for (m, _), r in results.items() if m == name)
        completion = sum(r["completion_tokens"] for (m, _), r in results.items() if m == name)
        usage = log.stats.model_usage[log.eval.model]
        assert (usage.input_tokens, usage.output_tokens) == (prompt, completion)
        for s in log.samples:
            row = results[(name, s.id)]
            assert s.target == row["output"] if row["correct"] else s.target != row["output"]
            assert s.output.completion == row["output"] and s.epoch == 1
            assert s.scores["correct"].value == ("C" if row["correct"] else "I")
            assert s.scores["quality"].value == row["quality"]
            assert s.output.time == pytest.approx(row["latency_ms"] / 1000)
            assert s.output.usage.input_tokens == row["prompt_tokens"]
            assert s.input[0].role == "system" and s.input[-1].role == "user" and "Subject:" in s.input[-1].text
            assert s.metadata["confidence"] == pytest.approx(row["confidence"])
    assert logs["tuned"].eval.model == "vllm/tuned" and logs["frontier"].eval.model == "openai/frontier"
    wrong = [s.id for s in logs["tuned"].samples if s.scores["correct"].value == "I"]
    assert wrong == ["e3"]
    # the inspect CLI (what 'inspect view' lists and loads) reads the files too
    inspect_bin = Path(sys.executable).parent / "inspect"
    dump = subprocess.run([str(inspect_bin), "log", "dump", str(files[0])], capture_output=True, text=True,
                          timeout=120, env=cli_env)
    assert dump.returncode == 0, dump.stderr
    assert json.loads(dump.stdout)["status"] == "success"
    _check_inspect_view(inspect_bin, out, cli_env)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _check_inspect_view(inspect_bin: Path, log_dir: Path, env: dict[str, str]) -> None:
    """`inspect view` (the viewer's own server, on loopback) lists both logs and serves them."""
    import time
    import urllib.parse
    import urllib.request

    port = _free_port()
    viewer = subprocess.Popen([str(inspect_bin), "view", "--log-dir", str(log_dir), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        listing = None
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/log-files", timeout=5) as resp:
                    listing = json.loads(resp.read())
                break
            except OSError:
                time.sleep(0.25)
        assert listing is not None, "inspect view did not start"
        files = listing["files"]
        assert len(files) == 2 and {f["task"] for f in files} == {"triage"}
        name = urllib.parse.quote(files[0]["name"], safe="")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/logs/{name}", timeout=30) as resp:
            log = json.loads(resp.read())
        assert log["status"] == "success" and log["eval"]["task"] == "triage"
    finally:
        viewer.terminate()
        viewer.wait(timeout=30)


def _frontier_log(path: Path, ids: list[str], answers: dict[str, str], *, with_time: bool) -> Path:
    """An inspect log of a 'frontier' model over the test emails, written with inspect-ai's own API."""
    from inspect_ai.log import EvalConfig, EvalDataset, EvalLog, EvalSample, EvalSpec, EvalStats
    from inspect_ai.model import ChatMessageSystem, ChatMessageUser, ModelOutput, ModelUsage
    from inspect_ai.scorer import Score

    emails = {e["id"]: e for e in EMAILS}
    samples = []
    for i, sid in enumerate(ids):
        email = emails.get(sid, {"subject": "?", "body": "?", "label": "ham"})
        out = ModelOutput.from_content(model="claude-x", content=answers[sid])
        if i % 2 == 0:  # half the samples report usage; the others leave it out
            out.usage = ModelUsage(input_tokens=40, output_tokens=1, total_tokens=41, total_cost=0.0002)
        out.time = 0.25 + i / 100 if with_time else None
        samples.append(EvalSample(
            id=sid, epoch=1, target=email["label"],
            input=[ChatMessageSystem(content="Answer spam or ham."),
                   ChatMessageUser(content=f"Subject: {email['subject']}\n\n{email['body']}")],
            output=out, scores={"match": Score(value="C" if answers[sid] == email["label"] else "I")}))
    log = EvalLog(status="success", samples=samples, stats=EvalStats(),
                  eval=EvalSpec(created="2026-11-20T10:00:00+00:00", task="email_triage", model="anthropic/claude-x",
                                dataset=EvalDataset(name="triage", samples=len(ids)), config=EvalConfig()))
    inspect_log.write_eval_log(log, str(path))
    return path


def test_imported_frontier_log_is_gated_against_an_evalkit_run(suite_path, cli_env, tmp_path):
    db = tmp_path / "e.duckdb"
    answers = {e["id"]: e["label"] for e in EMAILS}  # the frontier model is right on every email
    log = _frontier_log(tmp_path / "frontier.eval", [e["id"] for e in EMAILS], answers, with_time=False)
    proc = run_cli(["import", "inspect", str(log), "--suite", str(suite_path), "--db", str(db), "--model", "frontier"],
                   cli_env)
    assert proc.returncode == 0, proc.stderr
    with Store(db, read_only=True) as store:
        run = store.dicts("SELECT * FROM runs")[0]
        imported = run["run_id"]
        assert run["status"] == "imported" and run["suite_name"] == "triage" and run["n_samples"] == 6
        source = json.loads(run["config"])["import"]
        assert source["source"] == "inspect" and source["sha256"] and source["log"] == str(log.resolve())
        assert source["log_scores"] == {} and source["model"] == "anthropic/claude-x"
        assert store.run_models(imported)[0]["provider"] == "inspect"
        rows = store.dicts("SELECT * FROM results WHERE run_id = ? ORDER BY sample_id", [imported])
        assert len(rows) == 6 and all(r["correct"] and r["status"] == "ok" for r in rows)
        # what the log does not hold is missing, never invented
        assert all(r["latency_ms"] is None and r["ttft_ms"] is None for r in rows)
        assert [r["prompt_tokens"] for r in rows] == [40, None, 40, None, 40, None]
        assert all(r["confidence"] is None and r["logprobs"] is None for r in rows)
        metrics = {m["metric"]: m["value"] for m in store.metrics(imported)}
        assert metrics["accuracy"] == 1.0 and metrics["latency_ms_p50"] is None
    # the tuned model runs in evalkit; the gate pairs it with the imported run by sample id
    tuned_run = _run(suite_path, db, cli_env, "--model", "tuned")
    gate = run_cli(["gate", str(suite_path), "--db", str(db), "--baseline", f"{imported}:frontier",
                    "--candidate", f"{tuned_run}:tuned", "--json"], cli_env)
    assert gate.returncode == 1, gate.stderr
    report = json.loads(gate.stdout)
    assert report["n_pairs"] == 6 and report["only_baseline"] == [] and report["only_candidate"] == []
    acc = next(g for g in report["gates"] if g["metric"] == "accuracy")
    assert acc["verdict"] == "fail" and acc["baseline"] == 1.0 and acc["candidate"] == pytest.approx(5 / 6)
    assert [r["sample_id"] for r in report["regressions"]] == ["e3"]
    assert report["deltas"]["latency_ms_p95"]["delta"] is None  # no latency in the log: no latency comparison
    compare = run_cli(["compare", "--db", str(db), "--baseline", f"{imported}:frontier",
                       "--candidate", f"{tuned_run}:tuned", "--json"], cli_env)
    assert compare.returncode == 0 and json.loads(compare.stdout)["n_regressions"] == 1


def test_import_keeps_latency_and_tokens_the_log_has(suite_path, cli_env, tmp_path):
    db = tmp_path / "e.duckdb"
    answers = {e["id"]: "spam" for e in EMAILS}
    log = _frontier_log(tmp_path / "f.eval", ["e1", "e2"], answers, with_time=True)
    proc = run_cli(["import", "inspect", str(log), "--suite", str(suite_path), "--db", str(db)], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "claude-x" in proc.stdout  # the model's name defaults to the log's
    with Store(db, read_only=True) as store:
        rows = store.dicts("SELECT sample_id, model, latency_ms, cost_usd, correct FROM results ORDER BY sample_id")
    assert [(r["sample_id"], r["model"], r["correct"]) for r in rows] == [("e1", "claude-x", False), ("e2", "claude-x", True)]
    assert rows[0]["latency_ms"] == pytest.approx(250.0) and rows[1]["latency_ms"] == pytest.approx(260.0)
    assert rows[0]["cost_usd"] == pytest.approx(0.0002) and rows[1]["cost_usd"] is None


@pytest.mark.parametrize("case", ["not_a_log", "missing", "foreign_ids"])
def test_bad_logs_exit_2_with_one_line_and_leave_the_store_alone(case, suite_path, cli_env, tmp_path):
    db = tmp_path / "e.duckdb"
    _run(suite_path, db, cli_env, "--model", "tuned")
    before = db.read_bytes()
    if case == "not_a_log":
        log = tmp_path / "notes.eval"
        log.write_text("this is not an inspect log\n")
    elif case == "missing":
        log = tmp_path / "absent.eval"
    else:
        log = _frontier_log(tmp_path / "other.eval", ["e1", "x-404", "x-405"],
                            {"e1": "ham", "x-404": "ham", "x-405": "spam"}, with_time=True)
    proc = run_cli(["import", "inspect", str(log), "--suite", str(suite_path), "--db", str(db)], cli_env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(log) in lines[0]
    assert {"not_a_log": "not a readable inspect-ai eval log", "missing": "no such file",
            "foreign_ids": "2 of the log's sample ids are not in the suite's dataset"}[case] in lines[0]
    assert db.read_bytes() == before
    fresh = tmp_path / "fresh.duckdb"
    assert run_cli(["import", "inspect", str(log), "--suite", str(suite_path), "--db", str(fresh)],
                   cli_env).returncode == 2
    assert not fresh.exists()


def test_export_of_an_unknown_model_or_run_is_one_line(suite_path, cli_env, tmp_path):
    db = tmp_path / "e.duckdb"
    run_id = _run(suite_path, db, cli_env, "--model", "tuned")
    for args, words in ((["--model", "nope"], "has no model 'nope'"), ([], None)):
        ref = run_id if words else "zzz-no-such-run"
        proc = run_cli(["export", "inspect", ref, "-o", str(tmp_path / "o"), "--db", str(db), *args], cli_env)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
        assert (words or "no run 'zzz-no-such-run'") in proc.stderr


def test_missing_extra_names_the_pip_command(tmp_path):
    """With inspect-ai hidden from the import system, the command says which extra to install."""
    code = ("import sys; sys.modules['inspect_ai'] = None\n"
            "from evalkit.cli import main\n"
            "main(['export', 'inspect', 'latest', '-o', 'x', '--db', sys.argv[1]])")
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    db = tmp_path / "e.duckdb"
    from evalkit.store import Store as _S

    _S(db).close()
    proc = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'evalkit-swap[inspect]'" in proc.stderr


def test_failed_calls_and_feasibility_travel_in_the_export(tmp_path):
    """A stored run with a failed call and feasibility checks, exported in-process and read back."""
    from evalkit.analysis.metrics import compute_run_metrics
    from evalkit.interop.inspect_log import export_run
    from evalkit.store.db import now

    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        store.create_run({"run_id": "r1", "suite_name": "shop_plan", "suite_hash": "h", "status": "complete",
                          "created_at": now(), "n_samples": 2, "repeats": 2})
        store.insert_samples([{"run_id": "r1", "sample_id": f"j{i}", "position": i, "slice": None,
                               "messages": json.dumps([{"role": "user", "content": f"plan {i}"}]),
                               "target": json.dumps({"makespan": 10 + i})} for i in range(2)])
        store.upsert_run_model({"run_id": "r1", "model": "tuned_v2", "provider": "vllm", "model_ref": "shop-lora",
                                "status": "complete", "config": {"api_base": "http://gpu:8000/v1",
                                                                 "params": {"temperature": 0.7, "max_tokens": 64}}})
        base = {"run_id": "r1", "model": "tuned_v2", "attempts": 1, "cache_hit": False, "created_at": now()}
        store.insert_results([
            {**base, "sample_id": "j0", "repeat": 0, "status": "ok", "output": '{"makespan": 10}', "parsed": '{"makespan": 10}',
             "schema_valid": True, "feasible": True, "violations": "[]", "quality": 1.0, "correct": True,
             "latency_ms": 120.0, "prompt_tokens": 30, "completion_tokens": 8, "finish_reason": "stop", "cache_key": "a"},
            {**base, "sample_id": "j0", "repeat": 1, "status": "ok", "output": '{"makespan": 9}', "parsed": '{"makespan": 9}',
             "schema_valid": True, "feasible": False, "violations": '["machine 1 runs two jobs at t=3"]',
             "quality": 0.0, "correct": False, "latency_ms": 130.0, "prompt_tokens": 30, "completion_tokens": 8,
             "finish_reason": "length", "cache_key": "b"},
            {**base, "sample_id": "j1", "repeat": 0, "status": "error", "schema_valid": False, "feasible": False,
             "quality": 0.0, "correct": False, "error": "HTTP 503 after 4 attempts", "error_kind": "status",
             "attempts": 4, "cache_key": "c"},
        ])
        compute_run_metrics(store, "r1", resamples=0)
        [path] = export_run(store, "r1", tmp_path / "out")
    assert path.name.split("_")[1:3] == ["shop-plan", "tuned-v2"]  # '_' separates inspect's file name parts
    log = inspect_log.read_eval_log(str(path))
    assert log.eval.model == "vllm/shop-lora" and log.eval.model_base_url == "http://gpu:8000/v1"
    assert log.eval.model_generate_config.temperature == 0.7 and log.eval.config.epochs == 2
    by_key = {(s.id, s.epoch): s for s in log.samples}
    assert sorted(by_key) == [("j0", 1), ("j0", 2), ("j1", 1)]
    ok, infeasible, failed = by_key[("j0", 1)], by_key[("j0", 2)], by_key[("j1", 1)]
    assert ok.scores["feasible"].value == "C" and infeasible.scores["feasible"].value == "I"
    assert "machine 1 runs two jobs" in infeasible.scores["quality"].explanation
    assert infeasible.output.stop_reason == "max_tokens" and ok.scores["correct"].answer == '{"makespan": 10}'
    assert failed.error.message == "HTTP 503 after 4 attempts" and failed.output.completion == ""
    assert failed.output.usage is None and failed.metadata["attempts"] == 4
    assert log.results.completed_samples == 2 and log.results.total_samples == 3
    scores = {s.name: s.metrics for s in log.results.scores}
    assert scores["feasible"]["feasible_rate"].value == pytest.approx(1 / 3)
    assert log.stats.model_usage["vllm/shop-lora"].input_tokens == 60


def test_import_maps_epochs_to_repeats(make_suite, email_rows, tmp_path):
    """Epochs of an inspect log become repeats, paired by (sample id, repeat)."""
    from inspect_ai.log import EvalConfig, EvalDataset, EvalLog, EvalSample, EvalSpec
    from inspect_ai.model import ModelOutput

    from evalkit.config.loader import load_suite
    from evalkit.interop.inspect_log import build_import, store_import

    suite = make_suite(LABEL_SUITE.format(base="http://127.0.0.1:9/v1"), rows=email_rows)
    samples = [EvalSample(id=sid, epoch=epoch, input="x", target="ham",
                          output=ModelOutput.from_content(model="m", content=answer))
               for sid, epoch, answer in [("e1", 1, "ham"), ("e1", 2, "spam"), ("e2", 1, "spam"), ("e2", 2, "spam")]]
    log = EvalLog(status="success", samples=samples,
                  eval=EvalSpec(created="2026-11-20T10:00:00+00:00", task="t", model="openai/gpt-x",
                                dataset=EvalDataset(), config=EvalConfig(epochs=2)))
    path = tmp_path / "epochs.json"
    inspect_log.write_eval_log(log, str(path))
    imported = build_import(load_suite(suite), path)
    assert imported.name == "gpt-x" and imported.run["repeats"] == 2 and imported.run["n_samples"] == 2
    with Store(tmp_path / "i.duckdb") as store:
        store_import(store, imported)
        rows = store.sql("SELECT sample_id, repeat, correct FROM results ORDER BY sample_id, repeat")
        assert rows == [("e1", 0, True), ("e1", 1, False), ("e2", 0, True), ("e2", 1, True)]
        assert json.loads(store.get_run(imported.run_id)["config"])["import"]["prompt_mismatches"] == 4
