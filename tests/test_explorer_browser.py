"""The report in real browsers (headless Chromium and Firefox, no Playwright): the explorer filtered and a
drill-down opened (state from the URL hash) leaves every payload in a model name, a sample id, an answer and a
message inert; screenshots at 1,400 px of the report and the explorer are saved for review under
reports/screenshots/; at 100,000 samples the file stays under 5 MB and is laid out within 5 s."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image
from synthetic_store import build_store

from evalkit.report import write_report
from evalkit.store import Store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")
SHOTS = Path(__file__).resolve().parents[1] / "reports" / "screenshots"
MAGENTA = (255, 0, 255)
pytestmark = pytest.mark.slow


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


def _payload(port: int, where: str) -> str:
    """Markup that, if it ever ran, marks <body>, paints the page magenta and calls the sink."""
    act = (f"document.body.setAttribute('data-pwned','{where}');document.documentElement.style.background='#f0f';"
           f"document.body.style.background='#f0f'")
    return (f'<script>{act}</script><img src="http://127.0.0.1:{port}/{where}.png" onerror="{act}">'
            f'<svg onload="{act}"></svg>')


HOSTILE_ID = 3


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory, sink):
    tmp = tmp_path_factory.mktemp("hostile")
    candidate = "tuned" + _payload(sink, "model")
    hostile = {HOSTILE_ID: {"sample_id": "id" + _payload(sink, "id"), "message": "hello " + _payload(sink, "message"),
                            f"answer_{candidate}": "spam" + _payload(sink, "answer")}}
    run_id = build_store(tmp / "h.duckdb", 300, candidate=candidate, hostile=hostile)
    with Store(tmp / "h.duckdb", read_only=True) as store:
        path = write_report(store, run_id, tmp / "report.html", resamples=200)
    return path, hostile[HOSTILE_ID]["sample_id"], candidate


def _chromium(profile: Path, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--hide-scrollbars", f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=timeout)


def _firefox(profile: Path, shot: Path, url: str, height: int) -> subprocess.CompletedProcess:
    profile.mkdir(exist_ok=True)
    return subprocess.run([FIREFOX, "--headless", "--no-remote", "--profile", str(profile),
                           f"--window-size=1400,{height}", "--screenshot", str(shot), url],
                          capture_output=True, text=True, timeout=180)


def _magenta_share(shot: Path) -> float:
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    return float((pixels == MAGENTA).all(axis=1).mean())


def _save(shot: Path, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SHOTS / name)


def _view(sample_id: str, **extra: str) -> str:
    state = {"view": "explorer", "show": "regressions", "open": f"{sample_id}~0", **extra}
    return "#" + "&".join(f"{k}={quote(v, safe='')}" for k, v in state.items())


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_payloads_stay_inert_in_the_filtered_explorer_with_a_drill_down_open_in_chromium(hostile_report, tmp_path):
    path, sample_id, candidate = hostile_report
    Hits.count = 0
    url = path.as_uri() + _view(sample_id, q="hello")
    dom = _chromium(tmp_path / "p", "--virtual-time-budget=4000", "--dump-dom", url)
    assert dom.returncode == 0 and "<main>" in dom.stdout, dom.stderr[-2000:]
    body = dom.stdout.split("<body", 1)[1]
    assert "data-pwned" not in body.split(">", 1)[0] and "#f0f" not in dom.stdout.split("<body", 1)[0]
    # the filter ran (only the hostile sample holds "hello"... and is a regression), its drill-down is open, and each
    # payload is there as text: escaped in the serialised DOM, never an element
    assert re.search(r'id="explorer-matching"[^>]*>1<', body), body[:3000]
    assert 'class="drill"' in body and body.count('data-explorer-row="') == 1
    for where in ("model", "id", "message", "answer"):
        assert re.search(r'&lt;img src="http://127\.0\.0\.1:\d+/' + where + r'\.png"', body), where
    assert "<img" not in body and "<svg onload" not in body
    assert body.count("<script") == 3  # the report's own: the JSON blob, explorer.js, report.js
    shot = tmp_path / "explorer.png"
    result = _chromium(tmp_path / "p", "--window-size=1400,1800", f"--screenshot={shot}", url)
    assert result.returncode == 0 and _magenta_share(shot) == 0.0
    _save(shot, "chromium-explorer-hostile.png")
    assert Hits.count == 0  # nothing was fetched: not the payload's URL, not anything


@pytest.mark.skipif(FIREFOX is None, reason="Firefox is not installed (apt-get install firefox-esr)")
def test_payloads_stay_inert_in_the_explorer_in_firefox(hostile_report, tmp_path):
    path, sample_id, _ = hostile_report
    Hits.count = 0
    shot = tmp_path / "firefox-explorer.png"
    result = _firefox(tmp_path / "ff", shot, path.as_uri() + _view(sample_id, q="hello"), 1800)
    assert result.returncode == 0, result.stderr
    assert shot.stat().st_size > 30_000 and _magenta_share(shot) == 0.0
    _save(shot, "firefox-explorer-hostile.png")
    assert Hits.count == 0


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    run_id = build_store(tmp / "d.duckdb", 400)
    with Store(tmp / "d.duckdb", read_only=True) as store:
        return write_report(store, run_id, tmp / "report.html", resamples=200)


@pytest.mark.skipif(CHROMIUM is None or FIREFOX is None, reason="needs Chromium and Firefox")
def test_screenshots_of_the_report_and_the_explorer_at_1400_px(demo_report, tmp_path):
    """Saved for a person to look at (overprint is judged by eye): reports/screenshots/{chromium,firefox}-*.png."""
    first_regression = json.loads(re.search(r'id="explorer-data">(.*?)</script>', demo_report.read_text(), re.S)
                                  .group(1))["samples"]
    sample = next(s["id"] for s in first_regression if s["why"] == "regression" or s["answers"]["tuned"]["correct"]
                  is False)
    for name, url, height in (("report", demo_report.as_uri(), 4200),
                              ("explorer", demo_report.as_uri() + _view(sample), 1800)):
        shot = tmp_path / f"chromium-{name}.png"
        assert _chromium(tmp_path / "p", f"--window-size=1400,{height}", f"--screenshot={shot}", url).returncode == 0
        assert Image.open(shot).size[0] == 1400 and shot.stat().st_size > 50_000
        _save(shot, f"chromium-{name}.png")
        shot = tmp_path / f"firefox-{name}.png"
        assert _firefox(tmp_path / "ff", shot, url, height).returncode == 0
        assert Image.open(shot).size[0] == 1400 and shot.stat().st_size > 50_000
        _save(shot, f"firefox-{name}.png")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_100k_samples_stay_under_5_mb_and_lay_out_within_5_s(tmp_path):
    start = time.perf_counter()
    run_id = build_store(tmp_path / "big.duckdb", 100_000)
    built = time.perf_counter() - start
    with Store(tmp_path / "big.duckdb", read_only=True) as store:
        start = time.perf_counter()
        path = write_report(store, run_id, tmp_path / "big.html", resamples=200)
        rendered = time.perf_counter() - start
    size = path.stat().st_size
    html = path.read_text()
    summary = dict(re.findall(r'data-explorer-([a-z-]+)="([^"]*)"',
                              re.search(r'id="explorer-summary"([^>]*)>', html).group(1)))
    assert summary["total"] == "100000" and int(summary["shown"]) <= 2000
    assert int(summary["regressions"]) + int(summary["worst"]) + int(summary["random"]) == int(summary["shown"])
    assert size <= 5 * 1024 * 1024
    start = time.perf_counter()
    dom = _chromium(tmp_path / "p", "--dump-dom", path.as_uri())
    wall = time.perf_counter() - start
    assert dom.returncode == 0
    ready = int(re.search(r'data-ready-ms="(\d+)"', dom.stdout).group(1))
    print(re.search(r"showing [^.]*", html).group(0))
    print(f"100k samples: store built in {built:.1f} s, report rendered in {rendered:.1f} s, {size / 1e6:.2f} MB, "
          f"explorer laid out at {ready} ms after navigation, Chromium process {wall:.1f} s")
    assert ready <= 5000
