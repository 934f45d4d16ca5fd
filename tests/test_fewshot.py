"""``models.<name>.fewshot``: worked examples from a training file before each prompt, deterministic, balanced
over the labels, never from the held-out set, and sent on the wire as user/assistant turns."""

from __future__ import annotations

import json

import pytest
from conftest import LABEL_SUITE, TEST_KEY, write_jsonl

from evalkit.config.loader import load_suite
from evalkit.config.suite import referenced_files
from evalkit.engine.load import chat_request
from evalkit.engine.runner import run_suite
from evalkit.errors import ConfigError
from evalkit.scoring.prepare import prepare

TRAIN = [{"id": f"t{i}", "subject": f"Train {i}", "body": "Buy now" if i % 3 == 0 else "See you", "label":
          "spam" if i % 3 == 0 else "ham", "slice": "x"} for i in range(12)]
FEWSHOT = "    fewshot: {path: train.jsonl, n: 4, seed: 7}\n"


def _suite(make_suite, email_rows, tmp_path, extra: str = FEWSHOT, train=TRAIN, base: str = "http://127.0.0.1:9/v1"):
    write_jsonl(tmp_path / "train.jsonl", train)
    return make_suite(LABEL_SUITE.format(base=base).replace("    stream: false\n", "    stream: false\n" + extra),
                      rows=email_rows)


def test_examples_are_deterministic_balanced_and_between_system_and_prompt(make_suite, email_rows, tmp_path):
    prepared = prepare(load_suite(_suite(make_suite, email_rows, tmp_path)))
    request = chat_request(prepared.loaded, "tuned", prepared.rendered[0], prepared)
    roles = [m["role"] for m in request.messages]
    assert roles == ["system"] + ["user", "assistant"] * 4 + ["user"]
    assert [m["content"] for m in request.messages[2:-1:2]] == ["ham", "spam", "ham", "spam"]  # labels in turn
    assert request.messages[-1] == prepared.rendered[0].messages[-1]
    assert request.messages[1]["content"].startswith("Subject: Train ")
    again = prepare(load_suite(_suite(make_suite, email_rows, tmp_path)))
    assert chat_request(again.loaded, "tuned", again.rendered[0], again).messages == request.messages
    other = prepare(load_suite(_suite(make_suite, email_rows, tmp_path, FEWSHOT.replace("seed: 7", "seed: 8"))))
    assert chat_request(other.loaded, "tuned", other.rendered[0], other).messages != request.messages
    # the other model is untouched, and the training file is part of the suite's hash
    assert chat_request(prepared.loaded, "frontier", prepared.rendered[0], prepared).messages == \
        prepared.rendered[0].messages
    assert tmp_path / "train.jsonl" in referenced_files(prepared.loaded)


def test_held_out_samples_never_become_examples(make_suite, email_rows, tmp_path):
    with pytest.raises(ConfigError, match=r"models.tuned.fewshot.path: train.jsonl shares 1 sample id\(s\) with the "
                                          r"held-out set \(e.g. 'e1'\)"):
        prepare(load_suite(_suite(make_suite, email_rows, tmp_path, train=TRAIN + [dict(email_rows[0])])))
    # the same text under another id is passed over, not shown
    copy = [dict(email_rows[0], id="copy", label="spam")]
    prepared = prepare(load_suite(_suite(make_suite, email_rows, tmp_path, FEWSHOT.replace("n: 4", "n: 8"),
                                         train=TRAIN + copy)))
    held = {r.messages[-1]["content"] for r in prepared.rendered}
    turns = (prepared.shots or {})["tuned"]
    assert len(turns) == 16 and not held & {t["content"] for t in turns if t["role"] == "user"}


def test_too_few_examples_is_an_error(make_suite, email_rows, tmp_path):
    with pytest.raises(ConfigError, match="has only 3 usable example"):
        prepare(load_suite(_suite(make_suite, email_rows, tmp_path, train=TRAIN[:3])))


def test_turns_go_over_the_wire(make_suite, email_rows, tmp_path, triage_server, monkeypatch):
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    path = _suite(make_suite, email_rows, tmp_path, base=triage_server.url)
    run_suite(load_suite(path), str(tmp_path / "f.duckdb"), models=["tuned"])
    sent = [c.body["messages"] for c in triage_server.calls(path="/v1/chat/completions")]
    assert len(sent) == len(email_rows) and all(len(m) == 10 for m in sent)
    assert json.dumps(sent[0][1:9]) == json.dumps(sent[-1][1:9])  # the same examples before every prompt
