#!/usr/bin/env bash
# Regenerate every report of the lab: execute each notebook with papermill, render HTML, build outputs/index.html.
#   ./run_all.sh [--profile auto|smoke|cpu|gpu] [--only EXPERIMENT]... [--list] [--data-dir DIR]
#   ./run_all.sh --setup-only     install what is missing and print the Python interpreter to use
# Set-up (first run): a virtual environment in .venv (unless one is active or LAB_PYTHON is set) with
# requirements.txt; on a machine without an NVIDIA GPU the CPU build of torch first (LAB_TORCH_SPEC, default
# torch==2.13.0). Re-runs skip installing while requirements*.txt are unchanged.
set -euo pipefail
cd "$(dirname "$0")"

setup() {
  local py
  if [ -n "${LAB_PYTHON:-}" ]; then py=$LAB_PYTHON
  elif [ -n "${VIRTUAL_ENV:-}" ]; then py=$VIRTUAL_ENV/bin/python
  else
    [ -x .venv/bin/python ] || { echo "set-up: creating .venv" >&2; python3 -m venv .venv >&2; }
    py=$PWD/.venv/bin/python
  fi
  local stamp_file want
  stamp_file=$("$py" -c 'import sys; print(sys.prefix)')/.nlp-lab-installed
  want=$(cat requirements.txt requirements-nodeps.txt | sha256sum | cut -c1-16)
  if [ "$(cat "$stamp_file" 2>/dev/null)" != "$want" ]; then
    echo "set-up: installing packages into $("$py" -c 'import sys; print(sys.prefix)') (a few minutes, once)" >&2
    local quiet=(-q --disable-pip-version-check)
    if ! "$py" -c 'import torch' 2>/dev/null; then
      if command -v nvidia-smi >/dev/null 2>&1; then "$py" -m pip install "${quiet[@]}" torch 2>&1 | grep -v '^WARNING: Location' >&2
      else "$py" -m pip install "${quiet[@]}" "${LAB_TORCH_SPEC:-torch==2.13.0}" 2>&1 | grep -v '^WARNING: Location' >&2; fi
    fi
    "$py" -m pip install "${quiet[@]}" -r requirements.txt 2>&1 | grep -v '^WARNING: Location' >&2
    "$py" -m pip install "${quiet[@]}" --no-deps -r requirements-nodeps.txt 2>&1 | grep -v '^WARNING: Location' >&2
    echo "$want" > "$stamp_file"
  fi
  echo "$py"
}

if [ "${1:-}" = "--setup-only" ]; then setup; exit 0; fi
PY=$(setup)
exec "$PY" -m lib.runner "$@"
