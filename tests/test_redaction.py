"""A key a server echoes (in an error body, or in an answer) reaches no stored or printed string.

The dev server quotes the request's Authorization header in its error messages (``echo_key``), and one
model's answer repeats the key. After a run, every table of the DuckDB file, the Parquet and inspect
exports, the HTML report, ``compare --json``, the gate's Markdown summary and JUnit XML, and everything
the CLI printed are searched for the key: for a key-shaped one (``sk-…``) and for a plain one that only
its use as a model's ``api_key_env`` marks as a secret.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import LABEL_SUITE, TEST_KEY

from evalkit.cli import main
from evalkit.redact import REDACTED, redact, redact_text
from evalkit.testing.devserver import DevServer
from evalkit.testing.faults import Fault
from evalkit.testing.replies import RuleResponder

GATES = "gates:\n  baseline: frontier\n  candidate: tuned\n  rules:\n    - {metric: accuracy, max_drop: 0.9}\n"
PLAIN_KEY = "plainKEY9f8e7d6c5b4a3"  # no known key shape: redacted because a model's api_key_env named it


def test_key_shaped_strings_are_redacted_wherever_they_come_from():
    for secret in ("sk-proj-AbC123xyz987654", "sk-ant-api03-abcdefgh12345678", "AIzaSyA1234567890abcdefghijklmnopqrstu",
                   "AKIAIOSFODNN7EXAMPLE", "ghp_" + "a1" * 18, "hf_" + "Ab" * 17, "xoxb-1234567890-abcdefghij"):
        text = redact_text(f"error: got {secret} from you")
        assert secret not in text and REDACTED in text, secret
    assert redact_text("Authorization: Bearer abc.def-ghi") == f"Authorization: {REDACTED}"
    assert redact_text("ask-me-anything, a risk-based view") == "ask-me-anything, a risk-based view"
    assert redact({"api_key": "x", "api_key_env": "OPENAI_API_KEY", "n": 1}) == {
        "api_key": REDACTED, "api_key_env": "OPENAI_API_KEY", "n": 1}


def test_keys_in_the_environment_are_redacted_by_value(monkeypatch):
    monkeypatch.setenv("SOMEPROVIDER_API_KEY", "zz-9911-unshaped-key")
    assert redact_text("echo: zz-9911-unshaped-key!") == f"echo: {REDACTED}!"
    monkeypatch.delenv("SOMEPROVIDER_API_KEY")
    assert redact_text("echo: zz-9911-unshaped-key!") == "echo: zz-9911-unshaped-key!"


def _texts(path: Path) -> str:
    """Everything readable in an output file or folder, decompressed, as one string."""
    if path.is_dir():
        return "\n".join(_texts(p) for p in sorted(path.rglob("*")) if p.is_file())
    if path.suffix == ".parquet":
        return json.dumps(pq.read_table(path).to_pylist(), default=str)
    if path.suffix == ".eval":
        with zipfile.ZipFile(path) as zf:
            return "\n".join(zf.read(n).decode("utf-8", "replace") for n in zf.namelist())
    return path.read_bytes().decode("utf-8", "replace")


def _all_stored_text(db: Path) -> str:
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        return json.dumps({t: con.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables}, default=str)
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.parametrize("key, env", [(TEST_KEY, "EVALKIT_TEST_KEY"), (PLAIN_KEY, "EVALKIT_MODEL_AUTH_VALUE")],
                         ids=["key-shaped", "plain"])
def test_an_echoed_key_is_nowhere(make_suite, email_rows, tmp_path, monkeypatch, key, env):
    monkeypatch.setenv(env, key)
    monkeypatch.delenv("EVALKIT_DB", raising=False)
    rules = {"models": {"frontier": {"rules": [{"pattern": "FREE|meds|won", "reply": "spam"},
                                               {"pattern": "Lunch", "reply": f"ham (your key is {key})"}],
                                     "default": {"reply": "ham"}},
                        "tuned": {"rules": [{"pattern": "FREE|meds|won", "reply": "spam"}], "default": {"reply": "ham"}}}}
    faults = [Fault("status", status=400, echo_key=True, times=2, model="frontier"),
              Fault("status", status=503, echo_key=True, times=3, model="tuned")]
    runner = CliRunner()
    db, out = tmp_path / "k.duckdb", tmp_path / "out"
    with DevServer(RuleResponder.from_dict(rules), api_key=key, faults=faults) as server:
        text = LABEL_SUITE.format(base=server.url).replace("EVALKIT_TEST_KEY", env) + GATES
        suite = str(make_suite(text, rows=email_rows))
        printed = [runner.invoke(main, ["run", suite, "--db", str(db)])]
    assert printed[0].exit_code == 0, printed[0].output
    printed += [
        runner.invoke(main, ["export", "parquet", "latest", "-o", str(out / "parquet"), "--db", str(db)]),
        runner.invoke(main, ["export", "inspect", "latest", "-o", str(out / "inspect"), "--db", str(db)]),
        runner.invoke(main, ["report", "latest", "-o", str(out / "report.html"), "--db", str(db)]),
        runner.invoke(main, ["compare", "latest", "--baseline", "frontier", "--candidate", "tuned", "--json",
                             "--db", str(db)]),
        runner.invoke(main, ["gate", suite, "--db", str(db), "--markdown", str(out / "summary.md"),
                             "--junit", str(out / "junit.xml")]),
        runner.invoke(main, ["show", "latest", "--json", "--db", str(db)]),
    ]
    assert [r.exit_code for r in printed] == [0] * len(printed), [r.output for r in printed]
    stored = _all_stored_text(db)
    assert REDACTED in stored  # the echo happened and was caught, not merely absent
    assert key not in stored
    assert key.encode() not in db.read_bytes()
    for path in (out / "parquet", out / "inspect", out / "report.html", out / "summary.md", out / "junit.xml"):
        assert path.exists() and key not in _texts(path), path
    for result in printed:
        assert key not in result.stdout and key not in result.stderr


def test_a_key_spelled_across_tokens_is_redacted_in_the_logprobs():
    from evalkit.redact import redact_logprobs

    pieces = ["ham", " key", " sk", "-proj", "-AbC123", "xyz987654", " ok"]
    entries = [{"token": t, "logprob": -0.1, "top": [[t, -0.1], ["sk-live-1234567890ab", -3.0]]} for t in pieces]
    out = redact_logprobs(entries)
    assert [e["token"] for e in out] == ["ham", " key", REDACTED, REDACTED, REDACTED, REDACTED, " ok"]
    assert all(e["top"][1][0] == REDACTED for e in out) and out[0]["top"][0] == ["ham", -0.1]
