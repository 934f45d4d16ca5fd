"""The layout reads as the pipeline, and stays so.

Stages, in import order (a module may import its own stage and the stages before it, never after):

    ground    errors, records, redact, version   the error tree; ChatRequest / Completion; secrets out; __version__
    config    suite, loader, dataset, prompts, shards, provenance
    backends  one module per provider, the registry
    scoring   parse, built-ins, custom, confidence, the per-sample pipeline, prepare
    store     connection, migrations, row builders, queries, Parquet
    analysis  metrics, bootstrap, paired, gates, routing, costs, retention comparison, summary
    interop   inspect-ai logs, the lm-eval runner
    engine    runner, progress, per-call pricing
    report    HTML report, CI renderers (text, Markdown, JUnit)
    cli       the click group and its commands: imported by nothing
    testing   the dev server: imported by no pipeline stage

Also: only the store holds SQL and the connection; no module over 400 lines; no import cycle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "evalkit"
STAGES = ["ground", "config", "backends", "scoring", "store", "analysis", "interop", "engine", "report", "cli"]
GROUND = {"evalkit.errors", "evalkit.records", "evalkit.redact", "evalkit.version"}
MAX_LINES = 400


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _stage(module: str) -> str | None:
    if module in GROUND:
        return "ground"
    if module == "evalkit":
        return None  # the package face: lazy re-exports of the public API
    return module.split(".")[1]


def _imports(path: Path, module_level_only: bool = False) -> set[str]:
    """The evalkit modules a file imports (from X import name → X.name when that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("evalkit")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("evalkit"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in MODULES else node.module)
    return {m for m in found if m != "evalkit"}


def test_every_package_is_a_known_stage():
    stages = {_stage(m) for m in MODULES} - {None}
    assert stages <= set(STAGES) | {"testing"}, stages - set(STAGES)


def test_each_stage_imports_only_earlier_stages():
    wrong = []
    for module, path in MODULES.items():
        stage = _stage(module)
        if stage is None:
            continue
        for imported in _imports(path):
            target = _stage(imported)
            if target is None:
                continue
            if stage == "testing":
                ok = target != "cli"
            elif target == "testing":
                ok = False
            else:
                ok = STAGES.index(target) <= STAGES.index(stage)
            if not ok:
                wrong.append(f"{module} ({stage}) imports {imported} ({target})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_between_modules():
    graph = {m: {i for i in _imports(p, module_level_only=True) if i in MODULES} for m, p in MODULES.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" → ".join(trail[trail.index(nxt):] + [nxt]) if nxt in trail else f"{node} → {nxt}")
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_at_most_400_lines(module):
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module]} has {lines} lines; split it by role"


_SQL = re.compile(r"^\s*(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE TABLE|BEGIN|COMMIT|ROLLBACK)\b")
# The dataset filter runs a user's DuckDB expression over the dataset file in an in-memory database: that is
# the data, not the store.
_SQL_ALLOWED = {"evalkit.config.dataset"}


def test_only_the_store_holds_sql_and_the_connection():
    wrong = []
    for module, path in MODULES.items():
        if _stage(module) == "store" or module in _SQL_ALLOWED:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL.match(node.value):
                wrong.append(f"{module}:{node.lineno}: SQL text {node.value[:60]!r}")
            elif isinstance(node, ast.Attribute) and node.attr in ("sql", "one", "dicts", "frame", "arrow", "_con",
                                                                    "con", "insert_batch", "insert_row"):
                wrong.append(f"{module}:{node.lineno}: .{node.attr} (use a Store query method)")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if "duckdb" in names:
                    wrong.append(f"{module}:{node.lineno}: imports duckdb")
    assert not wrong, "\n".join(wrong)


def test_nothing_imports_the_cli_or_the_dev_server_from_the_pipeline():
    for module, path in MODULES.items():
        if _stage(module) in ("cli", "testing", None):
            continue
        bad = {i for i in _imports(path) if _stage(i) in ("cli", "testing")}
        assert not bad, f"{module} imports {bad}"
