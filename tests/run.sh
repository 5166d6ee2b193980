#!/usr/bin/env bash
# The lab's test command: set up (as run_all.sh does), then pytest. Extra arguments go to pytest.
# Data-dependent tests read $DATA_DIR (default: data/); they are skipped when it lacks the datasets,
# unless LAB_REQUIRE_DATA=1 (CI), which turns a missing dataset into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(./run_all.sh --setup-only)
# the optional tracking extra (TRACK="mlflow") is tested too
# (offline, the install fails with a warning and the MLflow test is skipped, saying why)
"$PY" -c 'import mlflow' 2>/dev/null || { "$PY" -m pip install -q --disable-pip-version-check -r requirements-tracking.txt \
  2>&1 | { grep -v '^WARNING: Location' || true; } >&2; } || echo "warning: the MLflow extra did not install" >&2
exec "$PY" -m pytest tests "$@"
