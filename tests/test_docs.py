"""The README documents every command and every metric; the CLI's error handling keeps its promises."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli

from evalkit.analysis.metrics import METRICS
from evalkit.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_command_is_documented():
    missing = [name for name in main.commands if f"evalkit {name}" not in README]
    assert not missing, f"commands missing from README: {missing}"


def test_every_metric_is_documented():
    sql = (Path(__file__).resolve().parents[1] / "docs" / "metrics.sql").read_text()
    missing = [name for name in METRICS if name not in README and name not in sql]
    assert not missing, missing


def test_debug_flag_shows_the_traceback(tmp_path, cli_env):
    plain = run_cli(["validate", str(tmp_path / "absent.yaml")], cli_env)
    assert plain.returncode == 2 and plain.stderr.startswith("error: ") and "Traceback" not in plain.stderr
    assert len(plain.stderr.strip().splitlines()) == 1
    debug = run_cli(["--debug", "validate", str(tmp_path / "absent.yaml")], cli_env)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
