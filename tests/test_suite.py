"""Suite validation: good suites load; every mistake names the file, the key path and the line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from evalkit.config.loader import load_suite, suite_json_schema
from evalkit.errors import ConfigError

BASE = """
evalkit: 1
name: t
dataset:
  path: data.jsonl
prompt:
  user: "{{ text }}"
output:
  type: label
  labels: [a, b]
target:
  field: label
models:
  m:
    provider: vllm
    api_base: http://127.0.0.1:1/v1
    base_model: base
"""


def test_minimal_suite_loads_with_defaults(make_suite):
    loaded = load_suite(make_suite(BASE, rows=[{"id": 1, "text": "x", "label": "a"}]))
    suite = loaded.suite
    assert suite.run.concurrency == 8 and suite.run.cache is True and suite.scoring.scorer == "label_match"
    assert loaded.resolve("data.jsonl") == loaded.path.parent / "data.jsonl"
    assert len(loaded.content_hash()) == 64


@pytest.mark.parametrize("mutate, line, key, words", [
    (lambda t: t.replace("  type: label", "  type: label\n  colour: red"), 9, "output.colour", "unknown key 'colour'"),
    (lambda t: t.replace("  path: data.jsonl", "  paht: data.jsonl"), 4, "dataset.paht", "did you mean 'path'"),
    (lambda t: t.replace("    base_model: base", "    base_model: base\n    temprature: 0"), 17, "models.m.temprature",
     "unknown key"),
    (lambda t: t.replace("provider: vllm", "provider: bedrockx"), 14, "models.m", "provider"),
    (lambda t: t.replace("  labels: [a, b]\n", ""), 8, "output", "needs 'labels"),
    (lambda t: t.replace("name: t", "name: 'bad name!'"), 2, "name", "pattern"),
    (lambda t: t.replace("evalkit: 1", "evalkit: 7"), 1, "evalkit", "unsupported suite format version 7"),
    (lambda t: t.replace("target:\n  field: label\n", ""), None, None, "needs a 'target'"),
    (lambda t: t + "run:\n  concurrency: 0\n", 18, "run.concurrency", "greater than or equal to 1"),
    (lambda t: t.replace("  m:\n", "  'm m':\n"), None, "models", "letters, digits"),
    (lambda t: t.replace("    base_model: base", "    base_model: base\n    params: {messages: []}"), 17,
     "models.m.params", "may not set"),
    (lambda t: t.replace("  user: \"{{ text }}\"", "  system: hi"), None, "prompt", "needs 'user'"),
])
def test_bad_suites_name_key_and_line(make_suite, mutate, line, key, words):
    path = make_suite(mutate(BASE), rows=[{"id": 1, "text": "x", "label": "a"}])
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    message = str(info.value)
    assert str(path) in message
    assert words in message
    if line is not None:
        assert f"{path}:{line}:" in message, message
    if key is not None:
        assert key in message


def test_bad_yaml_reports_line(make_suite):
    path = make_suite("evalkit: 1\nname: x\nprompt:\n  user: [unclosed\n")
    with pytest.raises(ConfigError, match=r"suite.yaml:\d+: invalid YAML"):
        load_suite(path)


def test_missing_file_empty_file_and_non_mapping(make_suite, tmp_path):
    with pytest.raises(ConfigError, match="suite file not found"):
        load_suite(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="empty"):
        load_suite(make_suite("", name="empty.yaml"))
    with pytest.raises(ConfigError, match="mapping"):
        load_suite(make_suite("- a\n- b\n", name="list.yaml"))


def test_referenced_files_must_exist(make_suite):
    text = BASE.replace("  type: label\n  labels: [a, b]", "  type: json\n  schema: missing.schema.json")
    text = text.replace("target:\n  field: label\n", "target:\n  field: label\nscoring:\n  scorer: exact\n")
    with pytest.raises(ConfigError, match="referenced file not found: .*missing.schema.json"):
        load_suite(make_suite(text, rows=[{"id": 1, "text": "x", "label": "a"}]))


@pytest.mark.slow
def test_published_json_schema_accepts_example_suites_and_rejects_typos():
    import yaml

    schema = suite_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    suites = sorted(Path(__file__).resolve().parents[1].joinpath("suites").glob("**/*.yaml"))
    documents = [yaml.safe_load(p.read_text()) for p in suites]
    documents = [d for d in documents if isinstance(d, dict) and "evalkit" in d]  # skip rules files etc.
    assert documents, "no example suite found"
    for document in documents:
        jsonschema.validate(document, schema)
    bad = yaml.safe_load(BASE)
    bad["dataset"]["paht"] = "x"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_schema_command_prints_the_schema():
    out = subprocess.run([sys.executable, "-m", "evalkit.cli", "schema"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["title"].startswith("evalkit suite")
