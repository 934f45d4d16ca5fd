"""More bad input (issue #21): each a clear one-line error naming the row or file, exit 2, store untouched.

Ids must be strings or integers (an integral float such as ``3.0``, as spreadsheets and pandas write
integer columns with gaps, is the integer 3); a null target is an error unless ``target.allow_null``;
JSON Schema ``$ref`` s are resolved from local files at validate time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EMAILS, write_jsonl
from test_bad_input import JSON_PART, LABEL_PART, SUITE, both, suite_edit, workspace, write  # noqa: F401

from evalkit.cli import main
from evalkit.store import Store

ROW = '{"id": ID, "subject": "a", "label": "ham"}\n'
CUSTOM = "scoring:\n  scorer: custom\n  custom: score.py:grade\nrun:"
GRADER = "def grade(answer, target, sample):\n    return target is None or answer == target\n"


def ids(value: str):
    return write("data.jsonl", ROW.replace("ID", value))


CASES = [
    ("control character in a JSON line", write("data.jsonl", '{"id": 1, "subject": "a\tb", "label": "ham"}\n'),
     [], "data.jsonl:1: invalid JSON (Invalid control character at column"),
    ("dataset path is a directory", both(suite_edit("path: data.jsonl", "path: folder.jsonl"),
                                         lambda ws: (ws / "folder.jsonl").mkdir()), [],
     "folder.jsonl is a directory, not a data file"),
    ("id is an object", ids('{"k": 1}'), [], "data.jsonl:1: id {\"k\": 1} (field 'id') is an object"),
    ("id is a list", ids("[1, 2]"), [], "data.jsonl:1: id [1, 2] (field 'id') is a list"),
    ("id is a boolean", ids("true"), [], "data.jsonl:1: id true (field 'id') is a boolean"),
    ("id is a fraction", ids("1.5"), [], "data.jsonl:1: id 1.5 (field 'id') is a non-integral number"),
    ("id is null", ids("null"), [], "data.jsonl:1: empty id in field 'id'"),
    ("target is null", write("data.jsonl", '{"id": 7, "subject": "a", "label": null}\n'), [],
     "sample '7': target field 'label' is null; set target.allow_null: true"),
    ("allow_null with a built-in scorer", suite_edit("  field: label", "  field: label\n  allow_null: true"), [],
     "target.allow_null needs scoring.scorer: custom"),
]


@pytest.mark.parametrize("name, prepare, args, expected", CASES, ids=[c[0] for c in CASES])
def test_more_bad_input(name, prepare, args, expected, workspace: Path, monkeypatch):  # noqa: F811
    monkeypatch.chdir(workspace)
    monkeypatch.delenv("EVALKIT_DB", raising=False)
    prepare(workspace)
    args = (args or ["run", str(workspace / "suite.yaml")]) + ["--db", str(workspace / "store.duckdb")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.output and " at at " not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    with Store(workspace / "store.duckdb", read_only=True) as store:
        assert store.sql("SELECT run_id FROM runs") == [("r-keep",)]


def test_integral_float_ids_are_integers(workspace: Path):  # noqa: F811
    (workspace / "data.jsonl").write_text(ROW.replace("ID", "3.0") + ROW.replace("ID", '"x"'))
    result = CliRunner().invoke(main, ["validate", str(workspace / "suite.yaml")])
    assert result.exit_code == 0, result.output
    (workspace / "data.jsonl").write_text(ROW.replace("ID", "3.0") + ROW.replace("ID", "3"))
    result = CliRunner().invoke(main, ["validate", str(workspace / "suite.yaml")])
    assert result.exit_code == 2 and "duplicate id '3'" in result.stderr, result.output


def test_allow_null_hands_null_targets_to_a_custom_scorer(workspace: Path):  # noqa: F811
    text = (workspace / "suite.yaml").read_text().replace("  field: label", "  field: label\n  allow_null: true")
    (workspace / "suite.yaml").write_text(text.replace("run:", CUSTOM))
    (workspace / "score.py").write_text(GRADER)
    write_jsonl(workspace / "data.jsonl", [dict(EMAILS[0], label=None), EMAILS[1]])
    result = CliRunner().invoke(main, ["validate", str(workspace / "suite.yaml")])
    assert result.exit_code == 0, result.output
    assert "1 sample has a null target" in result.stdout, result.stdout


def _schema_case(schema: dict, **files: dict | str):
    def apply(ws: Path) -> None:
        suite_edit(LABEL_PART, JSON_PART)(ws)
        (ws / "schema.json").write_text(json.dumps(schema, indent=2))
        for name, content in files.items():
            path = ws / name.replace("__", "/").replace("_json", ".json")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content if isinstance(content, str) else json.dumps(content))
    return apply


REF_CASES = [
    ("$ref to a missing file", _schema_case({"type": "object", "properties": {"a": {"$ref": "defs.json"}}}), [],
     "schema.json:5: $ref 'defs.json' at properties/a: file not found:"),
    ("$ref with a bad pointer", _schema_case({"$ref": "defs.json#/definitions/nope"},
                                              defs_json={"definitions": {"label": {"type": "string"}}}), [],
     "schema.json:2: $ref 'defs.json#/definitions/nope' at (root): no '/definitions/nope' in"),
    ("$ref to a local pointer that is absent", _schema_case({"$ref": "#/$defs/missing"}), [],
     "$ref '#/$defs/missing' at (root): no '/$defs/missing' in"),
    ("$ref to a missing file two files down", _schema_case(
        {"$ref": "sub/a.json"}, sub__a_json={"$ref": "b.json"}), [], "a.json:1: $ref 'b.json' at (root): file not found:"),
    ("remote $ref without allow_remote_refs", _schema_case({"$ref": "https://example.com/s.json"}), [],
     "$ref 'https://example.com/s.json' at (root) is remote; evalkit resolves $ref from local files only"),
    ("referenced file is not JSON", _schema_case({"$ref": "defs.json"}, defs_json="{nope"), [],
     "defs.json:1: the referenced schema is not valid JSON"),
]


@pytest.mark.parametrize("name, prepare, args, expected", REF_CASES, ids=[c[0] for c in REF_CASES])
def test_schema_refs_are_checked_before_any_call(name, prepare, args, expected, workspace: Path,  # noqa: F811
                                                 monkeypatch):
    test_more_bad_input(name, prepare, args, expected, workspace, monkeypatch)


def test_local_refs_resolve_relative_to_the_schema_file(workspace: Path):  # noqa: F811
    _schema_case({"$ref": "sub/a.json"}, sub__a_json={"$ref": "b.json#/$defs/x"},
                 sub__b_json={"$defs": {"x": {"type": "object", "required": ["label"]}}})(workspace)
    result = CliRunner().invoke(main, ["validate", str(workspace / "suite.yaml")])
    assert result.exit_code == 0, result.output
