"""``evalkit report --history``: a suite's runs across stores, every point a stored value; the run report's
header (description, roles, stand-in notes, baseline run link) and labelled config tables."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from conftest import LABEL_SUITE, TEST_KEY, TRIAGE_RULES

from evalkit.cli import main
from evalkit.config.loader import load_suite
from evalkit.engine.runner import run_suite
from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import RuleResponder

GATES = ("gates:\n  baseline: frontier\n  candidate: tuned\n  rules:\n"
         "    - {metric: accuracy, max_drop: 0.0, significance: point}\n")


@pytest.fixture
def two_stores(make_suite, email_rows, tmp_path, monkeypatch):
    """Three runs of one suite: two in a.duckdb (the second with a changed dataset), one in b.duckdb."""
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    runs = []
    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY) as server:
        text = (LABEL_SUITE.format(base=server.url).replace("name: triage\n", "name: triage\ndescription: "
                "Spam triage <b>bold</b> & co.\n").replace("    api_key_env: EVALKIT_TEST_KEY\n    params: {temperature: "
                "0, max_tokens: 8}\n  tuned:", "    api_key_env: EVALKIT_TEST_KEY\n    params: {temperature: 0, "
                "max_tokens: 8}\n    note: \"stand-in: the base model plays the frontier\"\n  tuned:") + GATES)
        for db, rows in (("a", email_rows), ("a", email_rows[:5]), ("b", email_rows)):
            loaded = load_suite(make_suite(text, rows=rows))
            runs.append((tmp_path / f"{db}.duckdb", run_suite(loaded, str(tmp_path / f"{db}.duckdb")).run_id))
    return tmp_path, runs


@pytest.mark.slow
def test_history_merges_stores_and_every_point_is_a_stored_value(two_stores):
    tmp_path, runs = two_stores
    out = tmp_path / "history.html"
    result = CliRunner().invoke(main, ["report", "--history", "triage", "--db", str(tmp_path / "a.duckdb"),
                                       "--db", str(tmp_path / "b.duckdb"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    order = re.findall(r'data-history-run="([^"]+)"', html)
    assert order == [r for _, r in runs]  # oldest first, across both stores
    points = {(m.group(1), m.group(2), m.group(3)): m.group(4) for m in re.finditer(
        r'data-history-point="([^"]+)" data-model="([^"]+)" data-metric="([^"]+)" data-value="([^"]+)"', html)}
    checked = 0
    for db, run_id in runs:
        with Store(db, read_only=True) as store:
            for m in store.metrics(run_id):
                key = (run_id, m["model"], m["metric"])
                if key in points:
                    assert float(points[key]) == pytest.approx(m["value"], rel=1e-12), key
                    checked += 1
        # the verdict shown is the one `evalkit gate` gives that run with the suite stored with it
        gate = CliRunner().invoke(main, ["gate", str(tmp_path / "suite.yaml"), "--run", run_id, "--db", str(db),
                                         "--json"])
        verdict = json.loads(gate.stdout)["verdict"]
        assert f'data-history-run="{run_id}" data-gate-verdict="{verdict}"' in html
    assert checked >= 3 * 2 * 3
    assert (runs[0][1], "tuned", "accuracy") in points and 'data-history-chart="accuracy"' in html
    assert "Content-Security-Policy" in html and "<script src" not in html
    missing = CliRunner().invoke(main, ["report", "--history", "nope", "--db", str(tmp_path / "a.duckdb")])
    assert missing.exit_code == 2 and "no run of suite 'nope'" in missing.stderr


@pytest.mark.slow
def test_run_report_header_names_roles_notes_and_links_the_previous_run(two_stores):
    tmp_path, runs = two_stores
    db, second = runs[1]
    out = tmp_path / "second.html"
    result = CliRunner().invoke(main, ["report", second, "--db", str(db), "-o", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "Spam triage &lt;b&gt;bold&lt;/b&gt; &amp; co." in html  # the description, escaped
    assert 'data-role-model="frontier" data-role="baseline"' in html
    assert 'data-role-model="tuned" data-role="candidate"' in html
    assert 'data-model-note="frontier">stand-in: the base model plays the frontier<' in html
    assert f'<a href="triage-{runs[0][1]}.html"><code>{runs[0][1]}</code></a> (the previous run of this suite' in html
    assert re.search(r"started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", html)  # to the second, no microseconds
    assert 'data-config-model="tuned"' in html and '<pre class="cfg">' not in html
    assert 'data-not-applicable="feasible_rate"' in html and 'data-row="feasible_rate"' not in html


@pytest.mark.slow
def test_history_page_screenshots(two_stores):
    from test_report import CHROMIUM, FIREFOX, screenshots

    if CHROMIUM is None and FIREFOX is None:
        pytest.skip("neither Chromium nor Firefox is installed")
    tmp_path, runs = two_stores
    out = tmp_path / "history.html"
    result = CliRunner().invoke(main, ["report", "--history", "triage", "--db", str(tmp_path / "a.duckdb"),
                                       "--db", str(tmp_path / "b.duckdb"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert screenshots(tmp_path, out, "history", height=1800)
