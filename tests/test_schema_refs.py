"""JSON Schema $refs at validate time: local files through one prebuilt registry; remote only when allowed,
and then fetched once for the whole run, never per sample."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import EMAILS, TEST_KEY

from evalkit.config.loader import load_suite
from evalkit.engine.runner import run_suite
from evalkit.errors import ConfigError
from evalkit.scoring.prepare import prepare
from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import RuleResponder

SUITE = """
evalkit: 1
name: refs
dataset: {{path: data.jsonl}}
prompt: {{user: "{{{{ subject }}}}"}}
output:
  type: json
  schema: schema.json
{extra}
target: {{template: '{{"label": "{{{{ label }}}}"}}'}}
scoring: {{scorer: json_fields, fields: [label]}}
models:
  tuned: {{provider: vllm, api_base: "{base}", base_model: base, adapter: tuned, api_key_env: EVALKIT_TEST_KEY,
          stream: false}}
run: {{retries: 0, bootstrap: 0}}
"""
LABEL = {"type": "object", "required": ["label"], "properties": {"label": {"enum": ["ham", "spam"]}}}


class _SchemaHandler(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        type(self).hits += 1
        body = json.dumps(LABEL).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/schema+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def schema_host():
    _SchemaHandler.hits = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _SchemaHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/label.json"
    httpd.shutdown()
    httpd.server_close()


def _write(make_suite, base, schema, extra=""):
    path = make_suite(SUITE.format(base=base, extra=extra), rows=EMAILS)
    (path.parent / "schema.json").write_text(json.dumps(schema))
    return load_suite(path)


def test_a_remote_ref_is_refused_without_touching_the_network(make_suite, schema_host):
    loaded = _write(make_suite, "http://127.0.0.1:9/v1", {"$ref": schema_host})
    with pytest.raises(ConfigError, match="is remote; evalkit resolves \\$ref from local files only"):
        prepare(loaded)
    assert _SchemaHandler.hits == 0


def test_an_allowed_remote_ref_is_fetched_once_for_the_whole_run(make_suite, schema_host, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    rules = {"models": {"tuned": {"rules": [{"pattern": "FREE|meds|won", "reply": '{"label": "spam"}'},
                                            {"pattern": "Lunch", "reply": '{"label": "lunch"}'}],
                                  "default": {"reply": '{"label": "ham"}'}}}}
    with DevServer(RuleResponder.from_dict(rules), api_key=TEST_KEY) as server:
        loaded = _write(make_suite, server.url, {"$ref": schema_host}, extra="  allow_remote_refs: true")
        summary = run_suite(loaded, str(tmp_path / "r.duckdb"))
    assert _SchemaHandler.hits == 1  # at validate time, not once per sample
    with Store(tmp_path / "r.duckdb", read_only=True) as store:
        valid = dict(store.sql("SELECT sample_id, schema_valid FROM results WHERE run_id = ?", [summary.run_id]))
    # The remote schema really scored the answers: "lunch" is not in its enum.
    assert valid == {"e1": True, "e2": True, "e3": True, "e4": True, "e5": False, "e6": True}


def test_scoring_uses_the_registry_built_at_validate_time(make_suite, tmp_path):
    loaded = _write(make_suite, "http://127.0.0.1:9/v1", {"$ref": "defs/label.json"})
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "label.json").write_text(json.dumps(LABEL))
    prepared = prepare(loaded)
    (tmp_path / "defs" / "label.json").unlink()  # scoring must not need the file again
    from evalkit.records import Completion

    score = prepared.scorer.score(prepared.rendered[0], Completion(text='{"label": "maybe"}'))
    assert score.schema_valid is False and any("maybe" in e for e in score.schema_errors)
    assert prepared.scorer.score(prepared.rendered[0], Completion(text='{"label": "ham"}')).schema_valid is True


def test_the_suite_hash_covers_the_files_the_schema_references(make_suite, tmp_path):
    loaded = _write(make_suite, "http://127.0.0.1:9/v1", {"$ref": "defs/a.json"})
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "a.json").write_text(json.dumps({"$ref": "b.json#/$defs/x"}))
    (tmp_path / "defs" / "b.json").write_text(json.dumps({"$defs": {"x": LABEL}}))
    before = loaded.content_hash()
    (tmp_path / "defs" / "b.json").write_text(json.dumps({"$defs": {"x": {**LABEL, "required": []}}}))
    assert loaded.content_hash() != before  # a resume against changed schema files is refused
