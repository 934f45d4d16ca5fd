"""The side-by-side sample explorer's data: which samples a capped file carries and the counts it states, the JSON
blob that no string can break out of, and the counts in the page (data-*) equal to an independent count."""

from __future__ import annotations

import json
import re

import pytest
from synthetic_store import build_store

from evalkit.analysis.paired import Side, pair, regressions
from evalkit.report import render_report
from evalkit.report.explorer import explorer, script_json, summary_text
from evalkit.store import Store


@pytest.fixture(scope="module")
def store_3000(tmp_path_factory):
    path = tmp_path_factory.mktemp("explorer") / "s.duckdb"
    run_id = build_store(path, 3000)
    with Store(path, read_only=True) as store:
        yield store, run_id


def _regression_ids(store: Store, run_id: str) -> set[str]:
    return {r["sample_id"] for r in regressions(pair(store, Side(run_id, "frontier"), Side(run_id, "tuned")))}


@pytest.mark.slow
def test_a_capped_explorer_keeps_every_regression_then_the_worst_then_a_seeded_random_sample(store_3000):
    store, run_id = store_3000
    expected = _regression_ids(store, run_id)
    assert 100 < len(expected) < 500
    data = explorer(store, run_id, ["frontier", "tuned"], "frontier", "tuned", seed=0, limit=800)
    s = data["summary"]
    assert s["shown"] == len(data["samples"]) == 800 and s["total"] == 3000 and not s["complete"]
    assert s["regressions"] == s["regressions_total"] == len(expected)
    assert {e["id"] for e in data["samples"] if e["why"] == "regression"} == expected
    assert s["worst"] == sum(e["why"] == "worst" for e in data["samples"]) > 0
    assert s["random"] == 800 - len(expected) - s["worst"]
    assert summary_text(s) == (f"showing 800 of 3,000: {len(expected)} regressions, {s['worst']} worst, "
                               f"{s['random']} random (seed 0)")
    # the rows are in dataset order, each with both models' full answers
    positions = [e["position"] for e in data["samples"]]
    assert positions == sorted(positions)
    first = data["samples"][0]
    assert set(first["answers"]) == {"frontier", "tuned"}
    assert first["answers"]["tuned"]["prompt_tokens"] == 42 and first["answers"]["tuned"]["latency_ms"] > 0
    assert [data["strings"][i] for _, i in first["messages"]][0].startswith("Classify the email")
    # the random part is seeded: the same seed draws the same samples, another seed others
    again = explorer(store, run_id, ["frontier", "tuned"], "frontier", "tuned", seed=0, limit=800)
    other = explorer(store, run_id, ["frontier", "tuned"], "frontier", "tuned", seed=1, limit=800)
    ids = [e["id"] for e in data["samples"]]
    assert ids == [e["id"] for e in again["samples"]] and ids != [e["id"] for e in other["samples"]]


@pytest.mark.slow
def test_regressions_past_the_cap_are_cut_and_said_and_leave_room_for_worst_and_random(store_3000):
    store, run_id = store_3000
    total = len(_regression_ids(store, run_id))
    data = explorer(store, run_id, ["frontier", "tuned"], "frontier", "tuned", limit=400)
    s = data["summary"]
    assert s["shown"] == 400 and s["regressions_total"] == total and 0 < s["regressions"] < total
    assert s["worst"] > 0 and s["random"] >= 40 and s["regressions"] + s["worst"] + s["random"] == 400
    assert summary_text(s) == (f"showing 400 of 3,000: {s['regressions']} of {total:,} regressions, "
                               f"{s['worst']} worst, {s['random']} random (seed 0)")
    # the regressions left out are not passed off as random draws
    regressed = _regression_ids(store, run_id)
    assert not any(e["why"] == "random" and e["id"] in regressed for e in data["samples"])


@pytest.mark.slow
def test_the_byte_budget_caps_the_rows_and_the_counts_still_add_up(store_3000):
    store, run_id = store_3000
    data = explorer(store, run_id, ["frontier", "tuned"], "frontier", "tuned", limit=3000, max_bytes=200_000)
    s = data["summary"]
    assert 0 < s["shown"] < 3000 and s["shown"] == s["regressions"] + s["worst"] + s["random"]
    assert s["regressions"] > 0 and s["worst"] > 0 and s["random"] > 0  # the cap shrank, the shares kept
    assert len(json.dumps(data["samples"], ensure_ascii=False)) + len(json.dumps(data["strings"])) <= 200_000


@pytest.mark.slow
def test_everything_fits_and_is_said(tmp_path):
    run_id = build_store(tmp_path / "small.duckdb", 40)
    with Store(tmp_path / "small.duckdb", read_only=True) as store:
        data = explorer(store, run_id, ["frontier", "tuned"], "frontier", "tuned")
    assert data["summary"]["complete"] and summary_text(data["summary"]) == "showing all 40 samples"
    assert [e["id"] for e in data["samples"]] == [f"s{i:06d}" for i in range(40)]


def test_no_string_can_close_the_script_element():
    hostile = {"a": "</script><script>alert(1)</script>", "b": "<!-- x", "c": "& \u2028 \u2029 >"}
    text = script_json(hostile)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == hostile


@pytest.mark.slow
def test_the_counts_in_the_page_equal_an_independent_count(tmp_path):
    run_id = build_store(tmp_path / "r.duckdb", 600)
    with Store(tmp_path / "r.duckdb", read_only=True) as store:
        html = render_report(store, run_id, resamples=200)
        expected = _regression_ids(store, run_id)
    summary = re.search(r'<p class="sub" id="explorer-summary"([^>]*)>', html).group(1)
    attrs = dict(re.findall(r'data-explorer-([a-z-]+)="([^"]*)"', summary))
    assert attrs["shown"] == attrs["total"] == "600"  # 600 samples fit: all carried
    assert attrs["regressions-total"] == str(len(expected))
    blob = json.loads(re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', html, re.S).group(1))
    assert len(blob["samples"]) == 600 and blob["baseline"] == "frontier" and blob["candidate"] == "tuned"
    assert "showing all 600 samples" in html
