"""The HTML report: every number equals the store, hostile model output is inert, nothing is fetched."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import LABEL_SUITE, TEST_KEY

from evalkit.config.loader import load_suite
from evalkit.engine.runner import run_suite
from evalkit.report import write_report
from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import RuleResponder


class Hits(BaseHTTPRequestHandler):
    count = 0

    def do_GET(self):  # noqa: N802 (http.server's naming)
        Hits.count += 1
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        return None


@pytest.fixture(scope="module")
def sink():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hits)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture
def report_file(make_suite, email_rows, tmp_path, monkeypatch, sink):
    hostile = (f'<script>document.body.setAttribute("data-pwned","script")</script>'
               f'<img src="http://127.0.0.1:{sink}/pwn.png" onerror="document.body.setAttribute(\'data-pwned\',\'img\')">')
    rules = {"models": {
        "frontier": {"rules": [{"pattern": "FREE|meds|won", "reply": "spam", "confidence": 0.95}],
                     "default": {"reply": "ham", "confidence": 0.9}},
        "tuned": {"rules": [{"pattern": "FREE|meds|won", "reply": "spam", "confidence": 0.8},
                            {"pattern": "Invoice", "reply": hostile, "confidence": 0.6}],
                  "default": {"reply": "ham", "confidence": 0.7}}}}
    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    with DevServer(RuleResponder.from_dict(rules), api_key=TEST_KEY) as server:
        gates = ("gates:\n  baseline: frontier\n  candidate: tuned\n  rules:\n"
                 "    - {metric: accuracy, max_drop: 0.0, significance: point}\n")
        text = LABEL_SUITE.format(base=server.url).replace("max_tokens: 8", "max_tokens: 200") + gates
        loaded = load_suite(make_suite(text, rows=email_rows))
        summary = run_suite(loaded, str(tmp_path / "r.duckdb"))
    with Store(tmp_path / "r.duckdb", read_only=True) as store:
        path = write_report(store, summary.run_id, tmp_path / "report.html")
        metrics = store.metrics(summary.run_id)
    return path, metrics, sink


class Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.values: dict[tuple[str, str], str] = {}
        self.attrs_seen: list[dict[str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self.attrs_seen.append(a)
        if "data-metric" in a:
            self.values[(a["data-model"], a["data-metric"])] = a["data-value"]


@pytest.mark.slow
def test_numbers_in_the_report_equal_the_store(report_file):
    path, metrics, _ = report_file
    parser = Cells()
    parser.feed(path.read_text())
    checked = 0
    for m in metrics:
        key = (m["model"], m["metric"])
        if key in parser.values:
            shown = parser.values[key]
            assert (shown == "" and m["value"] is None) or float(shown) == pytest.approx(m["value"], rel=1e-12), key
            checked += 1
    assert checked >= 2 * 10
    html = path.read_text()
    assert 'data-verdict="fail"' in html  # tuned loses e3 with max_drop 0 on the point estimate
    assert 'data-gate="accuracy" data-gate-verdict="fail"' in html
    assert 'data-sample="e3"' in html  # the regression is listed with both outputs
    assert 'data-slice="hard"' in html and 'id="provenance"' in html and TEST_KEY not in html


@pytest.mark.slow
def test_hostile_output_is_escaped_and_nothing_external_is_referenced(report_file):
    path, _, sink = report_file
    html = path.read_text()
    assert "&lt;script&gt;document.body.setAttribute" in html and "&lt;img src=" in html
    parser = Cells()
    parser.feed(html)
    assert parser.tags.count("script") == 1 and "img" not in parser.tags  # only the report's own script
    for attrs in parser.attrs_seen:
        for name in ("src", "href"):
            assert not re.match(r"(https?:)?//", attrs.get(name, "")), attrs
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html)
    assert path.stat().st_size < 5 * 1024 * 1024


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_report_renders_in_chromium_and_the_payload_never_runs(report_file, tmp_path):
    path, _, sink = report_file
    Hits.count = 0
    dom = _chromium(tmp_path, "--virtual-time-budget=3000", "--dump-dom", path.as_uri())
    assert dom.returncode == 0 and "<main>" in dom.stdout
    assert "data-pwned" not in dom.stdout.split("<body", 1)[1].split(">", 1)[0]  # no payload touched <body>
    shot = tmp_path / "report.png"
    result = _chromium(tmp_path, "--window-size=1300,2400", f"--screenshot={shot}", path.as_uri())
    assert result.returncode == 0 and shot.stat().st_size > 50_000
    shutil.copy(shot, Path(__file__).resolve().parents[1] / "reports" / "test-screenshot.png")
    assert Hits.count == 0  # the page never fetched the payload's URL (or anything) from the network


FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")


@pytest.mark.skipif(FIREFOX is None, reason="Firefox is not installed (apt-get install firefox-esr)")
def test_report_renders_in_firefox(report_file, tmp_path):
    path, _, _ = report_file
    shot = tmp_path / "firefox.png"
    (tmp_path / "ff-profile").mkdir()
    result = subprocess.run([FIREFOX, "--headless", "--no-remote", "--profile", str(tmp_path / "ff-profile"),
                             "--window-size=1300,2400", "--screenshot", str(shot), path.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert shot.stat().st_size > 50_000
