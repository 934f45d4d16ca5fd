"""Open-loop load: seeded arrivals, ``run.load`` pacing and its in-flight cap, the ``evalkit load`` sweep
and its goodput, the ``evalkit.load/1`` document, and the report's latency-against-rate curve.

Everything runs against the loopback dev server, whose latency is scripted (``latency_ms``) and can grow
with the requests in flight (``latency_per_inflight_ms``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.config.loader import load_suite
from evalkit.engine.arrivals import arrival_offsets
from evalkit.engine.runner import run_suite
from evalkit.report.render import render_report
from evalkit.store import Store
from evalkit.testing.devserver import DevServer
from evalkit.testing.replies import RuleResponder

SUITE = """
evalkit: 1
name: paced
dataset: {{path: data.jsonl}}
prompt: {{user: "Say {{{{ word }}}}."}}
output: {{type: text}}
target: {{field: word}}
scoring: {{scorer: exact}}
models:
  tuned:
    provider: vllm
    api_base: {base}
    base_model: tuned
    params: {{max_tokens: 4}}
    stream: {stream}
run:
  bootstrap: 0
  retries: 0
  warmup: 0  # the server's arrival times are the paced requests only
{load}
"""


def assert_points_equal_documented_sql(store: Store, load_id: str) -> None:
    """The stored load_points equal docs/metrics.sql's load_points query over load_requests."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "metrics.sql").read_text()
    sql = text.split("-- name: load_points\n")[1].split("-- name:")[0].replace("$load_id", f"'{load_id}'")
    stored = {p["rate_per_s"]: p for p in store.load_points(load_id)}
    recomputed = store.dicts(sql)
    assert recomputed and {r["rate_per_s"] for r in recomputed} == set(stored)
    for r in recomputed:
        for key, value in r.items():
            want = stored[r["rate_per_s"]][key]
            assert (value is None and want is None) or value == pytest.approx(want, rel=1e-9, abs=1e-9), key


def rows(n: int) -> list[dict[str, str]]:
    return [{"id": f"s{i:04d}", "word": "ok"} for i in range(n)]


def responder() -> RuleResponder:
    return RuleResponder.from_dict({"models": {"tuned": {"default": {"reply": "ok"}}}})


def suite_text(base: str, load: str = "", stream: str = "false") -> str:
    return SUITE.format(base=base, load=load, stream=stream)


# -- arrivals ------------------------------------------------------------------------------------------

def test_poisson_arrivals_have_the_asked_mean_gap_and_are_seeded():
    offsets = arrival_offsets(20_000, 50.0, "poisson", seed=7)
    gaps = np.diff(offsets)
    assert offsets[0] == 0.0 and np.all(gaps > 0)
    assert abs(gaps.mean() - 0.02) / 0.02 < 0.02            # mean inter-arrival 1/rate
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.03        # exponential: coefficient of variation 1
    assert np.array_equal(offsets, arrival_offsets(20_000, 50.0, "poisson", seed=7))
    assert not np.array_equal(offsets, arrival_offsets(20_000, 50.0, "poisson", seed=8))
    assert np.allclose(np.diff(arrival_offsets(100, 40.0, "constant")), 0.025)


def test_load_spec_is_validated(make_suite):
    from evalkit.errors import ConfigError

    path = make_suite(suite_text("http://127.0.0.1:9/v1", "  load: {rate_per_s: 0, arrival: uniform}"), rows(2))
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    assert "run.load.rate_per_s" in str(err.value) and "1 more problem" in str(err.value)


# -- run.load --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_open_loop_run_achieves_the_asked_rate(make_suite, tmp_path):
    """50 requests/s for 4 s against a 20 ms server: the server sees them at 50/s, and the stored phase
    says so — a closed loop of 8 workers would send 400/s."""
    with DevServer(responder(), latency_ms=20) as server:
        path = make_suite(suite_text(server.url, "  load: {rate_per_s: 50, arrival: constant}"), rows(200))
        summary = run_suite(load_suite(path), str(tmp_path / "r.duckdb"))
        seen = sorted(r.time for r in server.calls("tuned"))
    assert summary.status == "complete" and len(seen) == 200
    assert abs((len(seen) - 1) / (seen[-1] - seen[0]) - 50) / 50 < 0.05
    with Store(tmp_path / "r.duckdb", read_only=True) as store:
        [point] = store.run_load_points(summary.run_id)
        queue = store.sql("SELECT count(*), max(queue_ms) FROM load_requests WHERE load_id = ?", [point["load_id"]])
    assert point["model"] == "tuned" and point["rate_per_s"] == 50 and point["n_sent"] == 200
    assert abs(point["achieved_rps"] - 50) / 50 < 0.05
    assert abs(point["send_rate_rps"] - 50) / 50 < 0.05
    assert point["cap_waits"] == 0 and point["n_errors"] == 0 and point["n_cached"] == 0
    assert 20 <= point["latency_ms_p50"] < 60
    assert queue[0][0] == 200 and queue[0][1] >= 0
    assert point["queue_ms_p50"] < 10  # on time: the event loop's lateness only (a busy loop shows here, stored)


@pytest.mark.slow
def test_in_flight_cap_is_hit_reported_and_stored(make_suite, tmp_path):
    """100 arrivals/s against a 100 ms server with a cap of 2: arrivals wait for a slot, and that is
    counted, stored per request and kept out of the latency (measured from the send)."""
    with DevServer(responder(), latency_ms=100) as server:
        load = "  load: {rate_per_s: 100, arrival: constant, max_in_flight: 2}"
        path = make_suite(suite_text(server.url, load), rows(24))
        result = CliRunner().invoke(main, ["run", str(path), "--db", str(tmp_path / "r.duckdb"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert re.search(r"open loop: tuned @ 100/s: 24 sent, .* \d+ held by the in-flight cap \(max [\d,.]+ ms\)",
                     result.stderr), result.stderr
    with Store(tmp_path / "r.duckdb", read_only=True) as store:
        [point] = store.run_load_points(store.resolve_run_id("latest"))
        capped = store.sql("SELECT count(*), min(queue_ms) FROM load_requests WHERE load_id = ? AND capped",
                           [point["load_id"]])
        assert_points_equal_documented_sql(store, point["load_id"])
    assert point["peak_in_flight"] == 2
    assert point["cap_waits"] >= 20 and capped[0][0] == point["cap_waits"]
    assert point["cap_delay_ms_max"] > 800          # the last arrival waited for ~11 answers ahead of it
    assert point["latency_ms_p99"] < 300             # latency from the send stays the server's ~100 ms
    assert point["e2e_ms_p99"] > 800                 # from scheduled arrival it does not
    assert point["achieved_rps"] < 25                # 2 in flight × 10/s, not the asked 100/s


# -- evalkit load -----------------------------------------------------------------------------------------

def _sweep(path, db, *extra):
    result = CliRunner().invoke(main, ["load", str(path), "--model", "tuned", "--rates", "10,20,50",
                                       "--slo-p99-ms", "100", "--requests", "20", "--arrival", "constant",
                                       "--db", str(db), *extra])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.slow
def test_sweep_finds_the_goodput_against_a_server_that_slows_with_load(make_suite, tmp_path):
    """30 ms alone, +40 ms per other request in flight: 10/s and 20/s never overlap (or settle at 70 ms),
    50/s piles up without bound — the goodput under p99 ≤ 100 ms is 20/s."""
    db = tmp_path / "load.duckdb"
    with DevServer(responder(), latency_ms=30, latency_per_inflight_ms=40) as server:
        path = make_suite(suite_text(server.url, stream="true"), rows(6))
        doc = json.loads(_sweep(path, db, "--json").output)
    assert doc["format"] == "evalkit.load/1" and doc["suite"] == "paced"
    [sweep] = doc["sweeps"]
    assert set(sweep) >= {"load_id", "model", "model_ref", "arrival", "max_in_flight", "slo_p99_ms",
                          "max_error_rate", "goodput_rps", "points", "status"}
    assert sweep["model"] == "tuned" and sweep["status"] == "complete" and sweep["goodput_rps"] == 20
    points = {p["rate_per_s"]: p for p in sweep["points"]}
    assert sorted(points) == [10, 20, 50]
    for key in ("latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "ttft_ms_p50", "ttft_ms_p99", "error_rate",
                "achieved_rps", "cap_waits", "e2e_ms_p99", "queue_ms_p99", "meets_slo", "n_sent"):
        assert key in points[10], key
    assert points[10]["meets_slo"] and points[20]["meets_slo"] and not points[50]["meets_slo"]
    assert points[10]["latency_ms_p99"] < 100 and points[50]["latency_ms_p99"] > 100
    assert points[10]["ttft_ms_p50"] is not None and points[10]["n_sent"] == 20
    assert points[10]["error_rate"] == 0
    with Store(db, read_only=True) as store:
        assert store.latest_goodput("paced", "tuned") == (20.0, sweep["load_id"])
        assert store.latest_goodput("paced", "other") is None
        assert store.sql("SELECT count(*) FROM load_requests WHERE load_id = ?", [sweep["load_id"]])[0][0] == 60
        assert_points_equal_documented_sql(store, sweep["load_id"])


@pytest.mark.slow
def test_sweep_stops_after_the_first_missed_rate_unless_all_rates(make_suite, tmp_path):
    db = tmp_path / "load.duckdb"
    with DevServer(responder(), latency_ms=150) as server:  # even 10/s misses p99 ≤ 100 ms
        path = make_suite(suite_text(server.url), rows(3))
        text = _sweep(path, db, "--requests", "5").output
        doc = json.loads(_sweep(path, db, "--requests", "5", "--all-rates", "--json").output)
    assert "goodput of tuned: none" in text and "missed" in text
    assert [p["rate_per_s"] for p in doc["sweeps"][0]["points"]] == [10, 20, 50]
    with Store(db, read_only=True) as store:
        assert store.latest_goodput("paced", "tuned") is None
        first = store.dicts("SELECT load_id FROM load_runs ORDER BY created_at LIMIT 1")[0]["load_id"]
        assert len(store.load_points(first)) == 1


@pytest.mark.parametrize("args, message", [
    (["--rates", "1,x"], "comma-separated"), (["--rates", "0,2"], "positive"),
    (["--rates", "1", "--duration-s", "2", "--requests", "3"], "not both")])
def test_load_arguments_are_checked(make_suite, args, message):
    path = make_suite(suite_text("http://127.0.0.1:9/v1"), rows(2))
    result = CliRunner().invoke(main, ["load", str(path), "--model", "tuned", "--slo-p99-ms", "100", *args])
    assert result.exit_code == 2 and message in result.output


def test_unreachable_model_stops_the_sweep(make_suite, tmp_path):
    path = make_suite(suite_text("http://127.0.0.1:9/v1"), rows(2))
    result = CliRunner().invoke(main, ["load", str(path), "--model", "tuned", "--rates", "5", "--slo-p99-ms", "100",
                                       "--requests", "2", "--db", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 2 and "cannot be load-tested" in result.output
    with Store(tmp_path / "x.duckdb", read_only=True) as store:
        assert store.sql("SELECT status FROM load_runs") == [("failed",)]


# -- the report ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_report_draws_latency_against_rate_with_slo_and_goodput(make_suite, tmp_path):
    db = tmp_path / "load.duckdb"
    with DevServer(responder(), latency_ms=30, latency_per_inflight_ms=40) as server:
        path = make_suite(suite_text(server.url), rows(6))
        summary = run_suite(load_suite(path), str(db))
        with Store(db) as store:
            before = render_report(store, summary.run_id)
            assert store.run_load_points(summary.run_id) == []  # a closed-loop run is not paced
        _sweep(path, db)
    with Store(db, read_only=True) as store:
        html = render_report(store, summary.run_id)
        [sweep] = store.dicts("SELECT load_id FROM load_runs WHERE kind = 'sweep'")
        points = store.load_points(sweep["load_id"])
    assert 'id="load"' not in before
    assert 'id="load"' in html and 'data-goodput="20.0"' in html and 'data-slo="100.0"' in html
    for series in ("p50", "p95", "p99"):
        assert f'data-series="{series}"' in html
    stored = {p["rate_per_s"]: p["latency_ms_p99"] for p in points}
    shown = {float(r): float(v) for r, v in re.findall(r'data-rate="([\d.]+)" data-p99="([\d.]+)"', html)}
    assert shown == pytest.approx(stored)


@pytest.mark.slow
def test_goodput_of_a_sweep_sizes_the_replicas_of_the_always_on_cost(make_suite, tmp_path):
    """After `evalkit load` found 20 requests/s within the SLO, the run's cost block (show --json) sizes
    replicas from that goodput, not from the closed-loop throughput: 3,000,000 calls/day = 34.7/s → 2 replicas."""
    db = tmp_path / "load.duckdb"
    text = suite_text("{base}").replace("    stream: false\n", "    stream: false\n    cost: {gpu_usd_per_hour: 1.0}\n")
    text = text.replace("run:\n", "run:\n  volume_per_day: 3000000\n")
    with DevServer(responder(), latency_ms=30, latency_per_inflight_ms=40) as server:
        path = make_suite(text.replace("{base}", server.url), rows(6))
        run_id = run_suite(load_suite(path), str(db)).run_id
        before = json.loads(CliRunner().invoke(main, ["show", run_id, "--db", str(db), "--json"]).output)
        _sweep(path, db)
    after = json.loads(CliRunner().invoke(main, ["show", run_id, "--db", str(db), "--json"]).output)

    def cost(doc):
        models = doc["models"]
        model = models["tuned"] if isinstance(models, dict) else next(m for m in models if m["model"] == "tuned")
        return model["cost"]

    assert cost(before)["throughput_source"] == "measured closed-loop throughput"
    block = cost(after)
    assert block["throughput_source"] == "goodput at SLO" and block["requests_per_second"] == 20.0
    assert block["replicas_needed"] == 2 and block["monthly_cost_usd"] == pytest.approx(2 * 730.0)


@pytest.mark.slow
def test_load_tables_travel_with_a_parquet_export_and_show_in_show_json(make_suite, tmp_path):
    """A paced run and a sweep of its suite's model: `evalkit export parquet` carries both (its load_runs,
    load_points and load_requests), `import parquet` into another store gives the same rows and the same
    `show --json` load block, whose figures are the stored ones."""
    db, other = tmp_path / "load.duckdb", tmp_path / "other.duckdb"
    with DevServer(responder(), latency_ms=20) as server:
        path = make_suite(suite_text(server.url, "  load: {rate_per_s: 40, arrival: constant}"), rows(20))
        run_id = run_suite(load_suite(path), str(db)).run_id
        _sweep(path, db)
    cli = CliRunner()
    assert cli.invoke(main, ["export", "parquet", run_id, "-o", str(tmp_path / "out"), "--db", str(db)]).exit_code == 0
    result = cli.invoke(main, ["import", "parquet", str(tmp_path / "out"), "--db", str(other)])
    assert result.exit_code == 0, result.output
    tables = ("load_runs", "load_points", "load_requests")
    with Store(db, read_only=True) as a, Store(other, read_only=True) as b:
        for table in tables:
            want = a.sql(f"SELECT * FROM {table} ORDER BY ALL")
            assert want and b.sql(f"SELECT * FROM {table} ORDER BY ALL") == want, table
        paced = a.run_load_points(run_id)
    shown = [json.loads(cli.invoke(main, ["show", run_id, "--db", str(d), "--json"]).output) for d in (db, other)]
    assert shown[0]["models"]["tuned"]["load"] == shown[1]["models"]["tuned"]["load"]
    load = shown[0]["models"]["tuned"]["load"]
    assert [p["rate_per_s"] for p in load["paced"]] == [40] and load["paced"][0]["n_sent"] == 20
    assert load["paced"][0]["achieved_rps"] == pytest.approx(paced[0]["achieved_rps"])
    assert load["sweep"]["slo_p99_ms"] == 100 and [p["rate_per_s"] for p in load["sweep"]["points"]] == [10, 20, 50]
    # importing the same export again under a new id: the sweep is not copied twice, the paced phase follows
    result = cli.invoke(main, ["import", "parquet", str(tmp_path / "out"), "--db", str(other), "--run-id", "again"])
    assert result.exit_code == 0, result.output
    with Store(other, read_only=True) as b:
        kinds = b.sql("SELECT kind, run_id, count(*) FROM load_runs GROUP BY ALL ORDER BY ALL")
    assert kinds == sorted([("run", "again", 1), ("run", run_id, 1), ("sweep", None, 1)], key=str)
