"""``evalkit run --ray`` on a real local Ray cluster bound to 127.0.0.1, against loopback dev servers.

One cluster is shared by the module (Ray starts slowly on two cores); it runs in this process, the CLI
runs as a user would (a subprocess driver connecting to it by address). Every Ray process must listen
on loopback only, and none may be left behind when the cluster stops.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from conftest import TEST_KEY, TRIAGE_RULES, run_cli, write_jsonl

from evalkit.store import Store

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before Ray is imported: bind 127.0.0.1 only
if os.environ.get("CI"):
    import ray
else:
    ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow

# Timings, and what is per second of (replica) wall time, differ between runs; everything else must not.
TIMED = ("client_lag_ms_p95", "latency_ms_p50", "latency_ms_p90", "latency_ms_p95", "latency_ms_p99", "ttft_ms_p50",
         "ttft_ms_p95", "throughput_rps", "output_tokens_per_s", "replicas_needed", "break_even_requests_per_day")

RAY_SUITE = """
evalkit: 1
name: triage-ray
dataset: {{path: data.jsonl, slice: slice}}
prompt:
  system: "Answer spam or ham."
  user: "Subject: {{{{ subject }}}}\\n\\n{{{{ body }}}}"
output: {{type: label, labels: [ham, spam]}}
target: {{field: label}}
confidence: {{source: logprobs}}
models:
{models}
run:
  concurrency: {concurrency}
  retries: 1
  bootstrap: 200
  warmup: 0
  ray: {{shards: 2, num_cpus: 1}}
"""
LEAN_MODELS = """
  frontier: {{provider: vllm, base_model: frontier, api_bases: [{one}, {two}], api_key_env: EVALKIT_TEST_KEY,
             stream: false, params: {{temperature: 0, max_tokens: 8}}}}
  tuned: {{provider: vllm, base_model: base, adapter: tuned, api_bases: [{one}, {two}],
          api_key_env: EVALKIT_TEST_KEY, stream: false, params: {{temperature: 0, max_tokens: 8}}}}
"""
WITH_LITELLM = """
  frontier: {{provider: litellm, model: openai/frontier, api_base: {one}, api_key_env: EVALKIT_TEST_KEY,
             params: {{temperature: 0, max_tokens: 8}}}}
  tuned: {{provider: vllm, base_model: base, adapter: tuned, api_bases: [{one}, {two}],
          api_key_env: EVALKIT_TEST_KEY, stream: false, params: {{temperature: 0, max_tokens: 8}}}}
"""


def _rows(n: int) -> list[dict[str, str]]:
    return [{"id": f"m{i:03d}", "subject": ("WIN A FREE CRUISE " if i % 3 == 0 else "Notes ") + str(i),
             "body": f"see inside, ref {i}", "label": "spam" if i % 3 == 0 else "ham",
             "slice": "spam" if i % 3 == 0 else "ham"} for i in range(n)]


def _descendants(root: int) -> set[int]:
    """``root`` and every process below it (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += children.get(pid, [])
    return found


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def _listening(pids: set[int]) -> list[tuple[str, int]]:
    """(local address, pid) of every TCP socket these processes listen on (``ss -ltnp``)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        for pid in map(int, re.findall(r"pid=(\d+)", line)):
            if pid in pids:
                found.append((line.split()[3], pid))
    return found


def assert_loopback_only(pids: set[int]) -> int:
    """Every port these processes listen on is on 127.0.0.1; returns how many there were."""
    ports = _listening(pids)
    wrong = [(addr, pid, _name(pid)) for addr, pid in ports
             if not (addr.startswith("127.0.0.1:") or addr.startswith("[::ffff:127.0.0.1]:"))]
    assert not wrong, f"Ray listens beyond loopback: {wrong}"
    return len(ports)


def _ray_processes(names: tuple[str, ...] = ("raylet", "gcs_server", "ray::")) -> list[tuple[int, str]]:
    return [(pid, _name(pid)) for pid in _descendants(os.getpid()) - {os.getpid()}
            if any(n in _name(pid) for n in names)]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of this process on 127.0.0.1 (its own temp dir, no dashboard), stopped cleanly."""
    temp = tempfile.mkdtemp(prefix="evalkit-ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=4, _temp_dir=temp,
             log_to_driver=False)
    try:
        assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"
        assert assert_loopback_only(_descendants(os.getpid())) >= 3  # gcs, raylet, this driver at least
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        deadline = time.monotonic() + 30
        while _ray_processes() and time.monotonic() < deadline:
            time.sleep(0.5)
        left = _ray_processes()
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"Ray processes left after shutdown: {left}"


def _two_servers(latency_ms: float):
    from evalkit.testing.devserver import DevServer
    from evalkit.testing.replies import RuleResponder

    with DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY, latency_ms=latency_ms) as one, \
            DevServer(RuleResponder.from_dict(TRIAGE_RULES), api_key=TEST_KEY, latency_ms=latency_ms) as two:
        yield one, two


@pytest.fixture
def servers():
    yield from _two_servers(60)


@pytest.fixture
def slow_servers():
    """Slow enough (250 ms, one call in flight per model and shard: ~16 calls/s) to kill something mid-run."""
    yield from _two_servers(250)


def _suite(tmp_path: Path, models: str, one, two, n: int, concurrency: int = 4) -> Path:
    write_jsonl(tmp_path / "data.jsonl", _rows(n))
    text = RAY_SUITE.format(models=textwrap.dedent(models.format(one=one.url, two=two.url)).strip("\n")
                            .replace("\n", "\n  ").join(["  ", ""]), concurrency=concurrency)
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def _chat_calls(server) -> list:
    return server.calls(path="/v1/chat/completions")


def _stored(db: Path) -> tuple[str, dict[str, list[str]]]:
    with Store(db, read_only=True) as store:
        rid = store.resolve_run_id("latest")
        rows = store.sql("SELECT model, sample_id FROM results WHERE run_id = ? ORDER BY ALL", [rid])
    out: dict[str, list[str]] = {}
    for model, sample in rows:
        out.setdefault(model, []).append(sample)
    return rid, out


def _metrics(db: Path) -> dict:
    with Store(db, read_only=True) as store:
        rid = store.resolve_run_id("latest")
        return {(m["model"], m["metric"]): (m["value"], m["ci_low"], m["ci_high"], m["n"])
                for m in store.metrics(rid) if m["metric"] not in TIMED}


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "evalkit.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_ray_run_equals_an_unsharded_run_one_shard_per_endpoint(cluster, servers, cli_env, tmp_path):
    one, two = servers
    suite = _suite(tmp_path, WITH_LITELLM, one, two, 40)
    ray_db, plain_db = tmp_path / "ray.duckdb", tmp_path / "plain.duckdb"
    proc = run_cli(["run", str(suite), "--db", str(ray_db), "--ray", cluster], cli_env, timeout=400)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"\[tuned shard 1/2\] \d+ to run", proc.stderr)  # progress per shard, and in total
    assert "[tuned] 40 to run" in proc.stderr
    # the endpoint list: shard I called endpoint I for 'tuned', only its own samples
    tuned = [{c.body["messages"][-1]["content"] for c in _chat_calls(s) if c.body["model"] == "tuned"}
             for s in (one, two)]
    assert tuned[0] and tuned[1] and not tuned[0] & tuned[1] and len(tuned[0] | tuned[1]) == 40

    with Store(ray_db, read_only=True) as store:
        rid = store.resolve_run_id("latest")
        run = store.get_run(rid)
        models = {m["model"]: m for m in store.run_models(rid)}
    import json

    cluster_info = json.loads(run["config"])["ray_cluster"]
    assert cluster_info["ray_version"] == ray.__version__ and cluster_info["nodes"][0]["alive"]
    assert cluster_info["resources"]["CPU"] == 4.0
    shards = json.loads(models["tuned"]["config"])["engine"]["ray"]["shards"]
    assert [s["shard"] for s in shards] == [1, 2] and all(s["restarts"] == 0 for s in shards)

    proc = run_cli(["run", str(suite), "--db", str(plain_db), "--quiet"], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "lists 2 endpoints (api_bases): a run without --ray calls only the first" in proc.stderr
    assert _metrics(ray_db) == _metrics(plain_db)  # point values and bootstrap CIs, same seed

    # rerun of the unchanged suite on Ray: every answer from the cache, no model called
    before = len(_chat_calls(one)) + len(_chat_calls(two))
    proc = run_cli(["run", str(suite), "--db", str(ray_db), "--ray", cluster, "--quiet"], cli_env, timeout=400)
    assert proc.returncode == 0, proc.stderr
    assert len(_chat_calls(one)) + len(_chat_calls(two)) == before


def test_a_worker_killed_mid_shard_is_restarted_and_every_sample_stored_once(cluster, slow_servers, cli_env, tmp_path):
    one, two = slow_servers
    n = 60
    suite = _suite(tmp_path, LEAN_MODELS, one, two, n, concurrency=1)
    db = tmp_path / "kill.duckdb"
    driver = _start(["run", str(suite), "--db", str(db), "--ray", cluster, "--quiet"], cli_env)
    try:
        workers = lambda: [pid for pid in _descendants(os.getpid()) if _name(pid).startswith("ray::ShardWorker")]  # noqa: E731
        _wait_for(lambda: len(_chat_calls(one)) + len(_chat_calls(two)) >= 60, 240, "half of the answers")
        alive = workers()
        assert alive, "no shard worker found"
        assert_loopback_only(_descendants(os.getpid()))  # the driver, the shards' workers: loopback only
        os.kill(alive[0], signal.SIGKILL)
        before_kill = [len(_chat_calls(one)), len(_chat_calls(two))]
        out, err = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, err
    rid, stored = _stored(db)
    for model in ("frontier", "tuned"):
        assert sorted(stored[model]) == sorted({r["id"] for r in _rows(n)})  # every sample exactly once
    with Store(db, read_only=True) as store:
        import json

        info = {m["model"]: json.loads(m["config"])["engine"]["ray"] for m in store.run_models(rid)}
        assert store.get_run(rid)["status"] == "complete"
    assert sum(s["restarts"] for s in info["tuned"]["shards"]) == 1  # Ray restarted the killed shard once
    # the restarted shard asked again only for what its dead worker had not handed back (its few calls in
    # flight), not for the ~30 answers per shard the driver already had: shard I calls endpoint I
    for server, asked_before in zip((one, two), before_kill, strict=True):
        asked = [(c.body["model"], c.body["messages"][-1]["content"]) for c in _chat_calls(server)]
        assert asked_before >= 25
        assert len(asked) - len(set(asked)) <= 12, f"{len(asked) - len(set(asked))} requests asked twice"


def test_driver_killed_then_resume_completes_without_asking_again(cluster, slow_servers, cli_env, tmp_path):
    one, two = slow_servers
    n = 60
    suite = _suite(tmp_path, LEAN_MODELS, one, two, n, concurrency=1)
    db = tmp_path / "driver.duckdb"
    driver = _start(["run", str(suite), "--db", str(db), "--ray", cluster, "--quiet"], cli_env)
    try:
        _wait_for(lambda: len(_chat_calls(one)) + len(_chat_calls(two)) >= 40, 240, "answers before the kill")
        time.sleep(1.2)  # past the writer's one-second flush
        driver.send_signal(signal.SIGKILL)
        driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    # the killed driver's shards die with it (Ray ends the actors of a dead owner)
    _wait_for(lambda: not [p for p in _descendants(os.getpid()) if _name(p).startswith("ray::ShardWorker")],
              60, "the dead driver's shard workers to end")
    rid, before = _stored(db)
    assert 0 < sum(map(len, before.values())) < 2 * n
    sent_before = (len(_chat_calls(one)), len(_chat_calls(two)))
    proc = run_cli(["run", str(suite), "--db", str(db), "--resume", rid, "--ray", cluster, "--quiet"], cli_env,
                   timeout=400)
    assert proc.returncode == 0, proc.stderr
    _, after = _stored(db)
    for model in ("frontier", "tuned"):
        assert sorted(after[model]) == sorted({r["id"] for r in _rows(n)})
    # what the resumed run asked for: only samples not stored before it, each once
    subjects = {f"Subject: {r['subject']}\n\n{r['body']}": r["id"] for r in _rows(n)}
    resumed = [(c.body["model"], subjects[c.body["messages"][-1]["content"]])
               for s, k in ((one, sent_before[0]), (two, sent_before[1])) for c in _chat_calls(s)[k:]]
    for model, sample in resumed:
        assert sample not in before.get(model, []), f"{model} {sample} was stored, yet asked again"
    assert len(resumed) == len(set(resumed)) == 2 * n - sum(map(len, before.values()))
    with Store(db, read_only=True) as store:
        assert store.get_run(rid)["status"] == "complete"


def test_without_ray_nothing_imports_it_and_run_ray_says_what_to_install(make_suite, triage_server, cli_env,
                                                                          tmp_path):
    from conftest import LABEL_SUITE

    code = ("import sys, evalkit, evalkit.cli, evalkit.cli.run_ray, evalkit.engine.runner, evalkit.store; "
            "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray was imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env)
    assert proc.returncode == 0, proc.stderr
    # Ray unimportable (a finder that refuses it, loaded by sitecustomize): every other command still works
    blocker = tmp_path / "noray"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys
        class _NoRay:
            def find_spec(self, name, path=None, target=None):
                if name == "ray" or name.startswith("ray."):
                    raise ImportError("ray is not installed (blocked by the test)")
        sys.meta_path.insert(0, _NoRay())
    """))
    env = {**cli_env, "PYTHONPATH": os.pathsep.join([str(blocker), cli_env.get("PYTHONPATH", "")])}
    suite = make_suite(LABEL_SUITE.format(base=triage_server.url), rows=_rows(6))
    db = tmp_path / "noray.duckdb"
    plain = run_cli(["run", str(suite), "--db", str(db), "--quiet"], env)
    assert plain.returncode == 0, plain.stderr
    assert run_cli(["show", "latest", "--db", str(db)], env).returncode == 0
    on_ray = run_cli(["run", str(suite), "--db", str(db), "--ray"], env)
    assert on_ray.returncode == 2 and "pip install 'evalkit-swap[ray]'" in on_ray.stderr, on_ray.stderr


RAY_DATA_SUITE = """
evalkit: 1
name: triage-ray-data
dataset: {path: data.jsonl, slice: slice}
prompt:
  system: "Answer spam or ham."
  user: "Subject: {{ subject }}\\n\\n{{ body }}"
output: {type: label, labels: [ham, spam]}
target: {field: label}
confidence: {source: logprobs}
models:
  base: {provider: vllm, mode: ray-data, base_model: org/base, stream: false, params: {temperature: 0, max_tokens: 4},
         processor_args: {batch_size: 8}}
  tuned: {provider: vllm, mode: ray-data, base_model: org/base, adapter: tuned, adapter_path: lora, stream: false,
          params: {temperature: 0, max_tokens: 4}, processor_args: {batch_size: 8}}
run: {warmup: 0, bootstrap: 100}
"""


def test_ray_data_rows_are_scored_and_stored_as_any_run(cluster, tmp_path):
    """A real ray.data Dataset of the rendered samples through the processor's pre- and postprocess (the
    vLLM stage, which needs a GPU build of vLLM, replaced by the columns it would add), then the in-process
    batcher, the runner's scoring and the store."""
    from evalkit.backends.registry import BuildContext
    from evalkit.backends.vllm_ray_data import RayDataFactory, answer_row, chat_row, engine_for
    from evalkit.config.loader import load_suite
    from evalkit.config.resolve import resolve_models
    from evalkit.engine.lifecycle import create_run, finish
    from evalkit.engine.progress import NullProgress
    from evalkit.engine.runner import SuiteRun
    from evalkit.scoring.prepare import prepare

    rows = [{"id": f"r{i}", "subject": ["WIN A FREE CRUISE", "Invoice attached", "Lunch?"][i % 3] + f" {i}",
             "body": "b", "label": "spam" if i % 3 == 0 else "ham", "slice": "x"} for i in range(12)]
    write_jsonl(tmp_path / "data.jsonl", rows)
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora" / "adapter_config.json").write_text('{"r": 8, "lora_alpha": 16}')
    (tmp_path / "suite.yaml").write_text(textwrap.dedent(RAY_DATA_SUITE).lstrip())
    loaded = load_suite(tmp_path / "suite.yaml")
    prepared = prepare(loaded)
    resolved = resolve_models(loaded, prepared.models)
    batches: list[int] = []

    def engine_stage(row: dict) -> dict:  # nested: Ray pickles it by value
        """What Ray Data LLM's vLLM stage adds to a row (vLLMOutputData's columns): the base answers by a rule,
        the LoRA (its ``model`` is the adapter's folder) also calls invoices spam."""
        text = row["messages"][-1]["content"]
        spammy = ("FREE" in text) or (row["model"] != "org/base" and "Invoice" in text)
        answer = "spam" if spammy else "ham"
        token, other = (7, 8) if spammy else (8, 7)
        return {**row, "prompt": text, "num_input_tokens": len(text.split()), "generated_text": answer,
                "generated_tokens": [token], "num_generated_tokens": 1,
                "logprobs": [{token: {"logprob": -0.05, "rank": 1, "decoded_token": answer},
                              other: {"logprob": -3.0, "rank": 2, "decoded_token": "ham" if spammy else "spam"}}]}

    def processor(ds):
        batches.append(ds.count())
        return ds.map(chat_row).map(engine_stage).map(answer_row)

    factory = RayDataFactory(BuildContext(loaded, resolved),
                             start=lambda base, adapters, engine_args, args: engine_for(processor, base, adapters))
    backends = {name: factory.build(model) for name, model in resolved.items()}
    assert backends["base"].engine is backends["tuned"].engine  # one processor for the base and its adapter
    db = tmp_path / "rd.duckdb"
    with Store(db) as store:
        create_run(store, prepared, "rd", ["evalkit", "run"])
        outcomes = SuiteRun(prepared, store, "rd", True, NullProgress()).execute(backends)
        assert [o.status for o in outcomes] == ["complete", "complete"]
        metrics = {(m["model"], m["metric"]): m["value"] for m in finish(store, "rd", "complete", prepared)}
        stored = store.dicts("SELECT model, sample_id, output, correct, confidence, finish_reason, completion_tokens, "
                             "logprobs FROM results WHERE run_id = 'rd' ORDER BY model, sample_id")
        engine = store.dicts("SELECT model, config FROM run_models WHERE run_id = 'rd' ORDER BY model")
    assert sum(batches) == 24 and len(stored) == 24
    assert metrics[("base", "accuracy")] == 1.0 and metrics[("tuned", "accuracy")] == pytest.approx(8 / 12)
    wrong = [r["sample_id"] for r in stored if not r["correct"]]
    assert sorted(wrong) == sorted(f"r{i}" for i in range(12) if i % 3 == 1)  # tuned's invoices
    assert all(r["finish_reason"] == "stop" and r["completion_tokens"] == 1 for r in stored)
    assert all(r["confidence"] == pytest.approx(2.718281828 ** -0.05, rel=1e-6) for r in stored)
    import json

    assert json.loads(engine[0]["config"])["engine"]["mode"] == "ray-data"


def test_ray_data_mode_says_why_it_cannot_run_on_this_machine(tmp_path, cli_env):
    write_jsonl(tmp_path / "data.jsonl", [{"id": "1", "subject": "s", "body": "b", "label": "ham", "slice": "x"}])
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora" / "adapter_config.json").write_text('{"r": 8}')
    (tmp_path / "suite.yaml").write_text(textwrap.dedent(RAY_DATA_SUITE).lstrip())
    proc = run_cli(["run", str(tmp_path / "suite.yaml"), "--db", str(tmp_path / "x.duckdb")], cli_env, timeout=300)
    try:
        from vllm.platforms import current_platform
    except ImportError:
        pytest.skip("vLLM is not installed")
    if not current_platform.is_cpu():
        pytest.skip("a GPU build of vLLM: Ray Data LLM may run here")
    assert proc.returncode == 2, proc.stderr
    assert "mode 'ray-data' cannot run here: the installed vLLM is the CPU build" in proc.stderr
