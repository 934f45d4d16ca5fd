"""JSON targets stay JSON: stored as a DuckDB JSON value (``target->>'field'`` works), compared as JSON (key order
and whitespace do not matter), shown as JSON in the report; stores written before schema 8 are converted."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from conftest import TEST_KEY

from evalkit.analysis.metrics import compute_run_metrics
from evalkit.config.loader import load_suite
from evalkit.config.prompts import json_target
from evalkit.engine.runner import run_suite
from evalkit.errors import StoreError
from evalkit.report import write_report
from evalkit.scoring.builtin import exact
from evalkit.store import Store
from evalkit.store.migrations import MIGRATIONS
from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import RuleResponder

ROWS = [{"id": "r1", "text": "Love it", "sentiment": "positive", "topic": "product"},
        {"id": "r2", "text": "Late again", "sentiment": "negative", "topic": "delivery"},
        {"id": "r3", "text": "It is fine", "sentiment": "neutral", "topic": "product"}]
SUITE = """
evalkit: 1
name: reviews
dataset: {{path: data.jsonl}}
prompt: {{user: "Classify: {{{{ text }}}}"}}
output: {{type: json}}
target:
  template: "{{{{ {{'sentiment': sentiment, 'topic': topic}} | tojson }}}}"
scoring: {{scorer: exact}}
models:
  frontier: {{provider: litellm, model: openai/frontier, api_base: "{base}", api_key_env: EVALKIT_TEST_KEY,
              params: {{temperature: 0}}}}
  tuned: {{provider: vllm, api_base: "{base}", base_model: base, adapter: tuned, api_key_env: EVALKIT_TEST_KEY,
           stream: false}}
run: {{warmup: 0, bootstrap: 50}}
gates: {{baseline: frontier, candidate: tuned}}
"""


def test_json_text_of_an_object_or_list_becomes_that_value():
    assert json_target(' {"a": 1} ') == {"a": 1} and json_target("[1, 2]") == [1, 2]
    assert json_target("spam") == "spam" and json_target("3") == "3" and json_target("{not json}") == "{not json}"
    assert json_target({"a": 1}) == {"a": 1} and json_target(None) is None


def test_exact_compares_json_as_json():
    assert exact({"topic": "x", "sentiment": "neutral"}, {"sentiment": "neutral", "topic": "x"}) == 1.0
    assert exact('{ "b": [1, 2],\n "a": 1 }', {"a": 1, "b": [1, 2]}) == 1.0    # a text answer, parsed
    assert exact({"a": 1}, '{"a":1}') == 1.0                                      # a target still as text
    assert exact({"a": 1}, {"a": 2}) == 0.0 and exact("spam", "spam ") == 1.0


@pytest.mark.slow  # a run of two models on the dev server and a report: ~3 s
def test_a_tojson_target_is_stored_compared_and_shown_as_json(make_suite, tmp_path: Path, monkeypatch):
    rules = {"models": {
        # key order and whitespace differ from the target's; the tuned stand-in gets r2's sentiment wrong
        "frontier": {"rules": [{"pattern": "Love", "reply": '{"topic": "product",  "sentiment": "positive"}'},
                               {"pattern": "Late", "reply": '{ "topic": "delivery", "sentiment": "negative" }'}],
                     "default": {"reply": '{"topic":"product","sentiment":"neutral"}'}},
        "tuned": {"rules": [{"pattern": "Love", "reply": '{"sentiment": "positive", "topic": "product"}'},
                            {"pattern": "Late", "reply": '{"sentiment": "neutral", "topic": "delivery"}'}],
                  "default": {"reply": '{"sentiment": "neutral", "topic": "product"}'}}}}
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    with DevServer(RuleResponder.from_dict(rules), api_key=TEST_KEY) as server:
        loaded = load_suite(make_suite(SUITE.format(base=server.url), rows=ROWS))
        summary = run_suite(loaded, str(tmp_path / "j.duckdb"))
    with Store(tmp_path / "j.duckdb", read_only=True) as store:
        found = store.dicts("SELECT sample_id, json_type(target) AS kind, target->>'sentiment' AS sentiment "
                            "FROM samples WHERE run_id = ? ORDER BY position", [summary.run_id])
        accuracy = {m["model"]: m["value"] for m in store.metrics(summary.run_id) if m["metric"] == "accuracy"}
        html = write_report(store, summary.run_id, tmp_path / "report.html").read_text()
    assert [(f["kind"], f["sentiment"]) for f in found] == [
        ("OBJECT", "positive"), ("OBJECT", "negative"), ("OBJECT", "neutral")]
    assert accuracy == {"frontier": 1.0, "tuned": pytest.approx(2 / 3)}
    # the regression's target, as JSON (autoescaped), not a JSON string of JSON
    assert "{&#34;sentiment&#34;: &#34;negative&#34;, &#34;topic&#34;: &#34;delivery&#34;}" in html
    assert "\\&#34;sentiment" not in html


def _old_store(path: Path) -> None:
    """A store as evalkit wrote it before schema 8 (migrations 1-6, targets as JSON strings)."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
                "applied_at TIMESTAMP NOT NULL)")
    for version, name, sql in MIGRATIONS[:6]:
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
    runs = {"json": {"output": {"type": "json"}}, "label": {"output": {"type": "label", "labels": ["Ham", "spam"]}}}
    for run_id, config in runs.items():
        con.execute("INSERT INTO runs (run_id, suite_name, suite_hash, status, created_at, config) "
                    "VALUES (?, 's', 'h', 'complete', now(), ?)", [run_id, json.dumps(config)])
        con.execute("INSERT INTO run_models (run_id, model, provider, status) VALUES (?, 'm', 'vllm', 'complete')",
                    [run_id])
    samples = [("json", "a", json.dumps('{"sentiment": "neutral", "n": 2}')), ("json", "b", json.dumps("[1, 2]")),
               ("json", "c", json.dumps("plain text")), ("label", "d", json.dumps("ham")),
               ("label", "e", json.dumps(" SPAM")), ("label", "f", json.dumps("other"))]
    for i, (run_id, sample_id, target) in enumerate(samples):
        con.execute("INSERT INTO samples (run_id, sample_id, position, target) VALUES (?, ?, ?, ?)",
                    [run_id, sample_id, i, target])
        answer = {"d": "Ham", "e": "Ham", "f": None}.get(sample_id)
        con.execute("INSERT INTO results (run_id, model, sample_id, repeat, status, parsed, schema_valid, quality, "
                    "correct, attempts, cache_hit, cache_key, created_at) VALUES (?, 'm', ?, 0, 'ok', ?, ?, 0, false, "
                    "1, false, ?, now())", [run_id, sample_id, json.dumps(answer) if answer else None,
                                            answer is not None, sample_id])
    con.close()


def test_a_store_written_before_schema_7_is_converted(tmp_path: Path):
    _old_store(tmp_path / "old.duckdb")
    with pytest.raises(StoreError, match=r"needs a schema upgrade \(6 → "):  # as for every migration
        Store(tmp_path / "old.duckdb", read_only=True)
    with Store(tmp_path / "old.duckdb") as store:
        assert store.schema_version() == MIGRATIONS[-1][0]
        rows = {r["sample_id"]: r for r in store.dicts(
            "SELECT sample_id, json_type(target) AS kind, target->>'sentiment' AS sentiment, target_label->>'$' AS cls "
            "FROM samples")}
        assert (rows["a"]["kind"], rows["a"]["sentiment"]) == ("OBJECT", "neutral")
        assert rows["b"]["kind"] == "ARRAY" and rows["c"]["kind"] == "VARCHAR"  # plain text stays text
        # label runs get their target classes: the allowed label it names (ignoring case and spaces), else itself
        assert [rows[s]["cls"] for s in "def"] == ["Ham", "spam", "other"] and rows["a"]["cls"] is None
        confusion = store.dicts("SELECT target_label, predicted_label, n FROM confusion ORDER BY ALL")
        assert confusion == [{"target_label": "Ham", "predicted_label": "Ham", "n": 1},
                             {"target_label": "other", "predicted_label": "(invalid)", "n": 1},
                             {"target_label": "spam", "predicted_label": "Ham", "n": 1}]
        compute_run_metrics(store, "label", resamples=20)
        macro = {m["metric"]: m["value"] for m in store.metrics("label")}["macro_f1"]
        assert macro == pytest.approx((2 / 3 + 0 + 0) / 3)  # Ham: tp 1, fp 1; spam and other: missed


def test_an_export_written_before_schema_7_is_upgraded_on_import(tmp_path: Path):
    """Parquet files of an older export (string targets, no target_label) get schema 8's upgrade on import."""
    from evalkit.store.parquet import export_run, import_runs

    _old_store(tmp_path / "old.duckdb")
    with Store(tmp_path / "old.duckdb") as store:
        export_run(store, "label", tmp_path / "part")
        export_run(store, "json", tmp_path / "part_json")
    for folder in ("part", "part_json"):  # rewrite the samples as the older version wrote them
        samples = str(tmp_path / folder / "samples.parquet")
        con = duckdb.connect()
        con.execute("COPY (SELECT * EXCLUDE (target_label) REPLACE (CASE WHEN json_type(target::JSON) IN "
                    "('OBJECT', 'ARRAY') THEN to_json(target::VARCHAR)::VARCHAR ELSE target END AS target) "
                    f"FROM read_parquet('{samples}')) TO '{samples}.new' (FORMAT parquet)")
        con.close()
        Path(samples + ".new").replace(samples)
    with Store(tmp_path / "new.duckdb") as store:
        import_runs(store, [tmp_path / "part"], run_id="label2")
        import_runs(store, [tmp_path / "part_json"], run_id="json2")
        classes = [r[0] for r in store.sql("SELECT target_label->>'$' FROM samples WHERE run_id = 'label2' "
                                           "ORDER BY position")]
        kinds = [r[0] for r in store.sql("SELECT json_type(target) FROM samples WHERE run_id = 'json2' "
                                         "ORDER BY position")]
    assert classes == ["Ham", "spam", "other"] and kinds == ["OBJECT", "ARRAY", "VARCHAR"]
