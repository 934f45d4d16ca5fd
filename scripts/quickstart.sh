#!/usr/bin/env bash
# The quick start: install evalkit into .venv, start the loopback stand-in model server, run the
# example suite end to end (render, call, score, store in DuckDB) and print every metric.
# No API key, no GPU, no model download: the two "models" are keyword rules (see suites/quickstart/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export LITELLM_LOCAL_MODEL_COST_MAP=True
export EVALKIT_QUICKSTART_KEY=quickstart-local-key
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export EVALKIT_QUICKSTART_BASE="http://127.0.0.1:${port}/v1"
.venv/bin/python -m evalkit.testing --port "$port" --rules suites/quickstart/standin_models.yaml \
  --latency-ms 60 --ttft-ms 25 --api-key "$EVALKIT_QUICKSTART_KEY" >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${port}/health')" 2>/dev/null && break
  sleep 0.2
done
echo "Stand-in models (keyword rules, not LLMs) serving on ${EVALKIT_QUICKSTART_BASE}"
db=reports/quickstart.duckdb
.venv/bin/evalkit run suites/quickstart/suite.yaml --db "$db" "$@"
if .venv/bin/evalkit --help | grep -q "^  gate "; then
  .venv/bin/evalkit gate suites/quickstart/suite.yaml --db "$db" || true
fi
.venv/bin/evalkit route latest --db "$db" || true   # the sides come from the suite's gates
if .venv/bin/evalkit --help | grep -q "^  report "; then
  .venv/bin/evalkit report latest --db "$db" -o reports/quickstart.html && echo "report: reports/quickstart.html"
fi
echo "evalkit is installed in .venv, not on PATH: run 'source .venv/bin/activate' first (or call .venv/bin/evalkit)"
