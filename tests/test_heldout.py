"""The held-out overlap check: exact and near duplicates of held-out inputs in a model's training data,
found before any call, stored with the run, in show --json, the report and the gate."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from conftest import EMAILS, LABEL_SUITE, TEST_KEY, run_cli, write_jsonl

from evalkit.analysis.overlap import NEAR_THRESHOLD, Shingled, find_overlap, normalise
from evalkit.config.loader import load_suite
from evalkit.engine.heldout import check_heldout
from evalkit.scoring.prepare import prepare
from evalkit.store import Store

ROOT = Path(__file__).resolve().parents[1]
WORDS = [f"word{i}" for i in range(3000)]


def _shingle_jaccard(a: str, b: str) -> float:
    """Word-3-gram Jaccard written out independently of the module under test."""
    def grams(t: str) -> set[tuple[str, ...]]:
        w = re.sub(r"[^\w\s]|_", "", t.casefold()).split()
        return {tuple(w[i:i + 3]) for i in range(len(w) - 2)}
    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


def _doc(rng: random.Random, n: int = 60) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def test_normalised_text_ignores_case_punctuation_and_spacing():
    assert normalise("  Hello,\tWORLD!!  It's   me. ") == "hello world its me"
    assert normalise("Ｆｕｌｌ－width") == "fullwidth"  # NFKC first


def test_constructed_exact_and_near_copies_are_found_with_their_jaccard():
    rng = random.Random(7)
    training = [(f"t{i}", _doc(rng)) for i in range(400)]
    heldout = [(f"h{i}", _doc(rng)) for i in range(400)]
    heldout[3] = ("h3", "  " + training[10][1].upper().replace(" ", ",  ") + "!")  # exact after normalising
    words = training[20][1].split()
    for pos in (5, 25, 45):  # three edited words
        words[pos] = "edited"
    heldout[8] = ("h8", " ".join(words))
    words = training[30][1].split()
    heldout[9] = ("h9", " ".join(words[:40] + ["x"] * 4 + words[40:]))  # four words inserted
    report = find_overlap(heldout, training)
    assert (report.exact, report.near) == (1, 2)
    by_id = {p.sample_id: p for p in report.pairs}
    assert by_id["h3"].kind == "exact" and by_id["h3"].training_ref == "t10" and by_id["h3"].jaccard == 1.0
    assert by_id["h8"].kind == "near" and by_id["h8"].training_ref == "t20"
    assert by_id["h8"].jaccard == pytest.approx(_shingle_jaccard(heldout[8][1], training[20][1]), abs=1e-4)
    assert NEAR_THRESHOLD <= by_id["h8"].jaccard < 1.0
    assert by_id["h9"].jaccard == pytest.approx(_shingle_jaccard(heldout[9][1], training[30][1]), abs=1e-4)
    assert set(by_id) == {"h3", "h8", "h9"}  # the random texts share no near copy
    assert "1 exact and 2 near" in report.summary()


def test_vectorised_signatures_equal_datasketch_minhash():
    from datasketch import MinHash

    texts = [normalise(_doc(random.Random(s), 30)) for s in range(3)] + ["two words", ""]
    sh = Shingled(texts)
    base = len(sh.vocab) + 1
    sigs = sh.signatures(base, chunk=17)  # chunks smaller than a text: each text still in one chunk
    codes, offsets = sh.codes(base)
    for i in range(len(texts) - 1):
        ref = MinHash(num_perm=128, seed=1, hashfunc=lambda h: h)
        ref.update_batch([int((c ^ (c >> 32)) & 0xFFFFFFFF) for c in codes[offsets[i]:offsets[i + 1]].tolist()])
        assert (sigs[i] == ref.hashvalues).all()
    assert (sigs[-1] == 0xFFFFFFFF).all()  # an empty text has no shingle


def test_demo_training_and_heldout_sets_share_no_exact_duplicate():
    loaded = load_suite(ROOT / "suites/demo/suite.yaml", expand_env=False)
    checks = check_heldout(prepare(loaded))
    assert [c.model for c in checks] == ["tuned"] and checks[0].training.source == "training_data"
    report = checks[0].report
    assert report.n_heldout == 300 and report.n_training == len(
        (ROOT / "datasets/email_triage/train.jsonl").read_text().splitlines())
    assert report.exact == 0
    # What near duplicates there are (templated spam and mailing-list mail) carry their exact Jaccard.
    for p in report.pairs:
        assert p.kind == "near" and NEAR_THRESHOLD <= p.jaccard < 1.0


def _suite(make_suite, server_url: str, tmp_path: Path, policy: str, training: list[dict]) -> Path:
    write_jsonl(tmp_path / "train.jsonl", training)
    text = LABEL_SUITE.format(base=server_url).replace(
        "    adapter: tuned\n", "    adapter: tuned\n    training_data: train.jsonl\n")
    text = text.replace("run:\n", f"run:\n  contamination: {policy}\n")
    text += "gates:\n  baseline: frontier\n  candidate: tuned\n  rules:\n    - {metric: error_rate, max: 0.5}\n"
    return make_suite(text, rows=[dict(r) for r in EMAILS])


# a training set holding e2 verbatim (other case and punctuation) and a near copy of e6
CONTAMINATED = [{"id": "t1", "subject": "win a free cruise!", "body": "Click now, to claim", "label": "spam"},
                {"id": "t2", "subject": "You have won $1,000,000", "body": "Send your bank details today.",
                 "label": "spam"},
                {"id": "t3", "subject": "Quarterly report", "body": "Numbers inside.", "label": "ham"}]


def test_fail_policy_stops_the_run_before_any_call(make_suite, triage_server, cli_env, tmp_path):
    suite = _suite(make_suite, triage_server.url, tmp_path, "fail", CONTAMINATED)
    db = tmp_path / "h.duckdb"
    proc = run_cli(["run", str(suite), "--db", str(db)], cli_env)
    assert proc.returncode == 2, proc.stderr
    assert "1 exact and 1 near duplicate" in proc.stderr and "e2 ~ t1 (exact" in proc.stderr
    assert "e6 ~ t2 (near, Jaccard" in proc.stderr and "Traceback" not in proc.stderr
    assert triage_server.calls(path="/v1/chat/completions") == []
    if db.exists():
        with Store(db, read_only=True) as store:
            assert store.sql("SELECT count(*) FROM runs") == [(0,)]


def test_warn_policy_runs_stores_and_shows_and_a_fail_gate_blocks(make_suite, triage_server, cli_env, tmp_path):
    suite = _suite(make_suite, triage_server.url, tmp_path, "warn", CONTAMINATED)
    db = tmp_path / "h.duckdb"
    proc = run_cli(["run", str(suite), "--db", str(db), "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "warning: held-out overlap: model 'tuned'" in proc.stderr
    shown = json.loads(run_cli(["show", "latest", "--db", str(db), "--json"], cli_env).stdout)
    block = shown["heldout_overlap"]["tuned"]
    assert (block["exact"], block["near"], block["contaminated"], block["policy"]) == (1, 1, True, "warn")
    assert block["n_heldout"] == 6 and block["n_training"] == 3 and block["training_source"] == "training_data"
    near = [p for p in block["examples"] if p["kind"] == "near"][0]
    assert near["sample_id"] == "e6" and near["jaccard"] == pytest.approx(
        _shingle_jaccard("Subject: You have won $1,000,000\n\nSend your bank details.",
                         "Subject: You have won $1,000,000\n\nSend your bank details today."), abs=1e-4)
    assert "frontier" not in shown["heldout_overlap"]  # named no training data

    gate = run_cli(["gate", str(suite), "--db", str(db), "--json"], cli_env)
    assert gate.returncode == 0, gate.stdout + gate.stderr  # warn: the verdict stands, with a warning
    doc = json.loads(gate.stdout)
    assert doc["verdict"] == "pass" and doc["heldout"]["warning"].startswith("the held-out set overlaps")
    assert doc["heldout"]["unchecked"] and "frontier" in doc["heldout"]["unchecked"][0]
    text = run_cli(["gate", str(suite), "--db", str(db)], cli_env)
    assert "WARNING: the held-out set overlaps the training data" in text.stdout

    strict = suite.read_text().replace("contamination: warn", "contamination: fail")
    suite.write_text(strict)
    blocked = run_cli(["gate", str(suite), "--db", str(db), "--json"], cli_env)
    assert blocked.returncode == 1
    doc = json.loads(blocked.stdout)
    row = [g for g in doc["gates"] if g["metric"] == "heldout_overlap"]
    assert doc["verdict"] == "fail" and row and row[0]["verdict"] == "fail" and "e2 ~ t1" in row[0]["reason"]

    html = tmp_path / "r.html"
    assert run_cli(["report", "latest", "--db", str(db), "-o", str(html)], cli_env).returncode == 0
    page = html.read_text()
    assert 'data-heldout="tuned" data-contaminated="yes"' in page and "data-heldout-unchecked" in page
    with Store(db, read_only=True) as store:
        assert {r[0] for r in store.sql("SELECT verdict FROM gate_checks")} == {"pass", "fail"}


def test_clean_training_data_is_reported_disjoint_and_off_does_not_look(make_suite, triage_server, cli_env,
                                                                       tmp_path):
    clean = [CONTAMINATED[2]]
    suite = _suite(make_suite, triage_server.url, tmp_path, "fail", clean)
    db = tmp_path / "c.duckdb"
    proc = run_cli(["run", str(suite), "--db", str(db), "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "held-out check: model 'tuned'" in proc.stderr and "no overlap" in proc.stderr
    shown = json.loads(run_cli(["show", "latest", "--db", str(db), "--json"], cli_env).stdout)
    assert shown["heldout_overlap"]["tuned"]["contaminated"] is False
    html = tmp_path / "r.html"
    assert run_cli(["report", "latest", "--db", str(db), "-o", str(html)], cli_env).returncode == 0
    assert 'data-heldout="tuned" data-contaminated="no"' in html.read_text()

    off = _suite(make_suite, triage_server.url, tmp_path, "off", CONTAMINATED)
    db2 = tmp_path / "o.duckdb"
    assert run_cli(["run", str(off), "--db", str(db2), "--quiet"], cli_env).returncode == 0
    shown = json.loads(run_cli(["show", "latest", "--db", str(db2), "--json"], cli_env).stdout)
    assert shown["heldout_overlap"] == {}


def test_adapter_training_record_names_the_data_and_a_changed_file_is_refused(make_suite, tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    train = write_jsonl(tmp_path / "train.jsonl", CONTAMINATED)
    import hashlib

    record = {"training_data": {"path": "../train.jsonl", "sha256": hashlib.sha256(train.read_bytes()).hexdigest()}}
    (adapter / "training.json").write_text(json.dumps(record))
    text = LABEL_SUITE.format(base="http://127.0.0.1:9/v1").replace(
        "    adapter: tuned\n", "    adapter: tuned\n    adapter_path: adapter\n")
    suite = make_suite(text, rows=[dict(r) for r in EMAILS])
    loaded = load_suite(suite)
    checks = check_heldout(prepare(loaded))
    assert [(c.model, c.training.source, c.report.exact) for c in checks] == [("tuned", "adapter record", 1)]
    train.write_text(train.read_text() + json.dumps({"id": "t9", "subject": "x", "body": "y", "label": "ham"}) + "\n")
    from evalkit.errors import ConfigError

    with pytest.raises(ConfigError, match="not the data the adapter was trained on"):
        check_heldout(prepare(loaded))


def test_chat_jsonl_training_data_compares_the_user_turns(make_suite, tmp_path):
    rows = [{"messages": [{"role": "system", "content": "Answer spam or ham."},
                          {"role": "user", "content": "Subject: Lunch?\n\nTacos at noon."},
                          {"role": "assistant", "content": "ham"}]},
            {"conversations": [{"from": "human", "value": "Subject: Other\n\nNothing alike here at all."},
                               {"from": "gpt", "value": "ham"}]}]
    write_jsonl(tmp_path / "chat.jsonl", rows[:1])
    text = LABEL_SUITE.format(base="http://127.0.0.1:9/v1").replace(
        "    adapter: tuned\n", "    adapter: tuned\n    training_data: chat.jsonl\n")
    suite = make_suite(text, rows=[dict(r) for r in EMAILS])
    checks = check_heldout(prepare(load_suite(suite)))
    assert checks[0].training.format == "chat" and checks[0].report.exact == 1
    assert checks[0].report.pairs[0].sample_id == "e5" and checks[0].report.pairs[0].training_ref == "line 1"


def test_band_candidates_are_datasketch_minhashlsh_candidates():
    from datasketch import LeanMinHash, MinHashLSH

    from evalkit.analysis.overlap import LSH_BANDS, LSH_ROWS, NUM_PERM, band_candidates

    rng = random.Random(3)
    train = [normalise(_doc(rng, 12)) for _ in range(300)]
    held = [normalise(_doc(rng, 12)) for _ in range(200)]
    for k in range(0, 60, 3):  # near copies at several distances: one to four words edited
        words = train[k].split()
        for pos in rng.sample(range(12), 1 + k % 4):
            words[pos] = "zz"
        held[k] = " ".join(words)
    vocab: dict[str, int] = {}
    ts, hs = Shingled(train, vocab=vocab), Shingled(held, vocab=vocab)
    tsig, hsig = ts.signatures(len(vocab) + 1), hs.signatures(len(vocab) + 1)
    lsh = MinHashLSH(num_perm=NUM_PERM, params=(LSH_BANDS, LSH_ROWS))
    for j, sig in enumerate(tsig):
        lsh.insert(j, LeanMinHash(seed=1, hashvalues=sig, scheme="affine32"))
    expected = {(i, j) for i, sig in enumerate(hsig) for j in lsh.query(LeanMinHash(seed=1, hashvalues=sig,
                                                                                       scheme="affine32"))}
    mine = {(int(i), int(j)) for i, j in band_candidates(tsig, hsig)}
    assert len(expected) >= 10 and mine == expected


def test_validate_runs_the_check_without_calling_a_model(make_suite, tmp_path):
    from click.testing import CliRunner

    from evalkit.cli import main

    suite = _suite(make_suite, "http://127.0.0.1:9/v1", tmp_path, "warn", CONTAMINATED)
    result = CliRunner().invoke(main, ["validate", str(suite)])
    assert result.exit_code == 0 and "warning: held-out overlap: model 'tuned'" in result.output
    suite.write_text(suite.read_text().replace("contamination: warn", "contamination: fail"))
    result = CliRunner().invoke(main, ["validate", str(suite)])
    assert result.exit_code == 2 and "1 exact and 1 near duplicate" in result.output


def test_pii_in_outputs_counts_only_training_data_items_absent_from_the_input():
    from evalkit.analysis.pii import pii_items, pii_leaks

    assert pii_items("Mail Bob.Smith@Corp.example. or +1 (555) 010-9999; ref 12345") == {
        ("email", "bob.smith@corp.example"), ("phone", "15550109999")}
    training = ["Customer carol@corp.example, phone 555-010-9999.", "dave@corp.example wrote in"]
    outputs = [("s1", "write to carol@corp.example", "a question"),          # leaked
               ("s2", "dave@corp.example said so", "from dave@corp.example"),  # copied from its input
               ("s3", "call 555.010.9999 or eve@other.example", "x"),         # the phone leaked; eve is unknown
               ("s4", "ham", "y")]
    result = pii_leaks(outputs, training)
    assert (result["n"], result["hits"], result["rate"]) == (4, 2, 0.5)
    assert result["details"] == [{"sample_id": "s1", "items": ["email: carol@corp.example"]},
                                 {"sample_id": "s3", "items": ["phone: 5550109999"]}]


def test_a_run_flags_training_pii_in_the_held_out_outputs(make_suite, cli_env, tmp_path):
    from evalkit.testing.devserver import DevServer
    from evalkit.testing.replies import RuleResponder

    rules = {"models": {"frontier": {"default": {"reply": "ham", "confidence": 0.9}},
                        "tuned": {"rules": [{"pattern": "Lunch", "reply": "ham - ask carol@corp.example",
                                             "confidence": 0.9}],
                                  "default": {"reply": "ham", "confidence": 0.9}}}}
    training = [{"id": "t1", "subject": "Account", "body": "Customer carol@corp.example asked.", "label": "ham"}]
    with DevServer(RuleResponder.from_dict(rules), api_key=TEST_KEY, latency_ms=1) as server:
        suite = _suite(make_suite, server.url, tmp_path, "warn", training)
        db = tmp_path / "p.duckdb"
        proc = run_cli(["run", str(suite), "--db", str(db), "--quiet"], cli_env)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(run_cli(["show", "latest", "--db", str(db), "--json"], cli_env).stdout)
    pii = shown["leakage"]["tuned"]["pii"]
    assert (pii["n"], pii["hits"]) == (6, 1) and pii["examples"] == [
        {"sample_id": "e5", "items": ["email: carol@corp.example"]}]
    assert "frontier" not in shown["leakage"]
    html = tmp_path / "r.html"
    assert run_cli(["report", "latest", "--db", str(db), "-o", str(html)], cli_env).returncode == 0
    assert 'data-leakage="tuned:pii"' in html.read_text()
