"""The LLM judge end to end through the CLI, with the dev server playing both the judged models and their
judge: the shipped example suite (suites/judge) runs, is shown, reported and gated; its judge calls are kept
out of the models' cost and latency; an unchanged rerun makes 0 judge calls; a judge that garbles, fails or
asks to wait is handled as a score error or a retry; a pass/fail judge's kappa equals scikit-learn's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from scipy.stats import spearmanr

from evalkit.cli import main
from evalkit.testing.devserver import DevServer
from evalkit.testing.faults import Fault, FaultPlan
from evalkit.testing.judge import JudgeResponder, Raw
from evalkit.testing.replies import RuleResponder

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-judge-test-5d1e0c8a"
pytestmark = pytest.mark.slow  # each test runs a suite (two models and a judge) through the CLI


def _example(tmp_path: Path) -> Path:
    """The shipped example suite and its dataset, copied so the store lands in tmp_path."""
    shutil.copytree(ROOT / "suites" / "judge", tmp_path / "suites" / "judge")
    shutil.copytree(ROOT / "datasets" / "support_replies", tmp_path / "datasets" / "support_replies")
    return tmp_path / "suites" / "judge" / "suite.yaml"


def _run(suite: Path, db: str, *more: str):
    return CliRunner().invoke(main, ["run", str(suite), "--db", db, "--quiet", *more])


def _sql(db: str, query: str) -> list[tuple]:
    con = duckdb.connect(db, read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def test_example_suite_judged_shown_reported_gated_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_JUDGE_KEY", KEY)
    suite = _example(tmp_path)
    db = str(tmp_path / "j.duckdb")
    with DevServer(RuleResponder.from_file(suite.parent / "standin_models.yaml"), api_key=KEY) as server:
        monkeypatch.setenv("EVALKIT_JUDGE_BASE", server.url)
        ran = _run(suite, db)
        assert ran.exit_code == 0, ran.output
        first_calls = len(server.calls(model="judge-standin"))
        rerun = _run(suite, db)
        assert rerun.exit_code == 0, rerun.output
        assert len(server.calls(model="judge-standin")) == first_calls  # an unchanged rerun: 0 judge calls
    # 12 answers per model judged once, 12 pairs judged in two orders
    assert first_calls == 12 + 12 + 24
    runs = [r[0] for r in _sql(db, "SELECT run_id FROM runs ORDER BY created_at")]
    kinds = dict(_sql(db, f"SELECT kind, count(*) FROM judgements WHERE run_id = '{runs[0]}' GROUP BY kind"))
    assert kinds == {"pointwise": 24, "pairwise": 24}
    assert _sql(db, f"SELECT bool_and(cache_hit), sum(attempts) FROM judgements WHERE run_id = '{runs[1]}'") == [
        (True, 0)]
    # the judged quality is the verdict mapped linearly: 5 -> 1.0, 2 -> 0.25 (frontier q02, q06)
    quality = dict(_sql(db, f"SELECT sample_id, quality FROM results WHERE run_id = '{runs[0]}' AND model = 'frontier'"))
    assert quality["q02"] == 1.0 and quality["q06"] == 0.25 and quality["q01"] == 0.75

    shown = CliRunner().invoke(main, ["show", runs[0], "--db", db, "--json"])
    doc = json.loads(shown.stdout)
    assert doc["judge"] == {"model": "openai/judge-standin", "scale": [1, 5], "pairwise": True, "human": "human",
                            "human_model": "frontier", "reference": True}
    frontier, tuned = doc["models"]["frontier"]["metrics"], doc["models"]["tuned"]["metrics"]
    # judge calls are costed apart: the model's cost_usd is its own tokens at its own price, nothing more
    own = _sql(db, f"SELECT sum((prompt_tokens * 2.5 + completion_tokens * 10.0) / 1e6) FROM results "
                   f"WHERE run_id = '{runs[0]}' AND model = 'frontier'")[0][0]
    judged = _sql(db, f"SELECT sum((prompt_tokens * 2.5 + completion_tokens * 10.0) / 1e6), sum(cost_usd) "
                      f"FROM judgements WHERE run_id = '{runs[0]}' AND model = 'frontier'")[0]
    assert frontier["cost_usd"]["value"] == pytest.approx(own)
    assert frontier["judge_cost_usd"]["value"] == pytest.approx(judged[0]) == pytest.approx(judged[1])
    assert frontier["judge_calls"]["value"] == 12 and tuned["judge_calls"]["value"] == 36
    # agreement with people on the 8 labelled samples of frontier's answers, checked against scipy
    pairs = _sql(db, f"SELECT j.score * 4 + 1, (s.fields->>'human')::DOUBLE FROM judgements j JOIN samples s "
                     f"USING (run_id, sample_id) WHERE j.run_id = '{runs[0]}' AND j.model = 'frontier' "
                     "AND j.kind = 'pointwise' AND s.fields->>'human' IS NOT NULL")
    assert len(pairs) == 8 and frontier["judge_agreement"]["n"] == 8
    assert frontier["judge_agreement"]["value"] == pytest.approx(sum(a == b for a, b in pairs) / 8)
    assert frontier["judge_spearman"]["value"] == pytest.approx(spearmanr(*zip(*pairs)).statistic)
    assert frontier["judge_spearman"]["ci_low"] is not None and "judge_spearman" not in tuned
    # pairwise: tuned's answers that send the customer away lose in both orders; on equal answers the stand-in
    # judge prefers whichever comes first, so those pairs flip with the order
    assert tuned["judge_win_rate"]["n"] == 12 and tuned["judge_position_disagreement"]["n"] == 12
    verdicts = _sql(db, f"SELECT sample_id, pair_order, score FROM judgements WHERE run_id = '{runs[0]}' "
                        "AND kind = 'pairwise'")
    by_sample: dict[str, dict[str, float]] = {}
    for sid, order, score in verdicts:
        by_sample.setdefault(sid, {})[order] = score
    flips = sum(v["AB"] != v["BA"] for v in by_sample.values())
    assert tuned["judge_position_disagreement"]["value"] == pytest.approx(flips / 12) and 0 < flips < 12
    assert tuned["judge_win_rate"]["value"] == pytest.approx(sum(v["AB"] + v["BA"] for v in by_sample.values()) / 24)
    assert "judge_win_rate" not in frontier

    out = tmp_path / "r.html"
    reported = CliRunner().invoke(main, ["report", runs[0], "--db", db, "-o", str(out)])
    assert reported.exit_code == 0, reported.output
    html = out.read_text()
    assert '<section id="judge">' in html and 'data-judge-n="judge_agreement">n=8<' in html
    assert 'data-judge-metric="judge_position_disagreement" data-model="tuned"' in html

    gated = CliRunner().invoke(main, ["gate", str(suite), "--run", runs[0], "--db", db, "--json"])
    verdict = {g["metric"]: g for g in json.loads(gated.stdout)["gates"]}
    assert gated.exit_code == 1  # tuned's judged quality drops by more than 0.10
    assert verdict["quality_mean"]["verdict"] == "warn"  # a drop of 0.19, but 12 pairs cannot show it is > 0.10
    assert verdict["judge_position_disagreement"]["verdict"] == "fail"


SUITE = """
evalkit: 1
name: judged-{name}
dataset: {{path: data.jsonl}}
prompt: {{user: "{{{{ q }}}}"}}
output: {{type: text}}
scoring:
  scorer: judge
  judge:
    model: openai/judge-1
    api_base: {base}
    api_key_env: EVALKIT_JUDGE_KEY
    rubric: Is the answer helpful?
    scale: {scale}
    human: human
    concurrency: 1     # one judge call at a time: the scripted faults hit known calls
models:
  frontier: {{provider: litellm, model: openai/frontier, api_base: {base}, api_key_env: EVALKIT_JUDGE_KEY}}
  tuned: {{provider: litellm, model: openai/tuned, api_base: {base}, api_key_env: EVALKIT_JUDGE_KEY}}
run: {{concurrency: 4, retries: 2, warmup: 0, bootstrap: 200}}
gates:
  baseline: frontier
  candidate: tuned
  rules: [{{metric: quality_mean, max_drop: 0.5}}]
"""
ROWS = [{"id": f"s{i}", "q": f"question {i}", "human": h}
        for i, h in enumerate(["pass", "fail", "pass", "pass", "fail", "pass", None, "fail", "pass", "fail"])]
ANSWERS = {"models": {"frontier": {"rules": [{"pattern": r"question [0-4]\b", "reply": "GOOD answer"}],
                                   "default": "BAD answer"},
                      "tuned": {"rules": [{"pattern": r"question [13579]\b", "reply": "GARBLE me"}],
                                "default": "GOOD answer"}}}


def _suite(tmp_path: Path, server: DevServer, scale: str = "pass_fail") -> Path:
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(name="t", base=server.url, scale=scale).lstrip())
    return path


def test_a_garbling_judge_gives_score_errors_never_silent_zeros(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_JUDGE_KEY", KEY)
    judge = JudgeResponder([("GOOD", "pass"), ("GARBLE", Raw("Looks fine to me!")), ("BAD", "fail")],
                           judge_model="judge-1", others=RuleResponder.from_dict(ANSWERS))
    db = str(tmp_path / "g.duckdb")
    with DevServer(judge, api_key=KEY) as server:
        suite = _suite(tmp_path, server)
        ran = _run(suite, db)
    assert ran.exit_code == 0, ran.output
    assert ("warning: score errors: 5 row(s) of tuned: judge reply is not a JSON object (e.g. judge reply is not a "
            "JSON object: 'Looks fine to me!')") in ran.stderr
    rows = _sql(db, "SELECT sample_id, quality, score_error FROM results WHERE model = 'tuned' ORDER BY sample_id")
    assert [r for r in rows if r[2] is not None] == [
        (f"s{i}", 0.0, "judge reply is not a JSON object: 'Looks fine to me!'") for i in (1, 3, 5, 7, 9)]
    show = json.loads(CliRunner().invoke(main, ["show", "latest", "--db", db, "--json"]).stdout)
    assert show["models"]["tuned"]["metrics"]["judge_errors"]["value"] == 5
    assert show["models"]["tuned"]["metrics"]["n_score_errors"]["value"] == 5
    gated = CliRunner().invoke(main, ["gate", str(suite), "--db", db, "--json"])
    assert json.loads(gated.stdout)["gates"][0]["verdict"] == "error"  # quality from an unreadable judge
    # pass/fail agreement of the judge with people on frontier's rows (the baseline's), against scikit-learn
    from sklearn.metrics import cohen_kappa_score

    frontier = show["models"]["frontier"]["metrics"]
    pairs = _sql(db, "SELECT j.score, CASE s.fields->>'human' WHEN 'pass' THEN 1.0 ELSE 0.0 END FROM judgements j "
                     "JOIN samples s USING (run_id, sample_id) WHERE j.model = 'frontier' AND j.kind = 'pointwise' "
                     "AND s.fields->>'human' IS NOT NULL ORDER BY sample_id")
    judge_says, people_say = [int(p[0]) for p in pairs], [int(p[1]) for p in pairs]
    assert frontier["judge_kappa"]["n"] == 9
    assert frontier["judge_kappa"]["value"] == pytest.approx(cohen_kappa_score(judge_says, people_say))
    assert frontier["judge_agreement"]["value"] == pytest.approx(
        sum(a == b for a, b in zip(judge_says, people_say)) / 9)


def test_a_failing_judge_is_retried_and_its_failures_are_score_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_JUDGE_KEY", KEY)
    judge = JudgeResponder([("GOOD", 5)], default=1, judge_model="judge-1", others=RuleResponder.from_dict(ANSWERS))
    faults = [Fault(kind="status", status=429, retry_after=0.05, times=1, model="judge-1"),
              Fault(kind="status", status=500, nth=(4, 5, 6), model="judge-1")]
    db = str(tmp_path / "f.duckdb")
    with DevServer(judge, api_key=KEY, faults=faults) as server:
        suite = _suite(tmp_path, server, scale="[1, 5]")
        (tmp_path / "data.jsonl").write_text("".join(json.dumps({**r, "human": None}) + "\n" for r in ROWS))
        ran = _run(suite, db)
        assert ran.exit_code == 0, ran.output
        judge_requests = len(server.calls(model="judge-1"))
    attempts = _sql(db, "SELECT attempts, status, count(*) FROM judgements GROUP BY ALL ORDER BY ALL")
    # 20 verdicts; the 429 (Retry-After honoured) costs one retry; 500 x3 in a row exhausts one call's 3 attempts
    assert sum(n for _, _, n in attempts) == 20 and judge_requests == 20 + 1 + 2
    failed = [a for a in attempts if a[1] == "error"]
    assert failed == [(3, "error", 1)]
    errors = _sql(db, "SELECT score_error FROM results WHERE score_error IS NOT NULL")
    assert len(errors) == 1 and errors[0][0].startswith("judge call failed after 3 attempt(s)")
    # the judged rows' latency and tokens are the models' own: no judge request is in results
    assert _sql(db, "SELECT count(*) FROM results")[0][0] == 20


def test_a_suite_model_can_be_the_judge_and_no_cache_asks_again(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_JUDGE_KEY", KEY)
    judge = JudgeResponder([("GOOD", 5)], default=2, judge_model="frontier", others=RuleResponder.from_dict(ANSWERS))
    db = str(tmp_path / "m.duckdb")
    with DevServer(judge, api_key=KEY) as server:
        suite = _suite(tmp_path, server, scale="[1, 5]")
        text = suite.read_text().replace("    model: openai/judge-1\n    api_base: " + server.url + "\n"
                                         "    api_key_env: EVALKIT_JUDGE_KEY\n", "    model: frontier\n")
        suite.write_text(text)
        (tmp_path / "data.jsonl").write_text("".join(json.dumps({**r, "human": None}) + "\n" for r in ROWS))
        ran = _run(suite, db)
        assert ran.exit_code == 0, ran.output
        assert _sql(db, "SELECT DISTINCT judge_model FROM judgements") == [("frontier",)]
        asked = len(server.calls(model="frontier"))
        again = _run(suite, db, "--no-cache")
        assert again.exit_code == 0, again.output
        # --no-cache: the models and the judge are all asked again (10 answers + 20 verdicts of frontier's)
        assert len(server.calls(model="frontier")) == 2 * asked == 2 * (10 + 20)
    # the judge's cost is the suite model's own price rule; the judged rows keep only their own calls
    assert _sql(db, "SELECT count(*) FROM results WHERE model = 'frontier'")[0][0] == 20


def test_a_judge_refusing_the_key_stops_being_asked_and_resume_judges_again(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_JUDGE_KEY", KEY)
    judge = JudgeResponder([("GOOD", 5)], default=1, judge_model="judge-1", others=RuleResponder.from_dict(ANSWERS))
    db = str(tmp_path / "r.duckdb")
    with DevServer(judge, api_key=KEY, faults=[Fault(kind="status", status=401, times=1, model="judge-1")]) as server:
        suite = _suite(tmp_path, server, scale="[1, 5]")
        (tmp_path / "data.jsonl").write_text("".join(json.dumps({**r, "human": None}) + "\n" for r in ROWS))
        ran = _run(suite, db)
        assert ran.exit_code == 0, ran.output
        assert len(server.calls(model="judge-1")) == 1  # refused: the other 19 verdicts are not asked for
        assert _sql(db, "SELECT count(*), count(DISTINCT error) FROM judgements WHERE status = 'error'") == [(20, 1)]
        assert _sql(db, "SELECT count(*) FROM results WHERE starts_with(score_error, 'judge call failed')")[0][0] == 20
        run_id = _sql(db, "SELECT run_id FROM runs")[0][0]
        server.faults = FaultPlan(())  # the key works again
        resumed = _run(suite, db, "--resume", run_id)
        assert resumed.exit_code == 0, resumed.output
        assert len(server.calls(model="judge-1")) == 1 + 20
        assert len(server.calls(model="frontier")) == 10  # answers are not asked again
    assert _sql(db, "SELECT count(*) FILTER (WHERE status = 'ok'), count(*) FROM judgements") == [(20, 20)]
    # GOOD answers score 5 (quality 1.0): frontier on s0-s4, tuned on the even samples
    assert _sql(db, "SELECT count(score_error), sum(quality) FROM results") == [(0, 5 * 1.0 + 5 * 1.0)]


def test_a_judge_without_prices_is_costed_from_litellms_table(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_JUDGE_KEY", KEY)
    judge = JudgeResponder([("GOOD", 5)], default=1, judge_model="gpt-4o-mini", others=RuleResponder.from_dict(ANSWERS))
    db = str(tmp_path / "p.duckdb")
    with DevServer(judge, api_key=KEY) as server:
        suite = _suite(tmp_path, server, scale="[1, 5]")
        suite.write_text(suite.read_text().replace("openai/judge-1", "openai/gpt-4o-mini"))
        (tmp_path / "data.jsonl").write_text("".join(json.dumps({**r, "human": None}) + "\n" for r in ROWS))
        ran = _run(suite, db)
        assert ran.exit_code == 0, ran.output
    import litellm

    expected = 0.0
    for prompt, completion in _sql(db, "SELECT prompt_tokens, completion_tokens FROM judgements WHERE model = 'tuned'"):
        expected += sum(litellm.cost_per_token(model="openai/gpt-4o-mini", prompt_tokens=prompt,
                                               completion_tokens=completion))
    show = json.loads(CliRunner().invoke(main, ["show", "latest", "--db", db, "--json"]).stdout)
    tuned = show["models"]["tuned"]["metrics"]
    assert expected > 0 and tuned["judge_cost_usd"]["value"] == pytest.approx(expected)
    assert tuned["cost_usd"]["value"] is None  # the judged model has no price of its own: the judge's is not its
