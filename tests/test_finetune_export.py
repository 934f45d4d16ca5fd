"""``evalkit export finetune``: selection, formats, provenance, the gated held-out guard, and the round trip
into scripts/train_lora.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EMAILS, LABEL_SUITE, TEST_KEY, run_cli, write_jsonl

from evalkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
GATES = "gates:\n  baseline: frontier\n  candidate: tuned\n  rules:\n    - {metric: error_rate, max: 0.5}\n"


def _export(db: Path, out: Path, *args: str) -> tuple[int, str, list[dict]]:
    result = CliRunner().invoke(main, ["export", "finetune", "latest", "--db", str(db), "-o", str(out), *args])
    rows = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    return result.exit_code, result.output, rows


@pytest.fixture
def stored_run(make_suite, triage_server, cli_env, tmp_path):
    suite = make_suite(LABEL_SUITE.format(base=triage_server.url) + GATES, rows=[dict(r) for r in EMAILS])
    db = tmp_path / "f.duckdb"
    proc = run_cli(["run", str(suite), "--db", str(db), "--quiet"], cli_env)
    assert proc.returncode == 0, proc.stderr
    return suite, db


def test_selection_formats_provenance_and_the_heldout_guard(stored_run, cli_env, tmp_path):
    suite, db = stored_run
    out = tmp_path / "wrong.jsonl"
    code, said, rows = _export(db, out, "--teacher", "frontier", "--student", "tuned")
    assert code == 0, said
    # the tuned stand-in calls the invoice (e3, ham) spam: its one mistake, and the teacher was right
    assert [r["evalkit"]["sample_id"] for r in rows] == ["e3"]
    row = rows[0]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert row["messages"][1]["content"] == "Subject: Invoice attached\n\nPlease pay by Friday."
    assert row["messages"][-1] == {"role": "assistant", "content": "ham"}  # the target
    assert row["evalkit"]["why"] == "student_wrong: teacher right, student wrong"
    assert row["evalkit"]["answer_from"] == "target" and row["evalkit"]["run_id"]
    assert "1 rows written of 1 selected" in said

    code, _, rows = _export(db, tmp_path / "all.jsonl", "--teacher", "frontier", "--student", "tuned",
                            "--where", "teacher_correct", "--format", "sharegpt")
    assert code == 0 and len(rows) == 6
    assert [t["from"] for t in rows[0]["conversations"]] == ["system", "human", "gpt"]
    code, _, rows = _export(db, tmp_path / "reg.jsonl", "--teacher", "tuned", "--student", "frontier",
                            "--where", "regressions")
    assert code == 0 and rows == []  # the frontier stand-in is never wrong

    # Once this run's held-out set gated a model, its samples may not become training data.
    gate = run_cli(["gate", str(suite), "--db", str(db)], cli_env)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    refused = tmp_path / "refused.jsonl"
    code, said, _ = _export(db, refused, "--teacher", "frontier", "--student", "tuned", "--where", "all")
    assert code == 2 and "6 refused" in said and "of suite triage" in said and not refused.exists()
    code, said, rows = _export(db, refused, "--teacher", "frontier", "--student", "tuned", "--where", "all",
                               "--allow-heldout")
    assert code == 0 and len(rows) == 6 and rows[0]["evalkit"]["heldout_suite"] == "triage"


def test_a_pool_run_keeps_all_but_the_gated_held_out_inputs(stored_run, make_suite, triage_server, cli_env, tmp_path):
    suite, db = stored_run
    assert run_cli(["gate", str(suite), "--db", str(db)], cli_env).returncode == 0
    pool_rows = [{"id": f"p{i}", "subject": f"Pool subject {i}", "body": "Invoice attached" if i else "x",
                  "label": "spam" if i % 2 else "ham", "slice": "easy"} for i in range(4)]
    pool_rows.append(dict(EMAILS[2], id="p-e3", subject="INVOICE attached!!"))  # e3's input, other case/punct.
    pool_dir = tmp_path / "pool"
    pool_dir.mkdir()
    write_jsonl(pool_dir / "pool.jsonl", pool_rows)
    text = LABEL_SUITE.format(base=triage_server.url).replace("name: triage", "name: pool").replace(
        "path: data.jsonl", "path: pool/pool.jsonl")
    pool = make_suite(text, name="pool.yaml")
    assert run_cli(["run", str(pool), "--db", str(db), "--quiet"], cli_env).returncode == 0
    code, said, rows = _export(db, tmp_path / "next.jsonl", "--teacher", "frontier", "--student", "tuned",
                               "--where", "all")
    assert code == 0, said
    assert sorted(r["evalkit"]["sample_id"] for r in rows) == ["p0", "p1", "p2", "p3"]
    assert "1 refused" in said and "of suite triage" in said


@pytest.mark.slow
def test_exported_file_trains_an_adapter_with_train_lora(stored_run, tmp_path):
    pytest.importorskip("peft")
    from tiny_models import make_tiny_model

    _, db = stored_run
    out = tmp_path / "next.jsonl"
    code, said, rows = _export(db, out, "--teacher", "frontier", "--student", "tuned", "--where", "all")
    assert code == 0 and len(rows) == 6, said
    base = make_tiny_model(tmp_path / "tiny")
    adapter = tmp_path / "adapter"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/train_lora.py"), "--train", str(out), "--base",
                           str(base), "--out", str(adapter), "--epochs", "2", "--batch-size", "3", "--rank", "4",
                           "--targets", "q_proj,v_proj", "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((adapter / "training.json").read_text())
    assert record["examples"] == 6 and record["steps"] == 4
    assert (adapter / record["training_data"]["path"]).resolve() == out.resolve()
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), adapter)
    assert any("lora_A" in n for n, _ in model.named_parameters())
    assert TEST_KEY not in out.read_text()
