"""Sharding a run over two servers and merging the parts: the merged run equals an unsharded run."""

from __future__ import annotations

import pytest
from conftest import LABEL_SUITE, TEST_KEY, TRIAGE_RULES, run_cli

from evalkit.config.shards import Shard, parse_shard
from evalkit.errors import ConfigError
from evalkit.store import Store

# Timings and the GPU-hour cost (from measured wall time) differ between runs; everything else must not.
TIMED = ("client_lag_ms_p95", "latency_ms_p50", "latency_ms_p90", "latency_ms_p95", "latency_ms_p99", "ttft_ms_p50", "ttft_ms_p95",
         # per second of wall time (a merged run's wall time is the parts' replica-seconds), and what depends on it
         "throughput_rps", "output_tokens_per_s", "replicas_needed", "break_even_requests_per_day")


def _rows(n: int) -> list[dict[str, str]]:
    return [{"id": f"m{i:03d}", "subject": "WIN A FREE CRUISE" if i % 3 == 0 else ("Invoice attached" if i % 7 == 0
             else f"Notes {i}"), "body": f"see inside, ref {i}", "label": "spam" if i % 3 == 0 else "ham",
             "slice": "spam" if i % 3 == 0 else "ham"} for i in range(n)]


def test_parse_and_split_are_stable_and_cover_every_sample():
    assert parse_shard("2/3") == Shard(2, 3)
    for bad in ("0/2", "3/2", "1", "a/b", "1/0"):
        with pytest.raises(ConfigError):
            parse_shard(bad)
    ids = [f"s{i}" for i in range(1000)]
    parts = [[s for s in ids if Shard(i, 3).holds(s)] for i in (1, 2, 3)]
    assert sorted(sum(parts, [])) == sorted(ids)          # every sample in exactly one part
    assert all(250 < len(p) < 420 for p in parts)           # and the parts are balanced


def test_two_shards_on_two_servers_merge_into_the_unsharded_run(make_suite, cli_env, tmp_path):
    from evalkit.testing.devserver import DevServer
    from evalkit.testing.replies import RuleResponder

    rows = _rows(60)
    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY) as one, \
            DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY) as two:
        suite = make_suite(LABEL_SUITE.format(base="${SHARD_BASE}"), rows=rows)
        parts = []
        for shard, server in (("1/2", one), ("2/2", two)):
            db = tmp_path / f"shard{shard[0]}.duckdb"
            proc = run_cli(["run", str(suite), "--db", str(db), "--shard", shard, "--quiet"],
                           {**cli_env, "SHARD_BASE": server.url})
            assert proc.returncode == 0, proc.stderr
            out = tmp_path / f"export{shard[0]}"
            proc = run_cli(["export", "parquet", "latest", "--db", str(db), "-o", str(out)], cli_env)
            assert proc.returncode == 0, proc.stderr
            parts.append(out)
        # each server answered only its own part, and the parts cover every sample once per model
        sent = [{r.body["messages"][-1]["content"] for r in s.calls(path="/v1/chat/completions")} for s in (one, two)]
        assert sent[0] and sent[1] and not sent[0] & sent[1]
        assert len(one.calls(path="/v1/chat/completions")) + len(two.calls(path="/v1/chat/completions")) == 2 * len(rows)
        whole_db = tmp_path / "whole.duckdb"
        proc = run_cli(["run", str(suite), "--db", str(whole_db), "--quiet"], {**cli_env, "SHARD_BASE": one.url})
        assert proc.returncode == 0, proc.stderr

    merged_db = tmp_path / "merged.duckdb"
    proc = run_cli(["import", "parquet", *map(str, parts), "--db", str(merged_db), "--run-id", "merged"], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "merged 2 export(s) into run merged (120 results)" in proc.stdout

    def metrics(db, run_id="latest"):
        with Store(db, read_only=True) as store:
            rid = store.resolve_run_id(run_id)
            return store.get_run(rid), {(m["model"], m["metric"]): (m["value"], m["ci_low"], m["ci_high"], m["n"])
                                        for m in store.metrics(rid) if m["metric"] not in TIMED}

    whole_run, whole = metrics(whole_db)
    merged_run, merged = metrics(merged_db, "merged")
    assert merged == whole  # point values and bootstrap CIs: same rows, same order, same seed
    assert merged_run["n_samples"] == whole_run["n_samples"] == 60 and merged_run["status"] == "complete"
    with Store(merged_db, read_only=True) as store:
        assert store.one("SELECT count(DISTINCT sample_id) FROM samples WHERE run_id = 'merged'")[0] == 60
        assert {m["model"]: m["n_calls"] for m in store.run_models("merged")} == {"frontier": 60, "tuned": 60}

    # the same parts again: a second import needs another id; overlapping parts are refused
    again = run_cli(["import", "parquet", *map(str, parts), "--db", str(merged_db), "--run-id", "merged"], cli_env)
    assert again.returncode == 2 and "already has a run 'merged'" in again.stderr
    overlap = run_cli(["import", "parquet", str(parts[0]), str(parts[0]), "--db", str(merged_db)], cli_env)
    assert overlap.returncode == 2 and "is in 2 of the parts" in overlap.stderr


def test_export_import_round_trip_keeps_a_run(make_suite, triage_server, email_rows, cli_env, tmp_path):
    suite = make_suite(LABEL_SUITE.format(base=triage_server.url), rows=email_rows)
    db, copy = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    assert run_cli(["run", str(suite), "--db", str(db), "--quiet"], cli_env).returncode == 0
    routed = run_cli(["route", "latest", "--small", "tuned", "--large", "frontier", "--db", str(db)], cli_env)
    assert routed.returncode == 0, routed.stderr
    assert run_cli(["export", "parquet", "--db", str(db), "-o", str(tmp_path / "x")], cli_env).returncode == 0
    proc = run_cli(["import", "parquet", str(tmp_path / "x"), "--db", str(copy)], cli_env)
    assert proc.returncode == 0, proc.stderr
    with Store(db, read_only=True) as a, Store(copy, read_only=True) as b:
        rid = a.resolve_run_id("latest")
        assert b.resolve_run_id("latest") == rid
        assert a.one("SELECT count(*) FROM routing_policies WHERE run_id = ?", [rid])[0] > 0
        for table in ("runs", "run_models", "samples", "results", "metrics", "routing_policies",
                      "routing_recommendations", "retention"):
            q = f"SELECT * FROM {table} WHERE run_id = ? ORDER BY ALL"
            assert a.sql(q, [rid]) == b.sql(q, [rid]), table


def test_resume_of_a_shard_keeps_its_samples(make_suite, triage_server, cli_env, tmp_path):
    suite = make_suite(LABEL_SUITE.format(base=triage_server.url), rows=_rows(30))
    db = tmp_path / "s.duckdb"
    assert run_cli(["run", str(suite), "--db", str(db), "--shard", "1/3", "--quiet"], cli_env).returncode == 0
    with Store(db) as store:
        rid = store.resolve_run_id("latest")
        held = {r[0] for r in store.sql("SELECT sample_id FROM samples WHERE run_id = ?", [rid])}
        assert held == {r["id"] for r in _rows(30) if Shard(1, 3).holds(r["id"])}
        store.sql("DELETE FROM results WHERE run_id = ? AND sample_id = ?", [rid, sorted(held)[0]])
    calls = len(triage_server.calls(path="/v1/chat/completions"))
    proc = run_cli(["run", str(suite), "--db", str(db), "--resume", rid, "--quiet"], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert len(triage_server.calls(path="/v1/chat/completions")) - calls <= 2  # the removed sample, once per model (rest cached)
    with Store(db, read_only=True) as store:
        assert store.one("SELECT count(*) FROM results WHERE run_id = ?", [rid])[0] == 2 * len(held)
