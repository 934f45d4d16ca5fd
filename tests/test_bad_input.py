"""Every bad input gets one clear line naming what to fix, a non-zero exit, and leaves the store intact.

One table: suite YAML, JSON Schemas, datasets, templates, scorers, model configs and CLI arguments.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from conftest import EMAILS, write_jsonl

from evalkit.cli import main
from evalkit.store import Store
from evalkit.store.db import now

SUITE = """\
evalkit: 1
name: bad-inputs
dataset:
  path: data.jsonl
prompt:
  user: "Subject: {{ subject }}"
output:
  type: label
  labels: [ham, spam]
target:
  field: label
models:
  m:
    provider: vllm
    api_base: http://127.0.0.1:9/v1
    base_model: base
run:
  retries: 0
"""
JSON_PART = "output:\n  type: json\n  schema: schema.json\ntarget:\n  field: label\nscoring:\n  scorer: exact\n"
LABEL_PART = "output:\n  type: label\n  labels: [ham, spam]\ntarget:\n  field: label\n"


def suite_edit(old: str, new: str) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        path = ws / "suite.yaml"
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new))
    return apply


def write(name: str, content: str | bytes) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        target = ws / name
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    return apply


def both(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        for step in steps:
            step(ws)
    return apply


def nothing(ws: Path) -> None:
    return None


CASES: list[tuple[str, Callable[[Path], None], list[str], str]] = [
    # --- suite YAML
    ("unknown top-level key", suite_edit("name: bad-inputs", "name: bad-inputs\ncolour: red"), [],
     "suite.yaml:3: colour: unknown key 'colour'"),
    ("misspelt nested key", suite_edit("  path: data.jsonl", "  paht: data.jsonl"), [],
     "dataset.paht: unknown key 'paht' (did you mean 'path'?)"),
    ("YAML syntax error", suite_edit('  user: "Subject: {{ subject }}"', "  user: [unclosed"), [], "invalid YAML"),
    ("empty suite file", write("suite.yaml", ""), [], "the suite file is empty"),
    ("suite is a list", write("suite.yaml", "- a\n- b\n"), [], "a suite must be a YAML mapping"),
    ("unsupported format version", suite_edit("evalkit: 1", "evalkit: 2"), [], "unsupported suite format version 2"),
    ("format version missing", suite_edit("evalkit: 1\n", ""), [], "missing 'evalkit: 1'"),
    ("bad suite name", suite_edit("name: bad-inputs", "name: 'bad inputs!'"), [], "name: String should match"),
    ("unquoted yes/no labels", suite_edit("labels: [ham, spam]", "labels: [yes, no]"), [],
     "output.labels.0: Input should be a valid string (YAML reads yes/no/on/off/true/false as booleans"),
    ("label output without labels", suite_edit("  labels: [ham, spam]\n", ""), [], "needs 'labels"),
    ("json_fields on a label output", suite_edit("run:", "scoring:\n  scorer: json_fields\n  fields: [a]\nrun:"), [],
     "scorer 'json_fields' needs output type 'json'"),
    ("concurrency zero", suite_edit("  retries: 0", "  retries: 0\n  concurrency: 0"), [], "run.concurrency"),
    ("reserved generation parameter", suite_edit("    base_model: base", "    base_model: base\n    params: {stream: true}"),
     [], "params may not set ['stream']"),
    ("gate names an unknown model", suite_edit("run:", "gates:\n  baseline: gpt9\nrun:"), [],
     "gates.baseline 'gpt9' is not one of the models"),
    ("suite file missing", nothing, ["run", "absent.yaml"], "suite file not found"),
    # --- JSON Schemas
    ("schema file missing", suite_edit(LABEL_PART, JSON_PART), [], "referenced file not found"),
    ("schema is not JSON", both(suite_edit(LABEL_PART, JSON_PART), write("schema.json", "{not json")), [],
     "schema.json:1: the JSON Schema is not valid JSON"),
    ("schema breaks the metaschema", both(suite_edit(LABEL_PART, JSON_PART), write("schema.json", '{"type": "objekt"}')),
     [], "output.schema: invalid JSON Schema"),
    ("schema is a list", both(suite_edit(LABEL_PART, JSON_PART), write("schema.json", "[1, 2]")), [],
     "the JSON Schema must be an object"),
    # --- datasets
    ("dataset missing", suite_edit("path: data.jsonl", "path: nothere.jsonl"), [], "dataset not found"),
    ("invalid JSON line", write("data.jsonl", '{"id": 1, "subject": "a", "label": "ham"}\n{"id": 2,\n'), [],
     "data.jsonl:2: invalid JSON"),
    ("duplicate ids", write("data.jsonl", '{"id": 1, "subject": "a", "label": "ham"}\n' * 2), [],
     "data.jsonl:2: duplicate id '1'"),
    ("missing id field", write("data.jsonl", '{"subject": "a", "label": "ham"}\n'), [], "data.jsonl:1: no 'id' field"),
    ("not UTF-8", write("data.jsonl", b'{"id": 1, "subject": "\xe9t\xe9", "label": "ham"}\n'), [],
     "data.jsonl:1: not UTF-8"),
    ("empty dataset", write("data.jsonl", ""), [], "the dataset has no rows"),
    ("a line that is not an object", write("data.jsonl", '"just a string"\n'), [],
     "data.jsonl:1: each line must be a JSON object"),
    ("CSV row with an extra value", both(suite_edit("data.jsonl", "data.csv"),
                                         write("data.csv", "id,subject,label\n1,a,ham\n2,b,spam,extra\n")), [],
     "data.csv:3: more values than header columns"),
    ("filter is not SQL", suite_edit("  path: data.jsonl", "  path: data.jsonl\n  filter: 'lable = 1'"), [],
     "dataset.filter 'lable = 1' is not a valid DuckDB SQL condition"),
    ("filter keeps nothing", suite_edit("  path: data.jsonl", "  path: data.jsonl\n  filter: \"label = 'x'\""), [],
     "keeps no sample"),
    ("unknown dataset format", both(suite_edit("path: data.jsonl", "path: data.txt"), write("data.txt", "x")), [],
     "cannot tell the format from the extension"),
    # --- templates
    ("template uses a missing field", suite_edit("{{ subject }}", "{{ subjekt }}"), [],
     "sample 'e1': prompt.user uses a field the sample lacks"),
    ("template syntax error", suite_edit("{{ subject }}", "{{ subject "), [], "prompt.user: template syntax error"),
    ("target field missing", suite_edit("  field: label", "  field: verdict"), [],
     "sample 'e1': target field 'verdict' is missing"),
    ("sandbox blocks unsafe template", suite_edit("{{ subject }}", "{{ subject.__class__.__mro__ }}"), [],
     "sample 'e1': prompt.user"),
    # --- scorers
    ("custom scorer function missing", both(
        suite_edit("run:", "scoring:\n  scorer: custom\n  custom: score.py:grade\nrun:"),
        write("score.py", "def other(a, t, s):\n    return 1.0\n")), [], "score.py has no function 'grade'"),
    ("custom scorer fails to import", both(
        suite_edit("run:", "scoring:\n  scorer: custom\n  custom: score.py:grade\nrun:"),
        write("score.py", "import not_a_module_xyz\n")), [], "importing score.py failed"),
    ("custom scorer takes the wrong arguments", both(
        suite_edit("run:", "scoring:\n  scorer: custom\n  custom: score.py:grade\nrun:"),
        write("score.py", "def grade(a):\n    return 1.0\n")), [], "must accept 3 positional arguments"),
    # --- model configs
    ("API key variable not set", suite_edit("    base_model: base", "    base_model: base\n    api_key_env: EVALKIT_NO_SUCH_KEY"),
     [], "environment variable EVALKIT_NO_SUCH_KEY is not set"),
    ("unknown provider", suite_edit("provider: vllm", "provider: sagemakerx"), [], "'litellm', 'vllm'"),
    ("endpoint variable not set", suite_edit("http://127.0.0.1:9/v1", "${EVALKIT_NO_SUCH_BASE}/v1"), [],
     "environment variable EVALKIT_NO_SUCH_BASE is not set"),
    ("connect mode without api_base", suite_edit("    api_base: http://127.0.0.1:9/v1\n", ""), [],
     "models.m: mode 'connect' needs api_base"),
    ("launch mode with api_base", suite_edit("provider: vllm", "provider: vllm\n    mode: launch"), [],
     "mode 'launch' starts its own engine: remove api_base"),
    ("launch adapter without adapter_path", suite_edit("    api_base: http://127.0.0.1:9/v1\n",
                                                       "    mode: launch\n    adapter: lora\n"), [],
     "mode 'launch' loads the adapter itself: give adapter_path"),
    ("launch adapter folder missing", suite_edit("    api_base: http://127.0.0.1:9/v1\n",
                                                 "    mode: launch\n    adapter: lora\n    adapter_path: nolora\n"),
     [], "models.m.adapter_path: no LoRA adapter at"),
    ("server_args in connect mode", suite_edit("    base_model: base", "    base_model: base\n    server_args: [--x]"), [],
     "server_args does not apply to mode 'connect'"),
    ("in-process mode asked to stream", suite_edit("    api_base: http://127.0.0.1:9/v1\n",
                                                   "    mode: inprocess\n    stream: true\n"), [],
     "mode 'inprocess' cannot stream"),
    ("unknown vLLM mode", suite_edit("provider: vllm", "provider: vllm\n    mode: lanch"), [],
     "'connect', 'launch', 'inprocess' or 'ray-data'"),
    # --- CLI arguments
    ("unknown --model", nothing, ["run", "SUITE", "--model", "gpt9"], "--model 'gpt9' is not in the suite"),
    ("--limit zero", nothing, ["run", "SUITE", "--limit", "0"], "Invalid value for '--limit'"),
    ("--resume an unknown run", nothing, ["run", "SUITE", "--resume", "nope"], "no run 'nope'"),
    ("show an unknown run", nothing, ["show", "nope"], "no run 'nope'"),
    ("--db is not an evalkit store", nothing, ["show", "latest", "--db", "FOREIGN"], "not an evalkit store"),
    ("--db is not a database", nothing, ["runs", "--db", "JUNK"], "cannot be opened"),
]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "suite.yaml").write_text(SUITE)
    write_jsonl(tmp_path / "data.jsonl", EMAILS)
    with Store(tmp_path / "store.duckdb") as store:  # a store with a run in it, which must survive
        store.create_run({"run_id": "r-keep", "suite_name": "kept", "suite_hash": "h", "status": "complete",
                          "created_at": now()})
        store.insert_results([{"run_id": "r-keep", "model": "m", "sample_id": "s", "repeat": 0, "status": "ok",
                               "quality": 1.0, "correct": True, "attempts": 1, "cache_hit": False, "cache_key": "k",
                               "created_at": now()}])
    con = duckdb.connect(str(tmp_path / "foreign.duckdb"))
    con.execute("CREATE TABLE t (x INT)")
    con.close()
    (tmp_path / "junk.duckdb").write_bytes(b"not a database" * 100)
    return tmp_path


def test_at_least_thirty_distinct_cases():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name, prepare, args, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, prepare, args, expected, workspace: Path, monkeypatch):
    monkeypatch.chdir(workspace)
    monkeypatch.delenv("EVALKIT_DB", raising=False)
    prepare(workspace)
    args = args or ["run", "SUITE"]
    replace = {"SUITE": str(workspace / "suite.yaml"), "FOREIGN": str(workspace / "foreign.duckdb"),
               "JUNK": str(workspace / "junk.duckdb")}
    args = [replace.get(a, a) for a in args]
    if "--db" not in args:
        args += ["--db", str(workspace / "store.duckdb")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.output
    if "Usage:" not in result.stderr:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    with Store(workspace / "store.duckdb", read_only=True) as store:  # nothing stored was lost or damaged
        assert store.sql("SELECT run_id FROM runs") == [("r-keep",)]
        assert store.one("SELECT count(*) FROM results") == (1,)


def test_huge_lines_and_odd_encodings_are_fine(workspace: Path):
    rows = [dict(EMAILS[0], id="big", subject="x" * 3_000_000), dict(EMAILS[1], id="accents", subject="Ünïcödé ✓")]
    (workspace / "data.jsonl").write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in rows).encode())
    result = CliRunner().invoke(main, ["validate", str(workspace / "suite.yaml")])
    assert result.exit_code == 0, result.output
    assert "2 samples rendered" in result.stdout
