"""The HTML report: every number equals the store, hostile model output is inert, nothing is fetched."""

from __future__ import annotations

import json
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
    # only the report's own scripts: the explorer's JSON data (never run), explorer.js and report.js
    scripts = [a for tag, a in zip(parser.tags, parser.attrs_seen) if tag == "script"]
    assert len(scripts) == 3 and scripts[0] == {"type": "application/json", "id": "explorer-data"}
    assert "img" not in parser.tags
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


@pytest.fixture
def cost_report(make_suite, email_rows, tmp_path, monkeypatch):
    """A run whose tuned model is self-hosted ($1/h, throughput measured in the run) against an API frontier,
    routed, with a report at the suite's volume."""
    from conftest import TRIAGE_RULES

    from evalkit.analysis.routing import analyse

    monkeypatch.setenv("EVALKIT_TEST_KEY", TEST_KEY)
    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY, latency_ms=20) as server:
        text = (LABEL_SUITE.format(base=server.url)
                .replace("    stream: false\n", "    stream: false\n    cost: {gpu_usd_per_hour: 1.0}\n")
                .replace("    params: {temperature: 0, max_tokens: 8}\n  tuned:",
                         "    params: {temperature: 0, max_tokens: 8}\n    cost: {input_per_mtok: 300, output_per_mtok: 900}\n"
                         "  tuned:")
                .replace("  bootstrap: 200\n", "  bootstrap: 200\n  volume_per_day: 50000\n")
                + "gates:\n  baseline: frontier\n  candidate: tuned\n  rules:\n"
                  "    - {metric: monthly_cost_usd, max: 100000}\n")
        summary = run_suite(load_suite(make_suite(text, rows=email_rows)), str(tmp_path / "r.duckdb"))
    with Store(tmp_path / "r.duckdb") as store:
        analyse(store, summary.run_id, "tuned", "frontier", max_drop=0.0, resamples=100)
    with Store(tmp_path / "r.duckdb", read_only=True) as store:
        path = write_report(store, summary.run_id, tmp_path / "costs.html")
    return path, tmp_path / "r.duckdb", summary.run_id


def _cost_cells(html: str) -> dict[tuple[str, str], str]:
    cells: dict[tuple[str, str], str] = {}
    for m in re.finditer(r'<td class="num" (data-cost-cell|data-routing-monthly)="([^"]+)"([^>]*)>', html):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', m.group(3)))
        if "data-value" in attrs:
            cells[(m.group(2), attrs.get("data-model") or attrs["data-share"])] = attrs["data-value"]
    return cells


def _expected(db: Path, run_id: str, volume: float) -> tuple[dict, dict]:
    from evalkit.analysis.capacity import policy_monthly, stored_costs, stored_inputs

    with Store(db, read_only=True) as store:
        blocks = stored_costs(store, run_id, volume)
        inputs = stored_inputs(store, run_id)
        policies = store.latest_routing(run_id, "cascade")[1]
    routing = {str(p["share_escalated"]): policy_monthly("cascade", p["share_escalated"], inputs["tuned"],
                                                         inputs["frontier"], volume) for p in policies if p["pareto"]}
    routing["1"] = policy_monthly("router", 1.0, inputs["tuned"], inputs["frontier"], volume)
    return blocks, routing


def _assert_cells(cells: dict[tuple[str, str], str], blocks: dict, routing: dict) -> None:
    for model in ("tuned", "frontier"):
        assert float(cells[("monthly", model)]) == pytest.approx(blocks[model]["monthly_cost_usd"], rel=1e-9)
    assert int(float(cells[("replicas", "tuned")])) == blocks["tuned"]["replicas_needed"]
    for share, value in routing.items():
        assert float(cells[("cascade" if share != "1" else "router", share)]) == pytest.approx(value, rel=1e-9)


@pytest.mark.slow
def test_report_costs_are_always_on_and_gateable(cost_report):
    path, db, run_id = cost_report
    html = path.read_text()
    blocks, routing = _expected(db, run_id, 50_000)
    tuned = blocks["tuned"]
    assert tuned["basis"] == "always-on" and tuned["throughput_source"] == "measured closed-loop throughput"
    assert tuned["monthly_cost_usd"] == pytest.approx(tuned["replicas_needed"] * 730.0)
    assert tuned["break_even_requests_per_day"] is not None
    _assert_cells(_cost_cells(html), blocks, routing)
    assert "measured closed-loop throughput" in html
    with Store(db, read_only=True) as store:
        stored = {(r["model"], r["metric"]): r["value"] for r in store.metrics(run_id)}
        wall = store.one("SELECT wall_s FROM run_models WHERE run_id = ? AND model = 'tuned'", [run_id])[0]
        called = store.one("SELECT count(*) FROM results WHERE run_id = ? AND model = 'tuned' AND status = 'ok' "
                           "AND NOT cache_hit", [run_id])[0]
    assert stored[("tuned", "throughput_rps")] == pytest.approx(called / wall)
    assert stored[("tuned", "monthly_cost_usd")] == pytest.approx(tuned["monthly_cost_usd"])
    assert stored[("tuned", "replicas_needed")] == tuned["replicas_needed"]
    assert stored[("tuned", "break_even_requests_per_day")] == pytest.approx(tuned["break_even_requests_per_day"])
    # the large-only mark of the routing chart is the frontier alone: its cost per 1k, no small-model call added
    assert 'data-routing-alone="large"' in html
    assert routing["1"] == pytest.approx(blocks["frontier"]["monthly_cost_usd"], rel=1e-9)
    with Store(db, read_only=True) as store:
        router = store.latest_routing(run_id, "router")[1]
    large_alone = router[-1]
    assert large_alone["share_escalated"] == 1.0
    frontier_1k = stored[("frontier", "cost_per_1k")]
    assert large_alone["cost_per_1k"] == pytest.approx(frontier_1k, rel=1e-9)
    # the chart's mark and the table's row are at the frontier's own cost, not the tuned model's GPU time added
    assert f"frontier only: ${frontier_1k:,.4f}/1k" in html
    alone = re.search(r'data-routing-alone-cost="large" data-value="([^"]+)"', html)
    assert alone and float(alone.group(1)) == pytest.approx(frontier_1k, rel=1e-9)
    assert 'data-gate="monthly_cost_usd" data-gate-verdict="pass"' in html  # a gate can bound the always-on cost


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_report_volume_input_recomputes_replicas_and_costs_in_chromium(cost_report, tmp_path):
    path, db, run_id = cost_report
    with Store(db, read_only=True) as store:
        rps = {r["model"]: r["value"] for r in store.metrics(run_id) if r["metric"] == "throughput_rps"}["tuned"]
    volume = round(rps * 86_400 * 2.5)  # two and a half replicas' worth: 3 replicas
    dom = _chromium(tmp_path, "--virtual-time-budget=3000", "--dump-dom", path.as_uri() + f"#volume={volume}")
    assert dom.returncode == 0 and "<main>" in dom.stdout
    blocks, routing = _expected(db, run_id, volume)
    assert blocks["tuned"]["replicas_needed"] == 3
    cells = _cost_cells(dom.stdout)
    _assert_cells(cells, blocks, routing)
    assert f'{volume:,}' in dom.stdout  # the volume shown in the headings follows the input
    unchanged = _cost_cells(path.read_text())
    assert unchanged[("replicas", "tuned")] == "1" and unchanged[("monthly", "tuned")] != cells[("monthly", "tuned")]


@pytest.mark.slow
def test_a_gate_bounds_the_always_on_monthly_cost(cost_report):
    from click.testing import CliRunner

    from evalkit.cli import main

    path, db, run_id = cost_report
    suite = db.parent / "suite.yaml"
    tight = db.parent / "tight.yaml"
    tight.write_text(suite.read_text().replace("{metric: monthly_cost_usd, max: 100000}",
                                               "{metric: monthly_cost_usd, max: 500}"))
    # one always-on $1/h replica is $730 a month: over a $500 budget, whatever the per-request GPU time says
    result = CliRunner().invoke(main, ["gate", str(tight), "--run", run_id, "--db", str(db), "--json"])
    assert result.exit_code == 1, result.output
    gates = {g["metric"]: g for g in json.loads(result.stdout)["gates"]}
    assert gates["monthly_cost_usd"]["verdict"] == "fail" and gates["monthly_cost_usd"]["candidate"] >= 730
    ok = CliRunner().invoke(main, ["gate", str(suite), "--run", run_id, "--db", str(db)])
    assert ok.exit_code == 0, ok.output


def section_page(html: str, section: str) -> str:
    """The report's head (CSS, CSP, script) with one section only, for a screenshot of that section."""
    start = html.index(f'<h2 id="{section}"')
    end = html.find("<h2 ", start + 10)
    return html[:html.index("<main>") + 6] + html[start:end] + "</main>" + html[html.index("<script>"):]


def screenshots(tmp_path: Path, page: Path, name: str, height: int = 1600) -> dict[str, Path]:
    """Chromium and Firefox screenshots of ``page`` at 1,400 px wide, kept in reports/ for people to look at."""
    shots: dict[str, Path] = {}
    keep = Path(__file__).resolve().parents[1] / "reports"
    keep.mkdir(exist_ok=True)
    if CHROMIUM is not None:
        shot = tmp_path / f"{name}-chromium.png"
        result = _chromium(tmp_path, f"--window-size=1400,{height}", f"--screenshot={shot}", page.as_uri())
        assert result.returncode == 0 and shot.stat().st_size > 30_000, result.stderr[-2000:]
        shots["chromium"] = shot
    if FIREFOX is not None:
        shot = tmp_path / f"{name}-firefox.png"
        (tmp_path / "ff-profile").mkdir(exist_ok=True)
        result = subprocess.run([FIREFOX, "--headless", "--no-remote", "--profile", str(tmp_path / "ff-profile"),
                                 f"--window-size=1400,{height}", "--screenshot", str(shot), page.as_uri()],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and shot.stat().st_size > 30_000, result.stderr[-2000:]
        shots["firefox"] = shot
    for browser, shot in shots.items():
        shutil.copy(shot, keep / f"test-{name}-{browser}.png")
    return shots


@pytest.mark.skipif(CHROMIUM is None and FIREFOX is None, reason="neither Chromium nor Firefox is installed")
def test_routing_section_screenshots_and_apgr_at_the_reports_volume(cost_report, tmp_path):
    path, db, run_id = cost_report
    from evalkit.analysis.routing_curve import summary

    html = path.read_text()
    with Store(db, read_only=True) as store:
        policies = store.latest_routing(run_id, "cascade")[1]
        rows = {m: {r["sample_id"]: r["correct"] for r in store.dicts(
            "SELECT sample_id, correct FROM results WHERE run_id = ? AND model = ?", [run_id, m])}
            for m in ("tuned", "frontier")}
    ids = sorted(rows["tuned"])
    expected = summary(policies, [float(rows["tuned"][i]) for i in ids], [float(rows["frontier"][i]) for i in ids])
    shown = dict(re.findall(r'data-routing-stat="([^"]+)" data-value="([^"]*)"', html))
    assert float(shown["apgr"]) == pytest.approx(expected["apgr"]) and shown["apgr-random"] == "0.5"
    for level in ("50", "80", "95"):
        want = expected["cpt"][f"{level}%"]
        assert (shown[f"cpt-{level}"] == "" and want is None) or float(shown[f"cpt-{level}"]) == pytest.approx(want)
    assert "monthly at <span class=\"volume-shown\">50,000</span> requests/day" in html.lower()
    page = tmp_path / "routing.html"
    page.write_text(section_page(html, "routing"), encoding="utf-8")
    assert screenshots(tmp_path, page, "routing")
